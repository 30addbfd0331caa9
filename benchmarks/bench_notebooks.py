"""Execute the course's notebooks in order, in place, and time each one.

The course's budget: every notebook runs alone in at most 3 minutes on the 2-core machine, the whole
series in at most 15.  Run it on a quiet machine; with ``data/cache`` and ``data/synth`` emptied first
it measures the series as a new user (or CI) runs it: each notebook then trains or draws what it needs.
The executed notebooks are written back (their committed outputs) without stale widget state.

    python benchmarks/bench_notebooks.py --json benchmarks/results/notebooks.json   # the whole series
    python benchmarks/bench_notebooks.py 04_emotion_finetuning                      # one notebook
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import children_cpu_seconds, machine, write_json  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
NOTEBOOKS = REPO / "notebooks"
BUDGET_S, SERIES_BUDGET_S = 180, 900


def execute(path: Path) -> dict:
    """Run one notebook top to bottom in a fresh kernel (working folder: notebooks/) and save it."""
    nb = nbformat.read(path, as_version=4)
    cpu0, t0 = children_cpu_seconds(), time.monotonic()
    NotebookClient(nb, timeout=1800, kernel_name="python3", resources={"metadata": {"path": str(NOTEBOOKS)}}).execute()
    wall = time.monotonic() - t0
    nb.metadata.pop("widgets", None)  # stale widget state (progress bars of a run) is not an output
    nbformat.write(nb, path)
    return {"notebook": path.stem, "wall_s": round(wall, 1), "kernel_cpu_s": round(children_cpu_seconds() - cpu0, 1)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", help="notebook names (default: all, in order)")
    ap.add_argument("--json", type=Path, help="write the timings here")
    args = ap.parse_args(argv)
    paths = sorted(NOTEBOOKS.glob("*.ipynb"))
    if args.names:
        paths = [p for p in paths if p.stem in args.names or p.name in args.names]
    info = machine(torch_info=False)  # kernels run torch with their own threads: OMP_NUM_THREADS or torch's default
    caches_empty = not any((REPO / "data" / "cache").glob("*/*")) and not any((REPO / "data" / "synth").glob("*"))
    rows = []
    for path in paths:
        row = execute(path)
        rows.append(row)
        print(f"{row['notebook']}: {row['wall_s']:.0f} s wall, {row['kernel_cpu_s']:.0f} s kernel CPU", flush=True)
    total = sum(r["wall_s"] for r in rows)
    print(f"series: {total:.0f} s wall")
    if args.json:
        write_json(args.json, {"machine": info, "caches_empty_at_start": caches_empty, "notebooks": rows,
                               "total_wall_s": round(total, 1), "budget_s": BUDGET_S,
                               "series_budget_s": SERIES_BUDGET_S})
    return 0 if all(r["wall_s"] <= BUDGET_S for r in rows) and total <= SERIES_BUDGET_S else 1


if __name__ == "__main__":
    raise SystemExit(main())
