"""Colab links come from the one repository URL in pyproject.toml."""
import re
from pathlib import Path

from facelab.apps import notebooks

ROOT = Path(__file__).resolve().parent.parent


def test_repository_url_is_defined_once():
    text = (ROOT / "pyproject.toml").read_text()
    urls = re.findall(r"https://github\.com/[\w.-]+/[\w.-]+", text)
    assert len(urls) == 1
    assert notebooks.repository_url() == urls[0]


def test_colab_url_shape():
    url = notebooks.colab_url("00_overview_and_data.ipynb", "https://github.com/acme/facelab")
    assert url == ("https://colab.research.google.com/github/acme/facelab/blob/main/"
                   "notebooks/00_overview_and_data.ipynb")


def test_update_badges_rewrites_old_urls(tmp_path):
    import nbformat

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell(
        "# T\n" + notebooks.colab_badge("01_x.ipynb", "https://github.com/old/name")),
        nbformat.v4.new_code_cell(notebooks.colab_install_source("https://github.com/old/name"))]
    nbformat.write(nb, tmp_path / "01_x.ipynb")
    changed = notebooks.update_badges(tmp_path)
    assert changed == [tmp_path / "01_x.ipynb"]
    nb = nbformat.read(tmp_path / "01_x.ipynb", as_version=4)
    assert notebooks.colab_url("01_x.ipynb") in nb.cells[0].source
    assert "old/name" not in nb.cells[0].source and "old/name" not in nb.cells[1].source
    assert notebooks.update_badges(tmp_path) == []
