"""One worker policy for facelab's batch jobs (drawing the face world, preparing crops)."""
from __future__ import annotations

import os

from facelab.errors import InvalidInputError


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity, where the system tells it)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def default_workers(*, torch_work: bool = False) -> int:
    """Worker processes for a batch job.

    Drawing (numpy, one thread each) scales with the CPUs, up to 8 processes.  Work in torch
    (MTCNN) already runs several threads per process: one process below 8 CPUs (measured
    faster on 2 cores), else half the CPUs, at most 4.
    """
    cpus = usable_cpus()
    if torch_work:
        return 1 if cpus < 8 else min(4, cpus // 2)
    return min(8, cpus)


def check_workers(workers, *, torch_work: bool = False) -> int:
    """``workers`` as an int >= 1, or :func:`default_workers` for None."""
    count = default_workers(torch_work=torch_work) if workers is None else int(workers)
    if count < 1:
        raise InvalidInputError(f"workers={workers!r} must be >= 1")
    return count


__all__ = ["usable_cpus", "default_workers", "check_workers"]
