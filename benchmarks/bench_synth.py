"""How fast does the built-in face world generate the notebooks' datasets?

Generates every dataset of ``facelab.synth.writers.NOTEBOOK_DEFAULTS`` into a
temporary folder with 2 worker processes and prints, per dataset, the files and
frames written, images (or frames) per second, wall and CPU seconds, and the total.
Target (issue 3): all default notebook datasets together in <= 60 s on 2 cores.

The CPU seconds (main process + workers) divided by the number of workers estimate
the wall time on an otherwise idle machine; the wall time is what this run took
with whatever else was running (the load average is printed before and after).

    python benchmarks/bench_synth.py [--workers 2] [--keep DIR] [--json OUT] [--quick]

``--quick`` draws a few items of each dataset (``QUICK``) (a smoke test of the script: no timing claim).
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import cpu_seconds, load_average, machine, write_json  # noqa: E402
from facelab.synth.writers import NOTEBOOK_DEFAULTS, generate  # noqa: E402

TARGET_S = 60.0
#: ``--quick``: a few items of each dataset (AffectNet-like needs enough for 8 classes of its imbalance)
QUICK = {"vggface2": {"n": 4}, "lfw": {"n": 4}, "utkface": {"n": 8}, "affectnet": {"n": 64, "n_val_per_class": 4},
         "afew": {"n": 7}, "vgaf": {"n": 3}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", help="write into this folder instead of a temporary one")
    ap.add_argument("--json", type=Path, help="write the figures here (with the machine and the date)")
    ap.add_argument("--quick", action="store_true", help="a few items per dataset: a smoke test, no timing claim")
    args = ap.parse_args(argv)
    info = machine(torch_info=False)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        print(f"generating the notebook datasets into {out} with {args.workers} workers "
              f"(load average before: {os.getloadavg()[0]:.1f})")
        print(f"{'dataset':10s} {'n':>5s} {'files':>6s} {'frames':>7s} {'wall s':>7s} {'cpu s':>7s} "
              f"{'per wall s':>14s}")
        total_wall = total_cpu = 0.0
        for name, kw in NOTEBOOK_DEFAULTS.items():
            kw = {**kw, **QUICK[name]} if args.quick else kw
            c0, t0 = cpu_seconds(), time.perf_counter()
            summary = generate(name, out / name, workers=args.workers, progress=False, **kw)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            total_wall += wall
            total_cpu += cpu
            files = summary.get("images", summary.get("clips", 0))
            frames = summary.get("frames")
            rate = f"{(frames or files) / wall:7.1f} {'fr' if frames else 'img'}/s"
            print(f"{name:10s} {kw['n']:5d} {files:6d} {frames or '':>7} {wall:7.1f} {cpu:7.1f} {rate:>14s}")
            rows.append({"dataset": name, "n": kw["n"], "files": files, "frames": frames, "wall_s": wall, "cpu_s": cpu})
        idle = total_cpu / max(args.workers, 1)
        print(f"total wall {total_wall:.1f} s, CPU {total_cpu:.1f} s -> about {idle:.1f} s on "
              f"{args.workers} idle cores (target <= {TARGET_S:.0f} s: "
              f"{'OK' if min(total_wall, idle) <= TARGET_S else 'OVER'}; "
              f"wall {'OK' if total_wall <= TARGET_S else 'OVER'}); "
              f"load average after: {os.getloadavg()[0]:.1f}")
    if args.json:
        write_json(args.json, {
            "machine": info, "workers": args.workers, "quick": args.quick, "datasets": rows,
            "total_wall_s": total_wall, "total_cpu_s": total_cpu, "idle_estimate_s": idle, "target_s": TARGET_S,
            "photos": sum(r["files"] for r in rows if r["frames"] is None),
            "clips": sum(r["files"] for r in rows if r["frames"] is not None),
            "clip_frames": sum(r["frames"] or 0 for r in rows), "load_average_end": load_average()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
