"""Sampling speed of `MDNPropagator` at the scale of the paper's Trp-cage run.

An MDN with the paper's Trp-cage architecture (m = 3 latent dimensions, C = 24 kernels, two
hidden layers of 100 ReLU units; one training epoch on random data, which does not change the
cost) generates

- 100 trajectories x 10,400 steps (target: at most 2 s), and
- one trajectory of 1,000,000 steps (target: at most 20 s, >= 50,000 steps per second),

through `MDNPropagator.sample`. As the baseline, a straightforward per-step torch loop runs
the same network under `torch.inference_mode` (mixture parameters, `torch.multinomial`,
`torch.randn`, clamping to the box), and the same loop with its step compiled by
`torch.compile` on pre-drawn noise. The slow baselines run fewer steps; steps per second are
comparable because the cost per step does not depend on the number of steps.

Every timed run is a fresh worker process with one BLAS and one torch thread, so that its
peak memory can be read from the kernel (the rise of the resident set size during the timed
run; the high-water mark is reset first) and the runs do not disturb each other. Every
method, sklss's and the baselines alike, gets the same treatment: the worker makes one
untimed warm-up run of the full size, then one timed run; ``--repeats`` workers run per
method, alternating between the methods of a case, and the best and the median are
reported. ``steps`` counts sampled transitions, ``n_starts * (n_steps - 1)``.

Writes ``results/sampling.json``.

Usage::

    python benchmarks/bench_sampling.py                 # about 5 minutes
    python benchmarks/bench_sampling.py --no-compile    # skip the torch.compile baseline
    python benchmarks/bench_sampling.py --quick --output /tmp/sampling.json   # smoke run
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc

import joblib
import numpy as np
from _common import RESULTS, machine_info, start_run, time_interleaved, write_result

N_LATENT, N_KERNELS, HIDDEN = 3, 24, (100, 100)

# (name, method, n_starts, n_steps, target seconds for the full size)
CASES = [
    ("batch", "sample", 100, 10_400, 2.0),
    ("batch", "sample_memmap", 100, 10_400, None),
    ("batch", "torch_loop", 100, 10_400, None),
    ("batch", "torch_compiled", 100, 10_400, None),
    ("single", "sample", 1, 1_000_000, 20.0),
    ("single", "torch_loop", 1, 20_000, None),
    ("single", "torch_compiled", 1, 20_000, None),
]


def _proc_status_kb(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def _reset_peak_rss():
    """Reset the kernel's high-water mark of the resident set size (Linux); False if not."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _train(path):
    from sklss.propagator import MDNPropagator

    rng = np.random.default_rng(0)
    x = np.cumsum(rng.standard_normal((5000, N_LATENT)), axis=0) * 0.05
    mdn = MDNPropagator(
        lag_time=1,
        n_kernels=N_KERNELS,
        hidden_layer_sizes=HIDDEN,
        max_epochs=1,
        random_state=0,
    ).fit(x)
    joblib.dump(mdn, path)


def _torch_runner(mdn, n_starts, n_steps, compiled):
    """The baseline: one torch call sequence per step, as a first implementation would be."""
    import torch

    module = mdn.net_.module_.eval()
    lo = torch.as_tensor((mdn.data_min_ - mdn.mean_) / mdn.scale_, dtype=torch.float32)
    hi = torch.as_tensor((mdn.data_max_ - mdn.mean_) / mdn.scale_, dtype=torch.float32)
    rows = torch.arange(n_starts)

    def step(x, gumbel, normal):
        log_w, mu, sigma = module.mixture(x)
        k = (log_w + gumbel).argmax(dim=1)
        return torch.clamp(mu[rows, k] + sigma[rows, k] * normal, lo, hi)

    fast_step = torch.compile(step, dynamic=False) if compiled else None

    def run(X0, seed):
        gen = torch.Generator().manual_seed(seed)
        x = torch.as_tensor((X0 - mdn.mean_) / mdn.scale_, dtype=torch.float32)
        out = torch.empty(n_steps, n_starts, N_LATENT)
        out[0] = x
        with torch.inference_mode():
            if compiled:
                u = torch.rand(n_steps, n_starts, N_KERNELS, generator=gen)
                gumbel = -torch.log(-torch.log(u.clamp_min(1e-30)))
                normal = torch.randn(n_steps, n_starts, N_LATENT, generator=gen)
                for t in range(1, n_steps):
                    x = fast_step(x, gumbel[t], normal[t])
                    out[t] = x
            else:
                for t in range(1, n_steps):
                    log_w, mu, sigma = module.mixture(x)
                    k = torch.multinomial(log_w.exp(), 1, generator=gen)[:, 0]
                    noise = torch.randn(n_starts, N_LATENT, generator=gen)
                    x = torch.clamp(mu[rows, k] + sigma[rows, k] * noise, lo, hi)
                    out[t] = x
        return out.numpy().transpose(1, 0, 2) * mdn.scale_ + mdn.mean_

    if compiled:
        t0 = time.perf_counter()
        with torch.inference_mode():
            fast_step(
                torch.zeros(n_starts, N_LATENT),
                torch.zeros(n_starts, N_KERNELS),
                torch.zeros(n_starts, N_LATENT),
            )
        run.compile_seconds = time.perf_counter() - t0
    return run


