"""SRV encoder: training speed and held-out VAMP-2 against deeptime's VAMPNet, and fidelity.

Part 1 trains sklss's SRVTransformer and deeptime's VAMPNet side by side, in one run, with the
same lobe architecture (30 -> 100 -> 100 -> m, tanh, batch norm), the same data (the
hidden-coordinate toy, 200,000 frames x 30 features), the same epochs, batch size, learning
rate and optimiser. It reports seconds per epoch and the VAMP-2 of held-out trajectories, both
computed by ``sklss.metrics.vamp2_score`` on the networks' outputs. sklss runs with its
default early stopping (10 % of the trajectories' ends held out, patience 10, best epoch
restored) within the same maximum number of epochs; deeptime has no early stopping and runs
them all. Both use Adam at the paper's learning rate of 0.01.

Part 2 checks the learned implied timescales against the exact ones on full-size data: the
four-well system (5 x 10^6 steps) and the hidden-coordinate toy.

Prints Markdown tables and writes ``benchmarks/results/bench_encoder.json``.

    python benchmarks/bench_encoder.py [--quick]
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch

from sklss import SRVTransformer
from sklss._nn import make_mlp
from sklss.datasets import four_well, four_well_reference, hidden_wells, hidden_wells_reference
from sklss.metrics import implied_timescales, vamp2_score

RESULTS = Path(__file__).parent / "results"


def machine():
    return f"{platform.machine()}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads"


def standardise(trajs, mean, std):
    return [((t - mean) / std).astype(np.float32) for t in trajs]


def run_deeptime(train, test, lag, m, epochs, batch_size, lr, seed):
    from deeptime.decomposition.deep import VAMPNet
    from deeptime.util.data import TrajectoriesDataset
    from torch.utils.data import DataLoader

    torch.manual_seed(seed)
    lobe = make_mlp(train[0].shape[1], (100, 100), m, activation="tanh", batch_norm=True)
    vampnet = VAMPNet(lobe=lobe, learning_rate=lr, device="cpu", epsilon=1e-6)
    loader = DataLoader(
        TrajectoriesDataset.from_numpy(lag, train), batch_size=batch_size, shuffle=True
    )
    t0 = time.perf_counter()
    model = vampnet.fit(loader, n_epochs=epochs).fetch_model()
    seconds = time.perf_counter() - t0
    out = [model.transform(t) for t in test]
    return seconds / epochs, seconds / epochs, _scores(out, lag), implied_timescales(out, lag)


def run_sklss(train, test, lag, m, epochs, batch_size, lr, seed):
    srv = SRVTransformer(
        lag_time=lag,
        n_components=m,
        hidden_layer_sizes=(100, 100),
        activation="tanh",
        batch_norm=True,
        learning_rate=lr,
        batch_size=batch_size,
        max_epochs=epochs,
        random_state=seed,
    )
    t0 = time.perf_counter()
    srv.fit(train)
    seconds = time.perf_counter() - t0
    out = srv.transform(test)
    per_epoch = float(np.mean([row["dur"] for row in srv.net_.history]))
    return seconds / srv.n_iter_, per_epoch, _scores(out, lag), srv.timescales_


def _scores(out, lag):
    """Held-out VAMP-2 of the outputs: plain, and reversibly symmetrised."""
    return vamp2_score(out, lag), vamp2_score(out, lag, reversible=True)


def part1(args):
    n_traj = 4
    frames = args.frames // n_traj
    train = hidden_wells(frames, n_trajectories=n_traj, n_features=30, random_state=0)
    test = hidden_wells(frames // 2, n_trajectories=2, n_features=30, random_state=1)
    # deeptime gets inputs standardised outside its timing, as sklss does inside fit.
    mean = np.concatenate(train).mean(axis=0)
    std = np.concatenate(train).std(axis=0)
    train_std, test_std = standardise(train, mean, std), standardise(test, mean, std)
    ref = hidden_wells_reference().timescales[:2]
    cfg = dict(lag=args.lag, m=2, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    rows = []
    for name, runner, data in [
        ("deeptime VAMPNet", run_deeptime, (train_std, test_std)),
        ("sklss SRVTransformer", run_sklss, (train, test)),
    ]:
        runs = [runner(*data, seed=seed, **cfg) for seed in range(args.seeds)]
        rows.append(
            {
                "method": name,
                "seconds_per_epoch": float(np.mean([r[0] for r in runs])),
                "training_loop_seconds_per_epoch": float(np.mean([r[1] for r in runs])),
                "heldout_vamp2": float(np.mean([r[2][0] for r in runs])),
                "heldout_vamp2_reversible": float(np.mean([r[2][1] for r in runs])),
                "heldout_vamp2_per_seed": [float(r[2][0]) for r in runs],
                "timescales": np.mean([r[3][:2] for r in runs], axis=0).tolist(),
            }
        )
    ratio = rows[1]["seconds_per_epoch"] / rows[0]["seconds_per_epoch"]
    print(
        f"\n### SRV training, {args.frames:,} frames x 30 features, {cfg}, "
        f"mean of {args.seeds} seeds\n"
    )
    print(
        "| method | s / epoch (whole fit) | s / epoch (loop) | held-out VAMP-2 "
        "| reversible | t1, t2 (frames) |"
    )
    print("|---|---|---|---|---|---|")
    for r in rows:
        ts = ", ".join(f"{t:.0f}" for t in r["timescales"])
        print(
            f"| {r['method']} | {r['seconds_per_epoch']:.2f} "
            f"| {r['training_loop_seconds_per_epoch']:.2f} | {r['heldout_vamp2']:.4f} "
            f"| {r['heldout_vamp2_reversible']:.4f} | {ts} |"
        )
    print(f"| exact | | | | | {ref[0]:.0f}, {ref[1]:.0f} |")
    for r in rows:
        print(f"{r['method']}: held-out VAMP-2 per seed {r['heldout_vamp2_per_seed']}")
    print(f"\nsklss / deeptime time per epoch: {ratio:.2f}x (target <= 0.5x)")
    return {"config": cfg, "frames": args.frames, "rows": rows, "time_ratio": ratio}


def part2(args):
    out = {}
    stride = 10
    t0 = time.perf_counter()
    X = four_well(args.four_well_steps // 10, n_trajectories=10, stride=stride, random_state=0)
    sim = time.perf_counter() - t0
    srv = SRVTransformer(
        lag_time=30, n_components=3, batch_size=4096, max_epochs=args.fid_epochs, random_state=0
    ).fit(X)
    ref = four_well_reference(stride=stride).timescales[:3]
    out["four_well"] = {
        "steps": args.four_well_steps,
        "simulation_seconds": sim,
        "timescales": srv.timescales_.tolist(),
        "reference": ref.tolist(),
        "relative_error": (srv.timescales_ / ref - 1).tolist(),
    }
    X = hidden_wells(args.frames // 4, n_trajectories=4, n_features=30, random_state=0)
    srv = SRVTransformer(
        lag_time=10, n_components=2, batch_size=4096, max_epochs=args.fid_epochs, random_state=0
    ).fit(X)
    ref = hidden_wells_reference().timescales[:2]
    out["hidden_wells"] = {
        "frames": args.frames,
        "timescales": srv.timescales_.tolist(),
        "reference": ref.tolist(),
        "relative_error": (srv.timescales_ / ref - 1).tolist(),
    }
    print("\n### Implied timescales on full-size data (frames)\n")
    print("| system | SRV | reference | relative error |")
    print("|---|---|---|---|")
    for name, r in out.items():
        fmt = lambda v: ", ".join(f"{x:.1f}" for x in v)  # noqa: E731
        err = ", ".join(f"{e:+.1%}" for e in r["relative_error"])
        print(f"| {name} | {fmt(r['timescales'])} | {fmt(r['reference'])} | {err} |")
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--lag", type=int, default=10)
    p.add_argument("--four-well-steps", type=int, default=5_000_000)
    p.add_argument("--fid-epochs", type=int, default=40)
    p.add_argument("--seeds", type=int, default=3, help="runs per method, averaged")
    p.add_argument("--skip-fidelity", action="store_true")
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads for deeptime (sklss always trains on one)",
    )
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    result = {"machine": machine(), "speed": part1(args)}
    if not args.skip_fidelity:
        result["fidelity"] = part2(args)
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "bench_encoder.json").write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
