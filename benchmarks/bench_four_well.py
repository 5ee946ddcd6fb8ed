"""Section 3.1 of the LSS paper: an MDN propagator learns four-well Brownian dynamics.

An `MDNPropagator` with the paper's settings (lag 100 integration steps, C = 8 kernels, two
hidden layers of 100 ReLU units) is trained directly on the position x of the Brownian
dynamics of `sklss.datasets.four_well` (5 x 10^6 steps of dt = 0.001, saved every 10 steps).
Synthetic trajectories sampled from it are compared with the exact answers of
`sklss.datasets.four_well_reference` and with the training data:

- stationary density: RMSE of the free energy against the exact one, over the 50 bins with
  F <= 4 kT;
- leading implied timescale, from a Markov model on the same bins at one lag time;
- transition density p(x_{t+tau} | x_t) on 100 x 100 bins: the learned one from 4000
  one-step samples per start bin, the empirical one from the lagged pairs of the MD data and
  the exact one. Reported is the Jensen-Shannon divergence (bits) between rows, averaged over
  start bins with F <= 4 kT, weighted by their stationary probability (and unweighted). The
  MD-versus-exact value is the noise floor of the empirical histogram.

"Same frames" is a synthetic trajectory with as many frames as the training data (each frame
one lag time after the last); "same duration" covers the same time as the training data
(100 times fewer frames), and so has the statistical noise of the MD data.

Writes ``results/four_well.json`` and the paper's Fig. 2 as ``results/four_well.png`` (with
``--output PATH``, the figure goes next to it, with the suffix ``.png``).

Usage::

    python benchmarks/bench_four_well.py            # full size, about 3-5 minutes on 2 cores
    python benchmarks/bench_four_well.py --n-steps 2000000 --max-epochs 20   # quick look
    python benchmarks/bench_four_well.py --quick --output /tmp/four_well.json  # smoke run
"""

import argparse
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, start_run, write_result

from sklss.datasets import four_well, four_well_reference
from sklss.metrics import (
    free_energy_profile,
    free_energy_rmse,
    js_divergence,
    markov_timescales,
)
from sklss.propagator import MDNPropagator

LAG_STEPS = 100
FE_EDGES = np.linspace(-1.1, 1.1, 51)
TD_EDGES = np.linspace(-1.1, 1.1, 101)
MAX_FREE_ENERGY = 4.0
# One-step samples per start bin for the learned transition density.
N_PER_BIN = 4000


def overlap(fine_edges, edges):
    """``O[i, j]``: the fraction of fine cell ``i`` that lies in bin ``j``."""
    lo = np.maximum(fine_edges[:-1, None], edges[None, :-1])
    hi = np.minimum(fine_edges[1:, None], edges[None, 1:])
    return np.clip(hi - lo, 0, None) / np.diff(fine_edges)[:, None]


def binned_reference(ref, edges):
    """Exact stationary probabilities of the bins, and their free energies in kT."""
    p = (ref.stationary_density * np.diff(ref.edges)) @ overlap(ref.edges, edges)
    with np.errstate(divide="ignore"):
        F = -np.log(p)
    return p, F - F[np.isfinite(F)].min()


def reference_transitions(ref, edges, lag_frames):
    """Exact bin-to-bin transition probabilities at ``lag_frames``, from the fine reference."""
    share = overlap(ref.edges, edges)
    pi = ref.stationary_density * np.diff(ref.edges)
    T = share.T @ (pi[:, None] * ref.transition_matrix(lag_frames)) @ share
    return T / np.maximum(T.sum(axis=1, keepdims=True), 1e-300)


def empirical_transitions(x, lag_frames, edges):
    """Row-normalised 2-D histogram of the pairs (x_t, x_{t+lag_frames})."""
    H, _, _ = np.histogram2d(x[:-lag_frames], x[lag_frames:], bins=[edges, edges])
    return H / np.maximum(H.sum(axis=1, keepdims=True), 1)


def learned_transitions(mdn, edges, n_per_bin, seed):
    """Row-normalised histogram of one step of ``mdn`` from starts spread over each bin."""
    rng = np.random.default_rng(seed)
    n = len(edges) - 1
    starts = edges[:-1, None] + np.diff(edges)[:, None] * rng.random((n, n_per_bin))
    starts = np.clip(starts.reshape(-1, 1), mdn.data_min_, mdn.data_max_)
    ends = mdn.sample(starts, n_steps=2, random_state=seed)[:, 1, 0]
    H, _, _ = np.histogram2d(starts[:, 0], ends, bins=[edges, edges])
    return H / np.maximum(H.sum(axis=1, keepdims=True), 1)


