"""Write the generated sections of docs/results.md from the benchmarks' JSON output (``make results``).

Each benchmark that has a section here writes its figures as JSON (``--json``); the committed copies live
in ``benchmarks/results/``.  This script renders every such file into the block between
``<!-- generated: NAME -->`` and ``<!-- end generated: NAME -->`` of ``docs/results.md``, so a figure on that
page cannot drift from the run that measured it (``tests/test_results_doc.py`` checks it).

Usage::

    python benchmarks/make_results.py            # rewrite docs/results.md
    python benchmarks/make_results.py --check    # exit 1 if docs/results.md is not up to date
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
DOC = REPO / "docs" / "results.md"


def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def render_video(r: dict) -> str:
    lines = [f"`benchmarks/bench_video.py`: {r['clip']}, {r['frames']} frames ({r['duration_s']:.0f} s, 1080p "
             f"face-world crowd: people walk, turn, cross, hide each other, leave and come back); MTCNN at "
             f"{r['detect_size']} px every {r['detect_every']} frames, the network on every face of every frame. "
             f"Machine: {r['machine']}. Networks with random weights (speed does not depend on them).", "",
             "| network | frames/s | real-time factor (first pass, with set-up) | faces | peak RSS | tracks | "
             "coverage | ID switches per person per minute |", "|---|---|---|---|---|---|---|---|"]
    for name, n in r["networks"].items():
        t = n.get("tracking")
        tracking = (f"{t['tracks']} for {t['people']} people | {_pct(t['coverage'])} | "
                    f"{t['switches_per_person_per_minute']:.2f}") if t else "– | – | –"
        lines.append(f"| {name} ({n['precision']}) | {n['frames_per_s']:.1f} | **{n['real_time_factor']:.2f}** "
                     f"({n['real_time_factor_first_pass']:.2f}) | {n['faces']} | {n['peak_rss_mib']:.0f} MiB | "
                     f"{tracking} |")
    if "long" in r:
        g = r["long"]
        lines += ["", f"Memory: the same clip {g['times']}x longer (its packets repeated) peaks at "
                      f"{g['peak_rss_mib']:.0f} MiB with the {g['network']} network: **{g['rss_ratio']:.2f}x** the "
                      f"short clip's peak (real-time factor {g['real_time_factor']:.2f})."]
    return "\n".join(lines) + "\n"


def render_notebooks(r: dict) -> str:
    start = "empty caches (every notebook trains or draws what it needs)" if r["caches_empty_at_start"] else \
        "caches filled by an earlier run"
    lines = [f"`benchmarks/bench_notebooks.py`: the series executed in order, each notebook in a fresh kernel, "
             f"from {start}. Machine: {r['machine']}.", "",
             f"| notebook | wall | kernel CPU | within {r['budget_s'] // 60} min |", "|---|---|---|---|"]
    for n in r["notebooks"]:
        lines.append(f"| {n['notebook']} | {n['wall_s']:.0f} s | {n['kernel_cpu_s']:.0f} s | "
                     f"{'yes' if n['wall_s'] <= r['budget_s'] else '**no**'} |")
    within = "yes" if r["total_wall_s"] <= r["series_budget_s"] else "**no**"
    lines.append(f"| the series | **{r['total_wall_s'] / 60:.1f} min** | – | within "
                 f"{r['series_budget_s'] // 60} min: {within} |")
    return "\n".join(lines) + "\n"


RENDERERS = {"video": render_video, "notebooks": render_notebooks}


def render_all() -> dict[str, str]:
    return {name: fn(json.loads((RESULTS / f"{name}.json").read_text(encoding="utf-8")))
            for name, fn in RENDERERS.items() if (RESULTS / f"{name}.json").is_file()}


def updated(text: str, blocks: dict[str, str]) -> str:
    for name, body in blocks.items():
        start, end = f"<!-- generated: {name} -->\n", f"<!-- end generated: {name} -->"
        if start not in text:
            raise SystemExit(f"docs/results.md has no '{start.strip()}' block for benchmarks/results/{name}.json")
        head, rest = text.split(start, 1)
        text = head + start + body + end + rest.split(end, 1)[1]
    return text


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description="render docs/results.md from benchmarks/results/*.json")
    ap.add_argument("--check", action="store_true", help="only check that docs/results.md is up to date")
    args = ap.parse_args(argv)
    text = DOC.read_text(encoding="utf-8")
    new = updated(text, render_all())
    if args.check:
        if new != text:
            print("docs/results.md is not what benchmarks/results/*.json give: run make results", file=sys.stderr)
            return 1
        return 0
    DOC.write_text(new, encoding="utf-8")
    print(f"wrote {DOC.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
