"""Helpers for the notebook series: Colab links, headless execution, key figures.

The repository URL lives in exactly one place, ``[project.urls] Repository`` in
``pyproject.toml``; Colab badges are derived from it (``python -m facelab.apps.notebooks
--update-badges`` rewrites every badge after the URL changes).
"""
from __future__ import annotations

import json
import re
import sys
from importlib.metadata import metadata
from pathlib import Path

from facelab.paths import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
SUMMARY_PREFIX = "FACELAB_SUMMARY "
COLAB_BADGE_IMG = "https://colab.research.google.com/assets/colab-badge.svg"
# nbformat, nbclient and nbconvert (Jupyter, the course's tools) are imported by the functions that
# read or run notebooks, so the badge helpers work without them.
_BADGE_RE = re.compile(r"\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)")


def repository_url() -> str:
    """The project's repository URL from ``pyproject.toml`` (or installed metadata)."""
    pyproject = REPO_ROOT / "pyproject.toml"
    if pyproject.is_file():
        match = re.search(r'^Repository\s*=\s*"([^"]+)"', pyproject.read_text(), re.M)
        if match:
            return match.group(1).rstrip("/")
    for entry in metadata("facelab").get_all("Project-URL") or []:
        label, _, url = entry.partition(",")
        if label.strip().lower() == "repository":
            return url.strip().rstrip("/")
    raise RuntimeError("no Repository URL in pyproject.toml [project.urls]")


def colab_url(notebook: str, repo_url: str | None = None) -> str:
    """``https://colab.research.google.com/github/<owner>/<repo>/blob/main/notebooks/<file>``."""
    repo_url = repo_url or repository_url()
    owner_repo = re.sub(r"^https?://github\.com/", "", repo_url).removesuffix(".git")
    return f"https://colab.research.google.com/github/{owner_repo}/blob/main/notebooks/{Path(notebook).name}"


def colab_badge(notebook: str, repo_url: str | None = None) -> str:
    """The Markdown of the "Open in Colab" badge for one notebook."""
    return f"[![Open In Colab]({COLAB_BADGE_IMG})]({colab_url(notebook, repo_url)})"


def colab_install_source(repo_url: str | None = None) -> str:
    """Source of the first code cell: installs facelab only when running on Colab."""
    repo_url = repo_url or repository_url()
    return (
        "# Installs facelab when this notebook runs on Google Colab; does nothing elsewhere.\n"
        "import subprocess, sys\n"
        "if 'google.colab' in sys.modules:\n"
        f"    subprocess.run([sys.executable, '-m', 'pip', 'install', '-q', 'facelab[course] @ git+{repo_url}'], check=True)"
    )


def update_badges(notebooks_dir: Path = NOTEBOOKS_DIR) -> list[Path]:
    """Rewrite the Colab badge and install cell of every notebook from the current URL."""
    import nbformat

    changed = []
    for path in sorted(Path(notebooks_dir).glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        before = nbformat.writes(nb)
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                cell.source = _BADGE_RE.sub(colab_badge(path.name), cell.source)
            elif cell.cell_type == "code" and "google.colab" in cell.source:
                cell.source = colab_install_source()
        if nbformat.writes(nb) != before:
            nbformat.write(nb, path)
            changed.append(path)
    return changed


def report(**figures) -> dict:
    """Print a notebook's key figures on one line that ``facelab tour`` collects."""
    print(SUMMARY_PREFIX + json.dumps(figures, default=float))
    return figures


def _collect_summary(nb) -> dict:
    summary = {}
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            for line in str(output.get("text", "")).splitlines():
                if line.startswith(SUMMARY_PREFIX):
                    summary.update(json.loads(line[len(SUMMARY_PREFIX):]))
    return summary


def execute_notebook(path, out_dir, *, timeout: int = 900, kernel_name: str = "python3") -> dict:
    """Run one notebook top to bottom in its own folder; write the executed copy and an
    HTML export to ``out_dir``; return the key figures it reported."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    path, out_dir = Path(path), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=timeout, kernel_name=kernel_name,
                            resources={"metadata": {"path": str(path.parent)}})
    try:
        client.execute()
    finally:
        nbformat.write(nb, out_dir / path.name)
        html, _ = HTMLExporter().from_notebook_node(nb)
        (out_dir / path.with_suffix(".html").name).write_text(html, encoding="utf-8")
    return _collect_summary(nb)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--update-badges"]:
        for path in update_badges():
            print(f"updated {path}")
        return 0
    print("usage: python -m facelab.apps.notebooks --update-badges", file=sys.stderr)
    return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