def mean_row_js(T_a, T_b, weights, rows):
    """Stationary-weighted mean Jensen-Shannon divergence (bits) over ``rows``."""
    rows = [i for i in rows if T_a[i].sum() > 0 and T_b[i].sum() > 0]
    js = np.array([js_divergence(T_a[i], T_b[i]) for i in rows])
    w = weights[rows] / weights[rows].sum()
    return float(np.sum(w * js)), float(js.mean())


def evaluate(x, lag_frames, ref, frame_factor=1):
    """Free-energy RMSE (kT) and leading timescale (data frames) of a trajectory ``x``.

    ``frame_factor`` converts the trajectory's frames into data frames: a synthetic
    trajectory's frames are one lag time apart.
    """
    x = np.asarray(x).ravel()
    _, F_exact = binned_reference(ref, FE_EDGES)
    F, _ = free_energy_profile(x, bins=FE_EDGES)
    rmse = free_energy_rmse(F_exact, F, max_free_energy=MAX_FREE_ENERGY)
    ts = float(markov_timescales(x, FE_EDGES, lag_frames)[0]) * frame_factor
    record = {
        "n_frames": int(len(x)),
        "free_energy_rmse_kT": rmse,
        "leading_timescale_frames": ts,
        "leading_timescale_rel_error": ts / float(ref.timescales[0]) - 1,
    }
    return record, F


