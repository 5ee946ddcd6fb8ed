"""Decoding speed: 1,040,000 latent frames to 20 C-alpha atoms with the paper's decoder.

A `CWGANDecoder` with the paper's architecture (3 x 200 swish units, 50 noise dimensions) maps
latent points (m = 3) to 60 coordinates. Its `sample` is timed against a bare torch forward
pass of the same generator network on pre-drawn input, with no validation, scaling, noise
generation or conversion to numpy. Each measurement runs in a fresh worker process, so that
its peak memory can be read from the process's maximum resident set size.

The weights come from a one-epoch fit on random data: they do not change the cost.

Usage::

    python benchmarks/bench_decoding.py              # full size, writes results/decoding.json
    python benchmarks/bench_decoding.py --frames 100000 --repeats 1   # quick look
"""

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
import torch

from sklss.decoder import CWGANDecoder

RESULTS = Path(__file__).resolve().parent / "results"


def _peak_rss_mb():
    # ru_maxrss is in KiB on Linux and in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10


def _latent(n_frames, n_latent):
    return np.random.default_rng(0).standard_normal((n_frames, n_latent), dtype=np.float32)


def _worker(kind, model_path, n_frames, repeats):
    """Time one way of decoding in this process; print a JSON record."""
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
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(record))


def _run_worker(kind, model_path, args):
    cmd = [sys.executable, __file__, "--worker", kind, "--model", str(model_path)]
    cmd += ["--frames", str(args.frames), "--repeats", str(args.repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=1_040_000)
    parser.add_argument("--latent", type=int, default=3)
    parser.add_argument("--atoms", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--output", type=Path, default=RESULTS / "decoding.json")
    parser.add_argument("--worker", choices=["sample", "bare"], help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        _worker(args.worker, args.model, args.frames, args.repeats)
        return

    rng = np.random.default_rng(0)
    psi = rng.standard_normal((4096, args.latent))
    coordinates = rng.standard_normal((4096, 3 * args.atoms))
    dec = CWGANDecoder(noise_dim=50, hidden_layer_sizes=(200, 200, 200), activation="swish")
    dec.set_params(max_epochs=1, validation_fraction=0.0, random_state=0)
    dec.fit(psi, coordinates)

    load_before = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        model_path = Path(tmp) / "decoder.joblib"
        joblib.dump(dec, model_path)
        # Alternate the two, so that a change in the machine's load hits both alike.
        records = {"sample": [], "bare": []}
        for _ in range(2):
            for kind in ("sample", "bare"):
                records[kind].append(_run_worker(kind, model_path, args))
    best = {k: min(v, key=lambda r: r["best_s"]) for k, v in records.items()}
    result = {
        "benchmark": "decoding",
        "description": (
            f"CWGANDecoder.sample on {args.frames} float32 latent frames (m={args.latent}) "
            f"to {args.atoms} atoms ({3 * args.atoms} outputs); 3x200 swish, 50 noise dims"
        ),
        "target_s": 5.0,
        "sample": best["sample"],
        "bare_forward": best["bare"],
        "sample_over_bare": best["sample"]["best_s"] / best["bare"]["best_s"],
        "all_runs": records,
        "machine": {
            "cpu_count": os.cpu_count(),
            "processor": platform.processor() or platform.machine(),
            "python": platform.python_version(),
            "torch": torch.__version__,
            "load_average_before": load_before,
            "load_average_after": os.getloadavg()[0],
        },
    }
    rows = [
        ("CWGANDecoder.sample", best["sample"]),
        ("bare torch forward", best["bare"]),
    ]
    print(f"Decoding {args.frames:,} frames, m={args.latent} -> {3 * args.atoms} outputs")
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
        f"sample / bare = {result['sample_over_bare']:.2f}; target <= 5 s: "
        f"{'met' if best['sample']['best_s'] <= 5.0 else 'NOT met'}; "
        f"load average {load_before:.1f} before, {result['machine']['load_average_after']:.1f} "
        f"after on {os.cpu_count()} CPUs"
    )
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
