"""SRV encoder: training speed and held-out VAMP-2 against deeptime's VAMPNet, and fidelity.

Part 1 trains sklss's SRVTransformer and deeptime's VAMPNet side by side, in one run, like for
like: the same lobe architecture (30 -> 100 -> 100 -> m, tanh, batch norm, built by
``sklss._nn.make_mlp``), the same training trajectories (the hidden-coordinate toy, 4
trajectories x 30 features) and all of their lagged pairs, the same number of epochs (no
early stopping: sklss runs with ``validation_fraction=0`` and a patience longer than the
run), batch size, learning rate and optimiser (Adam at the paper's 0.01), one torch thread
each. Both are scored on the same held-out trajectories from another seed, by the same
functions of the networks' outputs: ``sklss.metrics.vamp2_score`` (plain and reversibly
symmetrised) and ``sklss.metrics.implied_timescales`` (VAC at the training lag).

deeptime is fed two ways, both with its own dataset classes and ``VAMPNet.fit`` on a torch
``DataLoader``: as its documentation shows for arrays in memory (``TrajectoriesDataset`` in
a ``DataLoader(batch_size=..., shuffle=True)``, which fetches and collates one sample at a
time), and batched (a ``TimeLaggedDataset`` of the same pairs, whose ``__getitem__`` takes an
index array, with a ``BatchSampler`` over a ``RandomSampler``: one fetch per batch). Its
timed fit includes the standardisation of the inputs, which sklss does inside ``fit``.

Timing: every method first gets one untimed one-epoch fit (warm-up); then ``--seeds`` timed
fits each, alternating between the methods within each seed. Seconds per epoch are reported
as the best and median over the seeds.

Part 2 checks the learned implied timescales against the exact ones on full-size data, the
four-well system (5 x 10^6 steps) and the hidden-coordinate toy: measured on held-out data
of the same size from another seed (``SRVTransformer.implied_timescales``, bootstrap
standard errors), and, labelled as such, on the training data (``timescales_``).

Prints Markdown tables and writes ``benchmarks/results/bench_encoder.json``.

    python benchmarks/bench_encoder.py [--quick] [--output PATH]
"""

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, start_run, time_interleaved, write_result

from sklss import SRVTransformer
from sklss._nn import make_mlp
from sklss.datasets import four_well, four_well_reference, hidden_wells, hidden_wells_reference
from sklss.metrics import implied_timescales, vamp2_score

METHODS = {
    "deeptime_docs": "deeptime VAMPNet, DataLoader as documented (one sample at a time)",
    "deeptime_batched": "deeptime VAMPNet, DataLoader over a BatchSampler (one fetch a batch)",
    "sklss": "sklss SRVTransformer (validation_fraction=0, all epochs)",
}


def standardise(trajs, mean, std):
    return [((t - mean) / std).astype(np.float32) for t in trajs]


def deeptime_loader(train, lag, batch_size, feed, seed):
    """A DataLoader of deeptime's datasets: as documented, or one fetch per batch."""
    from deeptime.util.data import TimeLaggedDataset, TrajectoriesDataset
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler

    generator = torch.Generator().manual_seed(seed)
    if feed == "docs":
        dataset = TrajectoriesDataset.from_numpy(lag, train)
        return DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=generator)
    # The same pairs as one TimeLaggedDataset, whose __getitem__ indexes both arrays with an
    # index array; batch_size=None hands each batch of indices to it in one call.
    dataset = TimeLaggedDataset(
        np.concatenate([t[:-lag] for t in train]), np.concatenate([t[lag:] for t in train])
    )
    sampler = BatchSampler(RandomSampler(dataset, generator=generator), batch_size, False)
    return DataLoader(dataset, sampler=sampler, batch_size=None)


def run_deeptime(train, test, *, feed, lag, m, epochs, batch_size, lr, seed):
    from deeptime.decomposition.deep import VAMPNet

    torch.manual_seed(seed)
    lobe = make_mlp(train[0].shape[1], (100, 100), m, activation="tanh", batch_norm=True)
    vampnet = VAMPNet(lobe=lobe, learning_rate=lr, device="cpu", epsilon=1e-6)
    t0 = time.perf_counter()
    # Standardised inside the timing, as sklss does inside fit.
    mean = np.concatenate(train).mean(axis=0)
    std = np.concatenate(train).std(axis=0)
    loader = deeptime_loader(standardise(train, mean, std), lag, batch_size, feed, seed)
    model = vampnet.fit(loader, n_epochs=epochs).fetch_model()
    seconds = time.perf_counter() - t0
    out = [model.transform(t) for t in standardise(test, mean, std)]
    return {
        "seconds": seconds,
        "epochs": epochs,
        "loop_seconds_per_epoch": seconds / epochs,
        **_heldout(out, lag),
    }