def _worker(method, model_path, n_starts, n_steps, trace):
    """One warm-up run and one timed run of one way of sampling; print a JSON record."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(1)
    mdn = joblib.load(model_path)
    X0 = np.random.default_rng(1).uniform(mdn.data_min_, mdn.data_max_, (n_starts, N_LATENT))
    extra = {}
    tmpdir = tempfile.TemporaryDirectory()
    if method in ("sample", "sample_memmap"):

        def run(seed):
            out = None
            if method == "sample_memmap":
                path = os.path.join(tmpdir.name, "trajectories.npy")
                out = np.lib.format.open_memmap(
                    path, mode="w+", dtype=np.float64, shape=(n_starts, n_steps, N_LATENT)
                )
            result = mdn.sample(X0, n_steps, random_state=seed, out=out)
            del result, out

    else:
        runner = _torch_runner(mdn, n_starts, n_steps, compiled=method == "torch_compiled")
        if hasattr(runner, "compile_seconds"):
            extra["compile_seconds"] = runner.compile_seconds

        def run(seed):
            runner(X0, seed)

    with threadpool_limits(limits=1, user_api="blas"):
        run(123)  # warm-up, the same full-size run for every method
        rss_before = _proc_status_kb("VmRSS")
        peak_reset = _reset_peak_rss()
        t0 = time.perf_counter()
        run(0)
        seconds = time.perf_counter() - t0
        rss_peak = _proc_status_kb("VmHWM")
        traced = None
        if trace and method in ("sample", "sample_memmap"):
            tracemalloc.start()
            run(1)
            traced = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
        info = machine_info()
    tmpdir.cleanup()
    record = {
        "method": method,
        "n_starts": n_starts,
        "n_steps": n_steps,
        "seconds": seconds,
        "peak_rss_rise_mb": (rss_peak - rss_before) / 1024 if peak_reset else None,
        "peak_traced_mb": traced,
        "output_mb": n_starts * n_steps * N_LATENT * 8 / 2**20,
        "torch_threads": info["torch_threads"],
        "blas_threads": info["blas_threads"],
        **extra,
    }
    print(json.dumps(record))


def _measure(runs, method, model, n_starts, n_steps, env):
    """A callable that runs one worker and returns its timed seconds (the record goes to runs)."""

    def call():
        cmd = [sys.executable, __file__]
        if not runs[method]:
            cmd.append("--trace")  # tracemalloc's peak, in the first worker of a method only
        cmd += ["--worker", method, model, str(n_starts), str(n_steps)]
        done = subprocess.run(cmd, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            print(done.stderr, file=sys.stderr)
            raise SystemExit(f"worker {method} ({n_starts} x {n_steps}) failed")
        rec = json.loads(done.stdout.strip().splitlines()[-1])
        runs[method].append(rec)
        return rec["seconds"]

    return call


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (workers) per method")
    parser.add_argument("--no-compile", action="store_true", help="skip torch.compile")
    parser.add_argument(
        "--quick", action="store_true", help="steps divided by 20, 2 repeats, no torch.compile"
    )
    parser.add_argument("--output", default=str(RESULTS / "sampling.json"))
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--worker", nargs=4, metavar=("METHOD", "MODEL", "STARTS", "STEPS"))
    args = parser.parse_args()
    if args.worker:
        method, model, n_starts, n_steps = args.worker
        _worker(method, model, int(n_starts), int(n_steps), args.trace)
        return
    cases = CASES
    if args.quick:
        args.repeats, args.no_compile = 2, True
        cases = [(c, m, n, steps // 20, t) for c, m, n, steps, t in CASES]
    run = start_run()

    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    records = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "mdn.joblib")
        _train(model)
        for case in ("batch", "single"):
            todo = [
                c for c in cases if c[0] == case and not (args.no_compile and "compiled" in c[1])
            ]
            runs = {c[1]: [] for c in todo}

            timing = time_interleaved(
                {m: _measure(runs, m, model, n, steps, env) for _, m, n, steps, _ in todo},
                warmup=0,
                repeats=args.repeats,
                self_timed=True,
            )
            for _, method, n_starts, n_steps, target in todo:
                recs, t = runs[method], timing[method]
                rss = [r["peak_rss_rise_mb"] for r in recs if r["peak_rss_rise_mb"] is not None]
                record = {
                    "case": case,
                    "method": method,
                    "n_starts": n_starts,
                    "n_steps": n_steps,
                    "target_s": target,
                    "best_s": t["best"],
                    "median_s": t["median"],
                    "times_s": t["all"],
                    "steps_per_s": n_starts * (n_steps - 1) / t["best"],
                    "steps_per_s_median": n_starts * (n_steps - 1) / t["median"],
                    "peak_rss_rise_mb": float(np.median(rss)) if rss else None,
                    "peak_rss_rise_mb_all": rss,
                    "peak_traced_mb": recs[0]["peak_traced_mb"],
                    "output_mb": recs[0]["output_mb"],
                    "worker_torch_threads": sorted({r["torch_threads"] for r in recs}),
                    "worker_blas_threads": recs[0]["blas_threads"],
                }
                compile_s = [r["compile_seconds"] for r in recs if "compile_seconds" in r]
                if compile_s:
                    record["compile_seconds"] = float(np.median(compile_s))
                records.append(record)

    for case in ("batch", "single"):
        base = next(r for r in records if r["case"] == case and r["method"] == "torch_loop")
        for r in records:
            if r["case"] == case:
                r["speedup_vs_torch_loop"] = r["steps_per_s"] / base["steps_per_s"]
                r["speedup_vs_torch_loop_median"] = (
                    r["steps_per_s_median"] / base["steps_per_s_median"]
                )

    header = (
        f"{'case':<8}{'method':<16}{'starts x steps':>18}{'best s':>9}{'median s':>10}"
        f"{'steps/s':>12}{'speedup':>9}{'peak RSS MB':>13}{'traced MB':>11}{'target':>8}"
    )
    print(
        f"best and median of {args.repeats} worker processes per method, each after one "
        "untimed full-size warm-up run; speedup from the best times"
    )
    print(header)
    print("-" * len(header))
    for r in records:
        rss = "" if r["peak_rss_rise_mb"] is None else f"{r['peak_rss_rise_mb']:.0f}"
        traced = "" if r["peak_traced_mb"] is None else f"{r['peak_traced_mb']:.0f}"
        target = "" if r["target_s"] is None else f"{r['target_s']:.0f} s"
        print(
            f"{r['case']:<8}{r['method']:<16}{r['n_starts']:>7,} x {r['n_steps']:>9,}"
            f"{r['best_s']:>9.2f}{r['median_s']:>10.2f}{r['steps_per_s']:>12,.0f}"
            f"{r['speedup_vs_torch_loop']:>8.1f}x{rss:>13}{traced:>11}{target:>8}"
        )
    for r in records:
        if "compile_seconds" in r:
            print(f"torch.compile took {r['compile_seconds']:.0f} s for the {r['case']} step")

    record = {
        "benchmark": "sampling",
        "model": {
            "n_features": N_LATENT,
            "n_kernels": N_KERNELS,
            "hidden_layer_sizes": HIDDEN,
            "activation": "relu",
        },
        "timing": (
            f"{args.repeats} fresh worker processes per method, alternating between the methods "
            "of a case; each makes one untimed full-size warm-up run and one timed run; best "
            "and median over the processes; peak RSS rise: median over the processes"
        ),
        "records": records,
        "note": (
            "steps = n_starts * (n_steps - 1); workers run with OMP/OPENBLAS/MKL_NUM_THREADS=1, "
            "torch.set_num_threads(1) and threadpool_limits(1); the threads they read are in "
            "worker_torch_threads and worker_blas_threads"
        ),
    }
    print(f"wrote {write_result(args.output, record, run)}")


if __name__ == "__main__":
    main()
