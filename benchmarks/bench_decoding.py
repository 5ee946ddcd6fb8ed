"""Decoding speed: 1,040,000 latent frames to 20 C-alpha atoms with the paper's decoder.

A `CWGANDecoder` with the paper's architecture (3 x 200 swish units, 50 noise dimensions) maps
latent points (m = 3) to 60 coordinates. Its `sample` is timed against a bare torch forward
pass of the same generator network on pre-drawn input, with no validation, scaling, noise
generation or conversion to numpy.

Every timed run is a fresh worker process, so that its peak memory can be read from the
process's maximum resident set size: the worker makes one untimed warm-up call (which
measures the memory) and then one timed call. ``--repeats`` such processes run for each
method, alternating between the two, so both get the same warm-up and the same number of
runs; the best and the median are reported.

The weights come from a one-epoch fit on random data: they do not change the cost.

Usage::

    python benchmarks/bench_decoding.py              # full size, writes results/decoding.json
    python benchmarks/bench_decoding.py --quick --output /tmp/decoding.json   # quick look
"""

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import torch
from _common import RESULTS, machine_info, start_run, time_interleaved, write_result

from sklss.decoder import CWGANDecoder


def _peak_rss_mb():
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _latent(n_frames, n_latent):
    return np.random.default_rng(0).standard_normal((n_frames, n_latent), dtype=np.float32)


def _worker(kind, model_path, n_frames, repeats):
    """Time one way of decoding in this process (after one warm-up); print a JSON record."""
    dec = joblib.load(model_path)
    psi = _latent(n_frames, dec.n_features_in_)
    if kind == "sample":

        def run():
            return dec.sample(psi, random_state=0)

    else:
        net = dec.net_.module_.mlp.eval()
        # Latent points and pre-drawn noise side by side, written in place so that no
        # temporary raises the peak memory before the measurement starts.
        inputs = torch.empty(n_frames, psi.shape[1] + dec.noise_dim)
        inputs[:, : psi.shape[1]] = torch.from_numpy(psi)
        inputs[:, psi.shape[1] :].normal_(generator=torch.Generator().manual_seed(0))
        chunk = 16384

        def run():
            out = torch.empty(n_frames, dec.n_outputs_)
            with torch.inference_mode():
                for start in range(0, n_frames, chunk):
                    out[start : start + chunk] = net(inputs[start : start + chunk])
            return out

    # The first call measures memory: its peak above what the process held before, output
    # included. Later calls, warmed up, are timed.
    baseline = _peak_rss_mb()
    result = run()
    peak_extra = _peak_rss_mb() - baseline
    del result
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - start)
    record = {
        "kind": kind,
        "n_frames": n_frames,
        "times_s": times,
        "best_s": min(times),
        "median_s": float(np.median(times)),
        "frames_per_s": n_frames / min(times),
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_above_baseline_mb": peak_extra,
        "output_mb": result.numel() * result.element_size() / 2**20
        if isinstance(result, torch.Tensor)
        else result.nbytes / 2**20,
        "output_dtype": str(result.dtype),
        "machine": machine_info(),
    }
    print(json.dumps(record))


def _run_worker(kind, model_path, args):
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(model_path)]
    cmd += ["--frames", str(args.frames), "--repeats", "1"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_040_000)
    parser.add_argument("--latent", type=int, default=3)
    parser.add_argument("--atoms", type=int, default=20)
    parser.add_argument(
        "--repeats", type=int, default=3, help="timed runs (worker processes) per method"
    )
    parser.add_argument("--quick", action="store_true", help="100,000 frames")
    parser.add_argument("--output", type=Path, default=RESULTS / "decoding.json")
    parser.add_argument("--worker", choices=["sample", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.model, args.frames, args.repeats)
        return
    if args.quick:
        args.frames = 100_000
    run = start_run()

    rng = np.random.default_rng(0)
    psi = rng.standard_normal((4096, args.latent))
    coordinates = rng.standard_normal((4096, 3 * args.atoms))
    dec = CWGANDecoder(noise_dim=50, hidden_layer_sizes=(200, 200, 200), activation="swish")
    dec.set_params(max_epochs=1, validation_fraction=0.0, random_state=0)
    dec.fit(psi, coordinates)

    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "decoder.joblib"
        joblib.dump(dec, model_path)
        records = {"sample": [], "bare": []}

        def measure(kind):
            def call():
                rec = _run_worker(kind, model_path, args)
                records[kind].append(rec)
                return rec["times_s"][0]

            return call

        # One process per timed run, alternating the two methods; each process warms up once.
        timing = time_interleaved(
            {k: measure(k) for k in records}, warmup=0, repeats=args.repeats, self_timed=True
        )
    summary = {}
    for kind, recs in records.items():
        t = timing[kind]
        summary[kind] = {
            "best_s": t["best"],
            "median_s": t["median"],
            "times_s": t["all"],
            "frames_per_s": args.frames / t["best"],
            "frames_per_s_median": args.frames / t["median"],
            "peak_rss_above_baseline_mb": float(
                np.median([r["peak_rss_above_baseline_mb"] for r in recs])
            ),
            "peak_rss_above_baseline_mb_all": [r["peak_rss_above_baseline_mb"] for r in recs],
            "output_mb": recs[0]["output_mb"],
            "output_dtype": recs[0]["output_dtype"],
            "worker_torch_threads": sorted({r["machine"]["torch_threads"] for r in recs}),
        }
    result = {
        "benchmark": "decoding",
        "description": (
            f"CWGANDecoder.sample on {args.frames} float32 latent frames (m={args.latent}) "
            f"to {args.atoms} atoms ({3 * args.atoms} outputs); 3x200 swish, 50 noise dims"
        ),
        "timing": (
            f"{args.repeats} fresh worker processes per method, alternating between methods; "
            "each makes 1 untimed warm-up call (which measures peak memory) and 1 timed call; "
            "best and median over the processes"
        ),
        "target_s": 5.0,
        "sample": summary["sample"],
        "bare_forward": summary["bare"],
        "sample_over_bare": summary["sample"]["best_s"] / summary["bare"]["best_s"],
        "sample_over_bare_median": summary["sample"]["median_s"] / summary["bare"]["median_s"],
        "all_runs": records,
    }
    rows = [
        ("CWGANDecoder.sample", summary["sample"]),
        ("bare torch forward", summary["bare"]),
    ]
    print(
        f"Decoding {args.frames:,} frames, m={args.latent} -> {3 * args.atoms} outputs; "
        f"best and median of {args.repeats} processes per method, each warmed up once"
    )
    print(
        f"{'method':<22}{'best (s)':>10}{'median (s)':>12}{'frames/s':>14}"
        f"{'peak +MB':>10}{'output MB':>11}"
    )
    for name, r in rows:
        print(
            f"{name:<22}{r['best_s']:>10.2f}{r['median_s']:>12.2f}"
            f"{r['frames_per_s']:>14,.0f}{r['peak_rss_above_baseline_mb']:>10.0f}"
            f"{r['output_mb']:>11.0f}"
        )
    print(
        f"sample / bare = {result['sample_over_bare']:.2f} (best), "
        f"{result['sample_over_bare_median']:.2f} (median); target <= 5 s: "
        f"{'met' if summary['sample']['best_s'] <= 5.0 else 'NOT met'}"
    )
    path = write_result(args.output, result, run)
    m = json.loads(path.read_text())["machine"]
    print(
        f"load average {m['start']['load_average'][0]:.1f} before, "
        f"{m['end']['load_average'][0]:.1f} after; wrote {path}"
    )


if __name__ == "__main__":
    main()