def plot(path, ref, F_md, F_syn, T_exact, T_mdn):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, F_exact = binned_reference(ref, FE_EDGES)
    centres = 0.5 * (FE_EDGES[1:] + FE_EDGES[:-1])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4), layout="constrained")
    ax = axes[0]
    for F, label, style in [
        (F_exact, "exact", "k-"),
        (F_md, "MD (training data)", "C0o"),
        (F_syn, "MDN (synthetic)", "C3s"),
    ]:
        q = np.exp(-(F - F[np.isfinite(F)].min()))
        ax.plot(centres, q / np.sum(q * np.diff(FE_EDGES)), style, label=label, ms=3)
    ax.set(xlabel="$x$", ylabel="stationary density $p(x)$", title="(a) stationary density")
    ax.legend(fontsize=8)
    extent = [TD_EDGES[0], TD_EDGES[-1], TD_EDGES[0], TD_EDGES[-1]]
    vmax = np.quantile(T_exact, 0.999)
    for ax, T, title in [
        (axes[1], T_exact, r"(b) reference $p(x_{t+\tau} \mid x_t)$"),
        (axes[2], T_mdn, r"(c) MDN $p(x_{t+\tau} \mid x_t)$"),
    ]:
        im = ax.imshow(
            T.T, origin="lower", extent=extent, aspect="auto", vmin=0, vmax=vmax, cmap="viridis"
        )
        ax.set(xlabel="$x_t$", ylabel=r"$x_{t+\tau}$", title=title)
    fig.colorbar(im, ax=axes[1:], label="probability per bin", shrink=0.9)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-steps", type=int, default=5_000_000)
    parser.add_argument("--stride", type=int, default=10)
    parser.add_argument("--max-epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--per-bin", type=int, default=N_PER_BIN, help="one-step samples per start bin"
    )
    parser.add_argument(
        "--quick", action="store_true", help="200,000 steps, 3 epochs, 200 samples per bin"
    )
    parser.add_argument("--output", type=Path, default=RESULTS / "four_well.json")
    args = parser.parse_args()
    if args.quick:
        args.n_steps, args.max_epochs, args.per_bin = 200_000, 3, 200
    run = start_run()
    figure = args.output.with_suffix(".png")
    lag = LAG_STEPS // args.stride

    t0 = time.perf_counter()
    x = four_well(args.n_steps, stride=args.stride, random_state=args.seed)
    t_data = time.perf_counter() - t0
    ref = four_well_reference(stride=args.stride)

    mdn = MDNPropagator(
        lag_time=lag,
        n_kernels=8,
        hidden_layer_sizes=(100, 100),
        activation="relu",
        max_epochs=args.max_epochs,
        patience=args.patience,
        random_state=args.seed,
    )
    t0 = time.perf_counter()
    mdn.fit(x)
    t_fit = time.perf_counter() - t0

    t0 = time.perf_counter()
    same_frames = mdn.sample(x[:1], len(x), random_state=args.seed + 1)[0, :, 0]
    t_sample = time.perf_counter() - t0
    same_duration = mdn.sample(x[:1], len(x) // lag, random_state=args.seed + 2)[0, :, 0]

    results = {}
    results["md"], F_md = evaluate(x, lag, ref)
    results["mdn_same_frames"], F_syn = evaluate(same_frames, 1, ref, frame_factor=lag)
    results["mdn_same_duration"], _ = evaluate(same_duration, 1, ref, frame_factor=lag)

    p_td, F_td = binned_reference(ref, TD_EDGES)
    rows = np.flatnonzero(F_td <= MAX_FREE_ENERGY)
    T_exact = reference_transitions(ref, TD_EDGES, lag)
    T_md = empirical_transitions(x[:, 0], lag, TD_EDGES)
    T_mdn = learned_transitions(mdn, TD_EDGES, args.per_bin, args.seed + 3)
    transition = {}
    for name, (T_a, T_b) in {
        "mdn_vs_md": (T_mdn, T_md),
        "mdn_vs_exact": (T_mdn, T_exact),
        "md_vs_exact": (T_md, T_exact),
    }.items():
        weighted, plain = mean_row_js(T_a, T_b, p_td, rows)
        transition[name] = {"js_weighted_bits": weighted, "js_mean_bits": plain}
    results["transition_density"] = transition

    record = {
        "benchmark": "four_well",
        "settings": {
            "n_steps": args.n_steps,
            "stride": args.stride,
            "lag_time_frames": lag,
            "lag_time_steps": LAG_STEPS,
            "n_kernels": 8,
            "hidden_layer_sizes": [100, 100],
            "activation": "relu",
            "max_epochs": args.max_epochs,
            "patience": args.patience,
            "seed": args.seed,
            "free_energy_bins": len(FE_EDGES) - 1,
            "transition_bins": len(TD_EDGES) - 1,
            "one_step_samples_per_bin": args.per_bin,
            "max_free_energy_kT": MAX_FREE_ENERGY,
        },
        "reference_leading_timescale_frames": float(ref.timescales[0]),
        "epochs_run": mdn.n_iter_,
        "best_valid_nll": min(v for v in mdn.history_["valid_nll"] if v is not None),
        # One run each (no repetitions): wall times of this run, not a speed comparison.
        "seconds": {"data": t_data, "fit": t_fit, "sample_same_frames": t_sample},
        "results": results,
        "targets": {"free_energy_rmse_kT": 0.2, "leading_timescale_rel_error": 0.15},
    }
    write_result(args.output, record, run)
    plot(figure, ref, F_md, F_syn, T_exact, T_mdn)

    print(
        f"four-well, {args.n_steps:,} steps (stride {args.stride}), lag {lag} frames; fit "
        f"{t_fit:.0f} s ({mdn.n_iter_} epochs); {len(x):,} synthetic steps in {t_sample:.1f} s"
    )
    print(f"{'trajectory':<20}{'frames':>9}{'FE RMSE (kT)':>14}{'t1 (frames)':>13}{'t1 error':>10}")
    for name in ("md", "mdn_same_frames", "mdn_same_duration"):
        rec = results[name]
        print(
            f"{name:<20}{rec['n_frames']:>9,}{rec['free_energy_rmse_kT']:>14.3f}"
            f"{rec['leading_timescale_frames']:>13.1f}{rec['leading_timescale_rel_error']:>+10.3f}"
        )
    print(f"{'exact':<20}{'':>9}{'':>14}{float(ref.timescales[0]):>13.1f}")
    print("transition density: Jensen-Shannon divergence per start bin (bits)")
    print(f"{'':<16}{'weighted':>10}{'mean':>10}")
    for name, rec in transition.items():
        print(f"{name:<16}{rec['js_weighted_bits']:>10.4f}{rec['js_mean_bits']:>10.4f}")
    print(f"wrote {args.output} and {figure}")


if __name__ == "__main__":
    main()
