"""Shared helpers of the benchmark scripts: what machine a figure comes from, and how it is timed.

The scripts run as ``python benchmarks/<name>.py`` from the repository root, so this folder is
on ``sys.path`` and they import this module as ``from _common import ...``.

- :func:`machine_info` reads the state of the machine and the process at the time of the call:
  the git commit (and whether ``sklss/`` or ``benchmarks/`` differ from it), the thread counts
  torch and the BLAS libraries are set to, the load average, versions and a UTC timestamp.
- :func:`time_repeated` and :func:`time_interleaved` time callables with the same warm-up and
  the same number of repetitions; :func:`time_interleaved` alternates several callables within
  each repetition, so that a change in the machine's load hits all of them alike. Both report
  the best and the median time, and every time.
- :func:`write_result` writes a result as JSON with ``machine_info`` at the start of the run
  and at its end.
"""

import datetime
import functools
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")


def _git(*args):
    try:
        done = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _blas_threads():
    """Thread counts of the BLAS/OpenMP libraries loaded in this process (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return None
    return [
        {
            "user_api": p.get("user_api"),
            "internal_api": p.get("internal_api"),
            "threads": p.get("num_threads"),
        }
        for p in threadpool_info()
    ]


def _version(module):
    try:
        return __import__(module).__version__
    except Exception:  # a version is informative, never required
        return None


# Thread counts that sklss's fits ran with in this process (see _watch_sklss_fit_threads).
_FIT_THREADS = set()
_WATCHING = False


def _watch_sklss_fit_threads():
    """Record the torch thread counts sklss's training runs with.

    sklss trains every network inside ``sklss._nn.fixed_torch_threads(n)``, whatever the
    process's setting; this wraps that context manager so that ``machine_info`` can report the
    counts actually used instead of the process's setting alone.
    """
    global _WATCHING
    try:
        import sklss._nn as nn_module
    except ImportError:
        return
    original = getattr(nn_module, "fixed_torch_threads", None)
    if original is None or getattr(original, "_benchmark_watch", False):
        _WATCHING = original is not None
        return

    @functools.wraps(original)
    def watched(n_threads=1):
        _FIT_THREADS.add(int(n_threads))
        return original(n_threads)

    watched._benchmark_watch = True
    nn_module.fixed_torch_threads = watched
    _WATCHING = True


def machine_info():
    """The machine and this process now: commit, threads, load, versions, UTC time."""
    import numpy as np
    import torch

    # Result files rewritten by earlier scripts of the same run do not make the code dirty.
    status = _git(
        "status", "--porcelain", "--", "sklss", "benchmarks", ":(exclude)benchmarks/results"
    )
    info = {
        "timestamp_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "git_commit": _git("rev-parse", "HEAD"),
        # Uncommitted changes to the package or the benchmarks: the commit alone does not
        # identify the code that ran.
        "git_dirty": None if status is None else bool(status),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "processor": platform.processor() or None,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        # sklss trains its networks with a fixed thread count of its own: the counts its fits
        # used so far in this process (empty before any fit, None if it cannot be watched).
        "sklss_fit_torch_threads": sorted(_FIT_THREADS) if _WATCHING else None,
        "blas_threads": _blas_threads(),
        "thread_env": {k: os.environ[k] for k in THREAD_ENV if k in os.environ},
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "numpy": np.__version__,
        "torch": torch.__version__,
        "sklss": _version("sklss"),
    }
    return info


def summarise(seconds):
    """``{"best", "median", "all"}`` of a list of times in seconds."""
    seconds = [float(s) for s in seconds]
    return {"best": min(seconds), "median": statistics.median(seconds), "all": seconds}


def time_repeated(fn, *, warmup=1, repeats=3):
    """Call ``fn()`` ``warmup`` times untimed, then time ``repeats`` calls.

    Returns ``{"best": s, "median": s, "all": [s, ...]}``.
    """
    return time_interleaved({"fn": fn}, warmup=warmup, repeats=repeats)["fn"]


def time_interleaved(fns, *, warmup=1, repeats=3, self_timed=False):
    """Time several callables alike, alternating them within each repetition.

    Every callable of ``fns`` (a dict of name -> callable) gets ``warmup`` untimed calls and
    ``repeats`` timed ones. Within a repetition each is called once; the order is reversed on
    every other repetition (A B, B A, A B, ...) so that none is always first or last. With
    ``self_timed=True`` a callable returns its own time in seconds (a worker process timing
    the work inside it) instead of being timed here.

    Returns ``{name: {"best": s, "median": s, "all": [s, ...]}}``.
    """
    names = list(fns)
    for _ in range(warmup):
        for name in names:
            fns[name]()
    times = {name: [] for name in names}
    for rep in range(repeats):
        for name in names if rep % 2 == 0 else names[::-1]:
            if self_timed:
                times[name].append(float(fns[name]()))
            else:
                start = time.perf_counter()
                fns[name]()
                times[name].append(time.perf_counter() - start)
    return {name: summarise(t) for name, t in times.items()}


def timing_note(warmup, repeats):
    return (
        f"every timed method: {warmup} untimed warm-up call(s), then {repeats} timed calls, "
        "alternated between methods within each repetition; best and median reported"
    )


class Run:
    """The start of a benchmark run: ``machine_info`` when it began.

    Create it once the script has set its thread counts, so that the snapshot shows the
    settings the figures were measured with.
    """

    def __init__(self):
        self.start = machine_info()
        self.command = [Path(sys.argv[0]).name, *sys.argv[1:]]
        self._t0 = time.perf_counter()

    def machine(self):
        return {
            "start": self.start,
            "end": machine_info(),
            "command": self.command,
            "wall_seconds": time.perf_counter() - self._t0,
        }


_IMPORT_RUN = None


def start_run():
    """Record the machine at the start of the run (call it after setting thread counts)."""
    global _IMPORT_RUN
    _watch_sklss_fit_threads()
    _IMPORT_RUN = Run()
    return _IMPORT_RUN


def write_result(path, result, run=None):
    """Write ``result`` as JSON to ``path`` with ``machine_info`` at the run's start and end.

    ``run`` is the :class:`Run` from :func:`start_run` (the last one started if not given;
    without one, the start snapshot is taken now and is the same as the end). The machine
    block comes first in the file, the result after it. Returns the path.
    """
    run = run or _IMPORT_RUN or Run()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    out = {"machine": run.machine()}
    out.update({k: v for k, v in result.items() if k != "machine"})
    path.write_text(json.dumps(out, indent=2, default=_jsonable) + "\n")
    return path


def _jsonable(value):
    try:
        import numpy as np

        if isinstance(value, np.ndarray):
            return value.tolist()
        if isinstance(value, np.generic):
            return value.item()
    except ImportError:
        pass
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, tuple | set):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
