"""What every script in ``benchmarks/`` needs: the machine, CPU time, interleaved timing, rates, JSON.

* :func:`machine` describes the machine a figure was measured on (CPU model, bf16 flags, cores, torch
  threads, versions, load average); :func:`machine_text` says it in one line (``make_results``).
* :func:`cpu_seconds`, :class:`Timer` and :class:`CpuMeter` measure CPU time: this process's, its
  children's, and what the *other* processes of the machine took meanwhile.
* :func:`timed_rounds` times several methods round-robin (background load hits each alike);
  :func:`medians` and :func:`rate_stats` summarise the rounds.
* :func:`write_json` writes a script's figures with the machine and the date (``--json OUT``);
  ``benchmarks/make_results.py`` renders the committed copies into ``docs/results.md``.

Nothing here imports torch at module level: a script may set its thread count first.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path

#: CPU flags worth knowing for these networks (bf16 paths of oneDNN).
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


# --- the machine ----------------------------------------------------------------------------------------
def cpu_info() -> dict:
    """``{"model", "logical_cores", "flags": {flag: bool}}`` from /proc/cpuinfo (platform's guess elsewhere)."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        for line in Path("/proc/cpuinfo").read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and model in ("", platform.machine(), platform.processor()):
                model = value.strip()
            elif key.strip() in ("flags", "Features") and not flags:
                flags = set(value.split())
    except OSError:
        pass
    return {"model": model, "logical_cores": os.cpu_count(), "flags": {f: f in flags for f in CPU_FLAGS}}


def load_average() -> list:
    """The 1, 5 and 15-minute load averages (empty where the OS has none)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return []


def machine(torch_info: bool = True) -> dict:
    """The machine a run measures: CPU, flags, cores, threads, versions, load average now.

    ``torch_info=False`` leaves torch out (a script whose work runs in other processes, e.g. kernels)."""
    out = {"cpu": cpu_info(), "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
           "versions": {"python": platform.python_version()}, "platform": platform.platform(),
           "load_average": load_average()}
    if torch_info:
        import torch

        from facelab.inference.runtime import cpu_supports_bf16

        out["torch_threads"] = torch.get_num_threads()
        out["native_bf16"] = bool(cpu_supports_bf16())
        out["versions"]["torch"] = torch.__version__
    return out


def module_versions(modules) -> dict:
    """``{module: version}`` of each importable module (``None`` if it does not import); a module without
    ``__version__`` is looked up in the installed distributions (``facenet_pytorch`` -> facenet-pytorch)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in modules:
        try:
            out[name] = getattr(__import__(name), "__version__", None)
        except ImportError:
            out[name] = None
            continue
        if out[name] is None:
            try:
                out[name] = version(name.replace("_", "-"))
            except PackageNotFoundError:
                out[name] = "?"
    return out


def machine_text(m) -> str:
    """One line for a machine of :func:`machine` (older result files hold that line already)."""
    if isinstance(m, str):
        return m
    cpu = m["cpu"]
    bf16 = [f for f in ("avx512_bf16", "amx_bf16") if cpu["flags"].get(f)] or ["no bf16 flag"]
    text = f"{cpu['model']} ({', '.join(bf16)}), {cpu['logical_cores']} cores"
    if "torch_threads" in m:
        text += f", torch {m['versions']['torch']}, {m['torch_threads']} torch thread{'s' * (m['torch_threads'] != 1)}"
    else:
        text += ", torch threads: " + (m.get("OMP_NUM_THREADS") or "torch's default")
    if m.get("load_average"):
        text += f", load average {m['load_average'][0]:.2f} at the start"
    return text


# --- CPU time ------------------------------------------------------------------------------------------
def cpu_seconds(children: bool = True) -> float:
    """User + system CPU seconds of this process (all threads) and, if asked, its finished children."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    total = me.ru_utime + me.ru_stime
    if children:
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        total += kids.ru_utime + kids.ru_stime
    return total


def children_cpu_seconds() -> float:
    """User + system CPU seconds of this process's finished children only (e.g. notebook kernels)."""
    return cpu_seconds() - cpu_seconds(children=False)


class Timer:
    """``with Timer() as t: ...`` -> ``t.wall``, ``t.cpu`` (seconds; CPU of this process and its children)."""

    def __enter__(self):
        self.w0, self.c0 = time.perf_counter(), cpu_seconds()
        return self

    def __exit__(self, *exc):
        self.wall, self.cpu = time.perf_counter() - self.w0, cpu_seconds() - self.c0


class CpuMeter:
    """CPU seconds the *other* processes of the machine used while this one ran
    (``/proc/stat`` busy time minus this process's own user + system time)."""

    def __init__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), cpu_seconds()

    @staticmethod
    def _busy():
        try:
            fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
            user, nice, system, idle, iowait, irq, softirq, steal = (int(v) for v in fields[:8])
            return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")
        except (OSError, ValueError):
            return None

    def report(self) -> dict:
        wall = time.perf_counter() - self.t0
        busy = self._busy()
        own = cpu_seconds() - self.own0
        other = None if busy is None or self.busy0 is None else max(0.0, busy - self.busy0 - own)
        return {"wall_s": round(wall, 1), "own_cpu_s": round(own, 1),
                "other_processes_cpu_s": None if other is None else round(other, 1),
                "other_processes_mean_cores": None if other is None else round(other / max(wall, 1e-9), 2)}


# --- timing --------------------------------------------------------------------------------------------
def timed_rounds(fns: dict, repeats: int, warmups: dict | None = None) -> tuple[dict, dict]:
    """Wall times of every ``fns[key]()`` over ``repeats`` round-robin rounds (a change in background
    load hits every method alike), after one warm-up call each (``warmups[key]()`` if given).
    Returns ``({key: [seconds of round 1, round 2, ...]}, {key: output of the first timed call})``."""
    for key, fn in fns.items():
        (warmups or {}).get(key, fn)()
    times, outputs = {k: [] for k in fns}, {}
    for r in range(repeats):
        for key, fn in fns.items():
            t0 = time.perf_counter()
            out = fn()
            times[key].append(time.perf_counter() - t0)
            if r == 0:
                outputs[key] = out
    return times, outputs


def medians(times: dict) -> dict:
    """``{key: median seconds}`` of :func:`timed_rounds`'s times."""
    return {key: statistics.median(ts) for key, ts in times.items()}


def rate_stats(count: int, seconds: list) -> dict:
    """``count`` items per second at the median, slowest and fastest of ``seconds``."""
    med = statistics.median(seconds)
    return {"per_s": count / med, "per_s_min": count / max(seconds), "per_s_max": count / min(seconds),
            "median_s": med, "times_s": [round(t, 4) for t in seconds]}


# --- output --------------------------------------------------------------------------------------------
def _plain(value):
    """numpy scalars and arrays as numbers and lists; anything else JSON does not know as text."""
    if hasattr(value, "tolist"):
        return value.tolist()
    return str(value)


def write_json(path, result: dict, *, torch_info: bool = True) -> Path:
    """Write ``result`` to ``path`` as JSON, with ``"machine"`` (:func:`machine`, unless the result has
    one) and ``"date"`` (today, UTC) added; folders are made.  Returns the path."""
    path = Path(path)
    out = dict(result)
    out.setdefault("machine", machine(torch_info))
    out.setdefault("date", datetime.datetime.now(datetime.timezone.utc).date().isoformat())
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, default=_plain) + "\n", encoding="utf-8")
    return path
