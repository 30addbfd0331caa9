"""How fast does the built-in face world generate the notebooks' datasets?

Generates every dataset of ``facelab.synth.writers.NOTEBOOK_DEFAULTS`` into a
temporary folder with 2 worker processes and prints, per dataset, the files and
frames written, images (or frames) per second, wall and CPU seconds, and the total.
Target (issue 3): all default notebook datasets together in <= 60 s on 2 cores.

The CPU seconds (main process + workers) divided by the number of workers estimate
the wall time on an otherwise idle machine; the wall time is what this run took
with whatever else was running (the load average is printed before and after).

    python benchmarks/bench_synth.py [--workers 2] [--keep DIR]
"""
from __future__ import annotations

import argparse
import os
import resource
import tempfile
import time
from pathlib import Path

from facelab.synth.writers import NOTEBOOK_DEFAULTS, generate

TARGET_S = 60.0


def cpu_seconds() -> float:
    """User + system CPU time of this process and its finished children (the pool workers)."""
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--keep", help="write into this folder instead of a temporary one")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        print(f"generating the notebook datasets into {out} with {args.workers} workers "
              f"(load average before: {os.getloadavg()[0]:.1f})")
        print(f"{'dataset':10s} {'n':>5s} {'files':>6s} {'frames':>7s} {'wall s':>7s} {'cpu s':>7s} "
              f"{'per wall s':>14s}")
        total_wall = total_cpu = 0.0
        for name, kw in NOTEBOOK_DEFAULTS.items():
            c0, t0 = cpu_seconds(), time.perf_counter()
            summary = generate(name, out / name, workers=args.workers, progress=False, **kw)
            wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            total_wall += wall
            total_cpu += cpu
            files = summary.get("images", summary.get("clips", 0))
            frames = summary.get("frames")
            rate = f"{(frames or files) / wall:7.1f} {'fr' if frames else 'img'}/s"
            print(f"{name:10s} {kw['n']:5d} {files:6d} {frames or '':>7} {wall:7.1f} {cpu:7.1f} {rate:>14s}")
        idle = total_cpu / max(args.workers, 1)
        print(f"total wall {total_wall:.1f} s, CPU {total_cpu:.1f} s -> about {idle:.1f} s on "
              f"{args.workers} idle cores (target <= {TARGET_S:.0f} s: "
              f"{'OK' if min(total_wall, idle) <= TARGET_S else 'OVER'}; "
              f"wall {'OK' if total_wall <= TARGET_S else 'OVER'}); "
              f"load average after: {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