def run_sklss(train, test, *, lag, m, epochs, batch_size, lr, seed):
    srv = SRVTransformer(
        lag_time=lag,
        n_components=m,
        hidden_layer_sizes=(100, 100),
        activation="tanh",
        batch_norm=True,
        learning_rate=lr,
        batch_size=batch_size,
        max_epochs=epochs,
        # Every pair trains, as for deeptime; no early stopping within the run.
        validation_fraction=0.0,
        patience=epochs + 1,
        random_state=seed,
    )
    t0 = time.perf_counter()
    srv.fit(train)
    seconds = time.perf_counter() - t0
    out = srv.transform(test)
    train_vamp2 = srv.history_["train_vamp2"]
    return {
        "seconds": seconds,
        "epochs": srv.n_iter_,
        "loop_seconds_per_epoch": float(np.mean([row["dur"] for row in srv.net_.history])),
        # sklss restores the epoch of best training VAMP-2 at the end (deeptime keeps the last).
        "restored_epoch": int(np.argmax(train_vamp2)) + 1,
        "training_timescales": srv.timescales_[:m].tolist(),
        **_heldout(out, lag),
    }


def _heldout(out, lag):
    """Held-out VAMP-2 of the outputs (plain and reversibly symmetrised), and timescales."""
    return {
        "heldout_vamp2": float(vamp2_score(out, lag)),
        "heldout_vamp2_reversible": float(vamp2_score(out, lag, reversible=True)),
        "heldout_timescales": implied_timescales(out, lag)[:2].tolist(),
    }


