"""The whole latent space simulator: generation speed, streaming memory, and fidelity.

1. ``speed``: Trp-cage scale. An LSS with the paper's architectures (SRV 2x100 tanh with batch
   norm, m = 3; MDN C = 24 with 2x100 ReLU; cWGAN 3x200 swish with 50 noise dimensions) turns
   100 start frames into 100 trajectories x 10,400 steps decoded to 60 outputs. Target: at
   most 10 s (the paper: about 500 s on a GPU). Timing does not depend on fit quality, so each
   component is trained for one epoch on random data. The same run times the latent sampling
   alone and a bare torch forward pass of the generator over the same frames as baselines.
2. ``stream``: 10^7 decoded frames streamed to ``.npy`` files on disk, in a fresh process
   whose peak resident memory is read from the kernel. Target: below 2 GB.
3. ``four_well``: encoder and decoder passthrough, MDN on x (tau = 100 steps, C = 8):
   free-energy RMSE against the exact profile (target 0.2 kT over F <= 4 kT) and the leading
   implied timescale of a Markov model on the synthetic trajectory (target 15 %).
4. ``hidden``: SRV + MDN + cWGAN on the hidden-coordinate toy (200k training frames, 1M
   held-out): free-energy RMSE along psi_1 against held-out data (target 0.3 kT), the slowest
   autocorrelation timescale, LSS against held-out MD (target 15 %) and against the exact
   value, and the mean Jensen-Shannon divergence of the decoded features' marginals against
   held-out data (target 0.05).

In ``speed`` the three timed things (decoded sampling, latent-only sampling, the bare
generator forward pass) get the same warm-up (one untimed call each) and the same number of
timed calls (``--repeats``), alternating within each repetition; best and median reported.

Prints Markdown tables and writes ``results/bench_simulator.json`` (or ``--output``). Parts run
earlier and not rerun are kept from the existing file, each with the machine it ran on.

    python benchmarks/bench_simulator.py [--parts speed stream four_well hidden] [--quick]
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, machine_info, start_run, time_interleaved, write_result

from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss.datasets import four_well, four_well_reference, hidden_wells, hidden_wells_reference
from sklss.metrics import free_energy_profile, free_energy_rmse, js_divergence, markov_timescales


def paper_lss(n_features, n_outputs, epochs=1):
    return LatentSpaceSimulator(
        SRVTransformer(n_components=3, hidden_layer_sizes=(100, 100), max_epochs=epochs),
        MDNPropagator(n_kernels=24, hidden_layer_sizes=(100, 100), max_epochs=epochs),
        CWGANDecoder(
            noise_dim=50,
            hidden_layer_sizes=(200, 200, 200),
            activation="swish",
            max_epochs=epochs,
        ),
        lag_time=1,
        random_state=0,
    )


def briefly_trained(n_features=30, n_outputs=60):
    rng = np.random.default_rng(0)
    X = np.cumsum(rng.normal(size=(4000, n_features)), axis=0).astype(np.float32) * 0.01
    Y = rng.normal(size=(4000, n_outputs)).astype(np.float32)
    return paper_lss(n_features, n_outputs).fit(X, Y), X


def part_speed(args):
    lss, X = briefly_trained()
    X0 = X[:100]
    n_steps = args.speed_steps
    state = {}

    def decoded():
        state["result"] = lss.sample(X0, n_steps, random_state=0)

    def latent_only():
        lss.sample(X0, n_steps, random_state=0, decode=False)

    # Baseline: a bare torch forward pass of the generator over the same frames and noise,
    # prepared from the frames of the first decoded call (inside its untimed warm-up).
    module = lss.decoder_.net_.module_.eval()

    def bare():
        if "flat" not in state:
            latent = state["result"].latent.reshape(-1, 3)
            state["flat"] = torch.from_numpy(np.ascontiguousarray(latent))
            state["noise"] = torch.randn(len(state["flat"]), 50)
        flat, noise = state["flat"], state["noise"]
        with torch.inference_mode():
            for s in range(0, len(flat), 262_144):
                module(flat[s : s + 262_144], noise[s : s + 262_144])

    timing = time_interleaved(
        {"decoded": decoded, "latent_only": latent_only, "bare_generator_forward": bare},
        warmup=1,
        repeats=args.repeats,
    )
    frames = 100 * n_steps
    row = {
        "trajectories": 100,
        "steps": n_steps,
        "frames": frames,
        "timing": (
            f"1 untimed warm-up call each, then {args.repeats} timed calls each, alternating; "
            "seconds_* are the best, *_median the median"
        ),
        "seconds_total": timing["decoded"]["best"],
        "seconds_total_median": timing["decoded"]["median"],
        "seconds_latent_only": timing["latent_only"]["best"],
        "seconds_latent_only_median": timing["latent_only"]["median"],
        "seconds_bare_generator_forward": timing["bare_generator_forward"]["best"],
        "seconds_bare_generator_forward_median": timing["bare_generator_forward"]["median"],
        "all_times": timing,
        "frames_per_second": frames / timing["decoded"]["best"],
        "target_seconds": 10.0,
    }
    print(
        f"\n### Generation at Trp-cage scale (100 x {n_steps:,} steps, m = 3, 60 outputs; "
        f"best and median of {args.repeats} after a warm-up)\n"
    )
    print("| what | best s | median s | frames / s (best) |")
    print("|---|---|---|---|")
    for label, key in (
        ("LSS sample, decoded", "decoded"),
        ("LSS sample, latent only", "latent_only"),
        ("bare generator forward (baseline)", "bare_generator_forward"),
    ):
        t = timing[key]
        print(f"| {label} | {t['best']:.2f} | {t['median']:.2f} | {frames / t['best']:,.0f} |")
    return row


def _stream_worker(folder, n_starts, n_steps):
    import resource

    lss, X = briefly_trained()
    t0 = time.perf_counter()
    lss.sample(X[:n_starts], n_steps, random_state=0, out=folder)
    seconds = time.perf_counter() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB -> MB
    info = machine_info()
    print(
        json.dumps(
            {"seconds": seconds, "peak_rss_mb": peak, "worker_torch_threads": info["torch_threads"]}
        )
    )


def part_stream(args):
    n_starts, n_steps = 1000, args.stream_frames // 1000
    with tempfile.TemporaryDirectory() as tmp:
        out = (
            subprocess.run(
                [sys.executable, __file__, "--stream-worker", tmp, str(n_starts), str(n_steps)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        res = json.loads(out)
        size = sum(f.stat().st_size for f in Path(tmp).iterdir()) / 2**30
    res.update(frames=n_starts * n_steps, file_gb=size, target_peak_mb=2048)
    print(f"\n### Streaming {n_starts * n_steps:,} decoded frames to disk\n")
    print("| seconds | peak RSS (MB) | files (GB) |")
    print("|---|---|---|")
    print(f"| {res['seconds']:.1f} | {res['peak_rss_mb']:.0f} | {size:.2f} |")
    return res


def part_four_well(args):
    stride, lag = 10, 10  # frames of 10 steps; tau = 100 steps
    X = four_well(args.four_well_steps // 10, n_trajectories=10, stride=stride, random_state=0)
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(n_kernels=8, hidden_layer_sizes=(100, 100), max_epochs=args.epochs),
        "passthrough",
        lag_time=lag,
        random_state=0,
    )
    t0 = time.perf_counter()
    lss.fit(X)
    fit_s = time.perf_counter() - t0
    n_frames = sum(len(x) for x in X)
    starts = np.stack([x[0] for x in X])
    synthetic = lss.sample(starts, n_frames // lag // len(X), random_state=1).latent
    ref = four_well_reference(stride=stride)
    edges = np.linspace(-1.1, 1.1, 61)
    F_ref = -np.log(np.histogram(ref.grid, edges, weights=ref.stationary_density)[0])
    F_lss, _ = free_energy_profile(synthetic[..., 0], bins=edges)
    rmse = free_energy_rmse(F_ref - np.nanmin(F_ref), F_lss, max_free_energy=4.0)
    # The synthetic trajectory advances one lag per step: its lag-1 Markov model is at tau.
    t_lss = float(markov_timescales(list(synthetic), edges, 1)[0]) * lag
    t_ref = float(ref.timescales[0])
    res = {
        "fit_seconds": fit_s,
        "free_energy_rmse_kT": rmse,
        "leading_timescale": t_lss,
        "reference_timescale": t_ref,
        "relative_error": t_lss / t_ref - 1,
    }
    print("\n### Four-well, encoder and decoder passthrough\n")
    print("| FE RMSE (kT) | t1 LSS | t1 exact | error |")
    print("|---|---|---|---|")
    print(f"| {rmse:.3f} | {t_lss:.0f} | {t_ref:.0f} | {t_lss / t_ref - 1:+.1%} |")
    return res


def part_hidden(args):
    X = hidden_wells(args.hidden_frames // 4, n_trajectories=4, n_features=20, random_state=0)
    # Held-out MD five times as long as the training data: the autocorrelation fit of one
    # 100k-frame trajectory scatters by about 12 %, so short held-out data cannot judge 15 %.
    X_test = hidden_wells(
        5 * args.hidden_frames // 4, n_trajectories=4, n_features=20, random_state=1
    )
    lss = LatentSpaceSimulator(
        SRVTransformer(n_components=2, batch_size=4096, max_epochs=args.epochs),
        MDNPropagator(n_kernels=24, max_epochs=args.mdn_epochs),
        CWGANDecoder(batch_size=256, max_epochs=args.gan_epochs),
        lag_time=5,
        random_state=0,
    )
    t0 = time.perf_counter()
    lss.fit(X)
    fit_s = time.perf_counter() - t0
    n_steps = 4 * len(X_test[0]) // lss.lag_time_  # synthetic runs 4x the held-out length
    t0 = time.perf_counter()
    # Along psi_1 (the latent space), and along the default observable (the leading TICA
    # coordinate of the features), both with empty bins charged at the 5 kT cap.
    rmse = lss.free_energy_rmse(X_test, n_steps=n_steps, space="latent")
    rmse_5kT = lss.free_energy_rmse(X_test, n_steps=n_steps)
    its = lss.implied_timescales(X_test, n_steps=n_steps)
    starts = np.stack([x[0] for x in X_test])
    configs = lss.sample(starts, len(X_test[0]) // lss.lag_time_, random_state=3).configurations
    score_s = time.perf_counter() - t0
    configs = configs.reshape(-1, 20)
    md = np.concatenate(X_test)
    js = []
    for j in range(md.shape[1]):
        edges = np.linspace(md[:, j].min(), md[:, j].max(), 41)
        js.append(
            js_divergence(np.histogram(md[:, j], edges)[0], np.histogram(configs[:, j], edges)[0])
        )
    exact = hidden_wells_reference().timescales
    res = {
        "train_frames": sum(len(x) for x in X),
        "held_out_frames": int(md.shape[0]),
        "fit_seconds": fit_s,
        "scoring_seconds": score_s,
        "free_energy_rmse_kT": rmse,
        "free_energy_rmse_observable_kT": rmse_5kT,
        # The SRV's own eigenvalue timescales, from its training data (not held out).
        "srv_timescales": lss.encoder_.timescales_.tolist(),
        "srv_timescales_from": "training data",
        "exact_timescales": exact[:2].tolist(),
        "md": its["md"].tolist(),
        "md_se": its["md_std_error"].tolist(),
        "lss": its["lss"].tolist(),
        "lss_se": its["lss_std_error"].tolist(),
        "t1_relative_error_vs_md": float(its["lss"][0] / its["md"][0] - 1),
        "t1_relative_error_vs_exact": float(its["lss"][0] / exact[0] - 1),
        "mean_feature_js": float(np.mean(js)),
        "max_feature_js": float(np.max(js)),
    }
    print("\n### Hidden-coordinate toy, SRV + MDN + cWGAN\n")
    print("| FE RMSE psi_1 (kT) | FE RMSE, default observable (kT) | mean (max) feature JS |")
    print("|---|---|---|")
    print(f"| {rmse:.3f} | {rmse_5kT:.3f} | {np.mean(js):.4f} ({np.max(js):.4f}) |")
    print(
        "\n| process | exact | SRV eigenvalue (training data) | MD acf fit (held-out) "
        "| LSS acf fit | LSS vs MD |"
    )
    print("|---|---|---|---|---|---|")
    for i in range(2):
        print(
            f"| t{i + 1} | {exact[i]:.0f} | {lss.encoder_.timescales_[i]:.0f} | "
            f"{its['md'][i]:.0f} ± {its['md_std_error'][i]:.0f} | "
            f"{its['lss'][i]:.0f} ± {its['lss_std_error'][i]:.0f} | "
            f"{its['lss'][i] / its['md'][i] - 1:+.1%} |"
        )
    return res


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "--stream-worker":
        _stream_worker(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--parts", nargs="+", default=["speed", "stream", "four_well", "hidden"])
    p.add_argument("--speed-steps", type=int, default=10_400)
    p.add_argument("--repeats", type=int, default=3, help="timed calls in the speed part")
    p.add_argument("--stream-frames", type=int, default=10_000_000)
    p.add_argument("--four-well-steps", type=int, default=5_000_000)
    p.add_argument("--hidden-frames", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--mdn-epochs", type=int, default=100, help="hidden part")
    p.add_argument("--gan-epochs", type=int, default=100)
    p.add_argument("--quick", action="store_true", help="every part at a small size")
    p.add_argument("--output", type=Path, default=RESULTS / "bench_simulator.json")
    args = p.parse_args()
    if args.quick:
        args.speed_steps, args.stream_frames = 520, 200_000
        args.four_well_steps, args.hidden_frames = 200_000, 20_000
        args.epochs, args.mdn_epochs, args.gan_epochs = 2, 2, 2
    parts = {
        "speed": part_speed,
        "stream": part_stream,
        "four_well": part_four_well,
        "hidden": part_hidden,
    }
    run = start_run()
    old = json.loads(args.output.read_text()) if args.output.exists() else {}
    old.pop("machine", None)
    result = {}
    for name in args.parts:
        result[name] = parts[name](args)
        # Kept with the part, since a later run of other parts keeps this one in the file.
        result[name]["machine"] = machine_info()
        result[name]["quick"] = bool(args.quick)
    old.update(result)
    old["parts_run"] = list(args.parts)
    print(f"wrote {write_result(args.output, old, run)}")


if __name__ == "__main__":
    main()