def part1(args):
    n_traj = 4
    frames = args.frames // n_traj
    train = hidden_wells(frames, n_trajectories=n_traj, n_features=30, random_state=0)
    test = hidden_wells(frames // 2, n_trajectories=2, n_features=30, random_state=1)
    ref = hidden_wells_reference().timescales[:2]
    cfg = dict(lag=args.lag, m=2, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr)
    methods = [k for k in METHODS if k != "deeptime_docs" or not args.skip_docs_loader]

    def runner(name, seed, **overrides):
        kw = dict(cfg, seed=seed, **overrides)
        if name == "sklss":
            return run_sklss(train, test, **kw)
        return run_deeptime(train, test, feed=name.split("_")[1], **kw)

    # The same warm-up for every method: one untimed one-epoch fit.
    for name in methods:
        runner(name, 0, epochs=1)
    runs = {name: [] for name in methods}

    def timed(name):
        def call():
            r = runner(name, len(runs[name]))
            runs[name].append(r)
            return r["seconds"] / r["epochs"]

        return call

    timing = time_interleaved(
        {name: timed(name) for name in methods}, warmup=0, repeats=args.seeds, self_timed=True
    )
    rows = []
    for name in methods:
        rs, t = runs[name], timing[name]
        row = {
            "method": METHODS[name],
            "key": name,
            "seconds_per_epoch_best": t["best"],
            "seconds_per_epoch_median": t["median"],
            "seconds_per_epoch_all": t["all"],
            "training_loop_seconds_per_epoch_median": float(
                np.median([r["loop_seconds_per_epoch"] for r in rs])
            ),
            "epochs_run": [r["epochs"] for r in rs],
            "heldout_vamp2_mean": float(np.mean([r["heldout_vamp2"] for r in rs])),
            "heldout_vamp2_reversible_mean": float(
                np.mean([r["heldout_vamp2_reversible"] for r in rs])
            ),
            "heldout_vamp2_per_seed": [r["heldout_vamp2"] for r in rs],
            "heldout_timescales_mean": np.mean(
                [r["heldout_timescales"] for r in rs], axis=0
            ).tolist(),
            "heldout_timescales_per_seed": [r["heldout_timescales"] for r in rs],
        }
        if name == "sklss":
            row["restored_epoch_per_seed"] = [r["restored_epoch"] for r in rs]
            row["training_timescales_mean"] = np.mean(
                [r["training_timescales"] for r in rs], axis=0
            ).tolist()
        rows.append(row)
    by_key = {r["key"]: r for r in rows}
    ratios = {}
    for base in ("deeptime_batched", "deeptime_docs"):
        if base in by_key:
            ratios[f"sklss_over_{base}_best"] = (
                by_key["sklss"]["seconds_per_epoch_best"] / by_key[base]["seconds_per_epoch_best"]
            )
            ratios[f"sklss_over_{base}_median"] = (
                by_key["sklss"]["seconds_per_epoch_median"]
                / by_key[base]["seconds_per_epoch_median"]
            )

    print(
        f"\n### SRV training, {args.frames:,} frames x 30 features, {cfg}; held-out "
        f"{len(test)} x {len(test[0]):,} frames; s / epoch best and median of {args.seeds} "
        "seeds after one warm-up fit each\n"
    )
    print(
        "| method | s / epoch, best | median | s / epoch (training loop) "
        "| held-out VAMP-2 (mean) | reversible | held-out t1, t2 (frames) |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ts = ", ".join(f"{t:.0f}" for t in r["heldout_timescales_mean"])
        print(
            f"| {r['method']} | {r['seconds_per_epoch_best']:.2f} "
            f"| {r['seconds_per_epoch_median']:.2f} "
            f"| {r['training_loop_seconds_per_epoch_median']:.2f} "
            f"| {r['heldout_vamp2_mean']:.4f} | {r['heldout_vamp2_reversible_mean']:.4f} "
            f"| {ts} |"
        )
    print(f"| exact | | | | | | {ref[0]:.0f}, {ref[1]:.0f} |")
    for r in rows:
        print(f"{r['method']}: held-out VAMP-2 per seed {r['heldout_vamp2_per_seed']}")
    s = by_key["sklss"]
    print(
        "sklss training-set timescales (for reference, not comparable with the held-out "
        f"ones): {', '.join(f'{t:.0f}' for t in s['training_timescales_mean'])}; "
        f"restored epochs {s['restored_epoch_per_seed']}"
    )
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x")
    return {
        "config": cfg,
        "train_frames": args.frames,
        "train_trajectories": n_traj,
        "heldout_frames": int(sum(len(t) for t in test)),
        "heldout_trajectories": len(test),
        "exact_timescales": ref.tolist(),
        "timing": (
            "one untimed one-epoch fit per method, then one timed fit per seed and method, "
            "alternating between methods; whole fit (deeptime: standardisation, loader and "
            "VAMPNet.fit; sklss: SRVTransformer.fit with scaling and the VAC step) per epoch"
        ),
        "rows": rows,
        "time_ratios": ratios,
    }


def part2(args):
    out = {}
    stride = 10
    kw = dict(n_trajectories=10, stride=stride)
    t0 = time.perf_counter()
    X = four_well(args.four_well_steps // 10, random_state=0, **kw)
    sim = time.perf_counter() - t0
    X_test = four_well(args.four_well_steps // 10, random_state=1, **kw)
    srv = SRVTransformer(
        lag_time=30, n_components=3, batch_size=4096, max_epochs=args.fid_epochs, random_state=0
    ).fit(X)
    ref = four_well_reference(stride=stride).timescales[:3]
    out["four_well"] = _fidelity(srv, X_test, ref)
    out["four_well"].update(steps=args.four_well_steps, simulation_seconds=sim)
    X = hidden_wells(args.frames // 4, n_trajectories=4, n_features=30, random_state=0)
    X_test = hidden_wells(args.frames // 4, n_trajectories=4, n_features=30, random_state=1)
    srv = SRVTransformer(
        lag_time=10, n_components=2, batch_size=4096, max_epochs=args.fid_epochs, random_state=0
    ).fit(X)
    ref = hidden_wells_reference().timescales[:2]
    out["hidden_wells"] = _fidelity(srv, X_test, ref)
    out["hidden_wells"]["frames"] = args.frames

    def fmt(v):
        return ", ".join(f"{x:.1f}" for x in v)

    print("\n### Implied timescales on full-size data (frames)\n")
    print(
        "| system | held-out (± s.e.) | error vs exact | training data | error vs exact | exact |"
    )
    print("|---|---|---|---|---|---|")
    for name, r in out.items():
        held = ", ".join(
            f"{t:.1f} ± {e:.1f}" for t, e in zip(r["heldout_timescales"], r["heldout_std_error"])
        )
        err = ", ".join(f"{e:+.1%}" for e in r["heldout_relative_error"])
        err_train = ", ".join(f"{e:+.1%}" for e in r["training_relative_error"])
        print(
            f"| {name} | {held} | {err} | {fmt(r['training_timescales'])} | {err_train} "
            f"| {fmt(r['reference'])} |"
        )
    return out


def _fidelity(srv, X_test, ref):
    held = srv.implied_timescales(X_test)
    return {
        "heldout_timescales": held.timescales.tolist(),
        "heldout_std_error": held.std_error.tolist(),
        "heldout_relative_error": (held.timescales / ref - 1).tolist(),
        "heldout_frames": int(sum(len(x) for x in X_test)),
        "training_timescales": srv.timescales_.tolist(),
        "training_relative_error": (srv.timescales_ / ref - 1).tolist(),
        "reference": ref.tolist(),
        "epochs": srv.n_iter_,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=200_000)
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=4096)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--lag", type=int, default=10)
    p.add_argument("--four-well-steps", type=int, default=5_000_000)
    p.add_argument("--fid-epochs", type=int, default=40)
    p.add_argument("--seeds", type=int, default=3, help="timed fits per method")
    p.add_argument("--skip-fidelity", action="store_true")
    p.add_argument(
        "--skip-docs-loader", action="store_true", help="leave out deeptime's documented loader"
    )
    p.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads of the process (deeptime's training; sklss's fit sets its own)",
    )
    p.add_argument(
        "--quick",
        action="store_true",
        help="20,000 frames, 2 epochs, 2 seeds; four-well 200,000 steps, 2 epochs",
    )
    p.add_argument("--output", type=Path, default=RESULTS / "bench_encoder.json")
    args = p.parse_args()
    if args.quick:
        args.frames, args.epochs, args.seeds = 20_000, 2, 2
        args.four_well_steps, args.fid_epochs = 200_000, 2
    torch.set_num_threads(args.threads)
    run = start_run()
    result = {"speed": part1(args)}
    if not args.skip_fidelity:
        result["fidelity"] = part2(args)
    print(f"wrote {write_result(args.output, result, run)}")


if __name__ == "__main__":
    main()
