"""Do the propagator's walls bias the stationary density?

An ``MDNPropagator`` whose network is set to exactly the Ornstein-Uhlenbeck kernel
``p(x' | x) = N(a x, 1 - a^2)`` (stationary density N(0, 1)) is sampled inside a box of
``+-wall`` standard deviations, with the wall policy of ``sample`` (reject-and-stay: a draw
that leaves the box keeps the current state) and, for comparison, with reflecting walls (the
policy sklss used before: a draw is folded back off the wall it crossed). Both are compared
with the exact density truncated to the box, bin by bin (bins of width 0.2).

Prints a table and writes ``results/walls.json``. Run from the repository root:
``python benchmarks/bench_walls.py`` (about a minute); ``--quick`` runs 200 x 500 steps and
``--output PATH`` writes elsewhere.
"""

import argparse
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _common import RESULTS, start_run, write_result
from scipy.special import ndtr

from sklss import MDNPropagator


def exact_ou_mdn(a, wall):
    """A fitted MDNPropagator whose one kernel is exactly N(a x, 1 - a^2), box [-wall, wall]."""
    x = np.cumsum(np.random.default_rng(0).normal(size=(300, 1)), axis=0)
    mdn = MDNPropagator(
        n_kernels=1, hidden_layer_sizes=(2,), max_epochs=1, validation_fraction=0, random_state=0
    ).fit(x)
    hidden, output = mdn.net_.module_.mlp[0], mdn.net_.module_.mlp[2]
    floor = mdn.net_.module_.sigma_floor
    width = math.sqrt(1 - a * a)
    with torch.no_grad():  # relu(x) - relu(-x) = x; the width is logaddexp(raw, floor)
        hidden.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        hidden.bias.zero_()
        output.weight.copy_(torch.tensor([[0.0, 0.0], [a, -a], [0.0, 0.0]]))
        output.bias.copy_(torch.tensor([0.0, 0.0, floor + math.log(math.expm1(width - floor))]))
    mdn.mean_, mdn.scale_ = np.zeros(1), np.ones(1)
    mdn.data_min_, mdn.data_max_ = np.array([-wall]), np.array([wall])
    return mdn


def reflecting(x0, a, wall, seed, n_steps):
    rng = np.random.default_rng(seed)
    width = math.sqrt(1 - a * a)
    x, out = x0[:, 0].copy(), np.empty((n_steps - 1, len(x0)))
    for t in range(n_steps - 1):
        x = a * x + width * rng.standard_normal(len(x))
        x = np.where(x < -wall, -2 * wall - x, x)
        x = np.where(x > wall, 2 * wall - x, x)
        out[t] = x
    return out


def exact_rejection_rate(a, wall):
    """Probability that a draw from the truncated N(0, 1) state leaves the box."""
    from scipy.integrate import quad
    from scipy.stats import norm

    width = math.sqrt(1 - a * a)

    def leaving(x):
        stay = ndtr((wall - a * x) / width) - ndtr((-wall - a * x) / width)
        return norm.pdf(x) * (1 - stay)

    return quad(leaving, -wall, wall)[0] / (ndtr(wall) - ndtr(-wall))


def errors(samples, edges, wall):
    counts = np.histogram(samples, edges)[0]
    exact = np.diff(ndtr(edges)) / (ndtr(wall) - ndtr(-wall))
    dF = -np.log(counts / counts.sum()) + np.log(exact)
    return float(np.abs(dF[[0, -1]]).max()), float(np.sqrt(np.mean(dF**2))), float(dF[0])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--starts", type=int, default=2000)
    parser.add_argument("--steps", type=int, default=5000)
    parser.add_argument("--quick", action="store_true", help="200 starts x 500 steps")
    parser.add_argument("--output", type=Path, default=RESULTS / "walls.json")
    args = parser.parse_args()
    if args.quick:
        args.starts, args.steps = 200, 500
    run = start_run()
    n_starts, n_steps = args.starts, args.steps
    rows = []
    for wall in (2.0, 3.0):
        edges = np.linspace(-wall, wall, int(round(2 * wall / 0.2)) + 1)
        for a in (0.9, 0.5):
            x = np.random.default_rng(1).normal(size=4 * n_starts)
            x0 = x[np.abs(x) < wall][:n_starts, None]
            start = time.perf_counter()
            mdn = exact_ou_mdn(a, wall)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traj = mdn.sample(x0, n_steps, random_state=2)[:, 1:]
            seconds = time.perf_counter() - start
            after = errors(traj, edges, wall)
            before = errors(reflecting(x0, a, wall, 2, n_steps), edges, wall)
            rows.append(
                {
                    "wall_sigma": wall,
                    "a": a,
                    "reflect_edge_max_abs_dF": before[0],
                    "reflect_rmse": before[1],
                    "reflect_edge_dF": before[2],
                    "reject_edge_max_abs_dF": after[0],
                    "reject_rmse": after[1],
                    "wall_hit_rate": mdn.wall_hit_rate_,
                    "exact_rejection_rate": exact_rejection_rate(a, wall),
                    # One call, fit of the 1-kernel network included: not a speed comparison.
                    "sample_seconds": seconds,
                }
            )
    print(
        "| walls | a | edge bin max abs dF: reflect -> reject | RMSE: reflect -> reject "
        "| wall-hit rate |"
    )
    print("|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['wall_sigma']:.0f} sigma | {r['a']} | {r['reflect_edge_max_abs_dF']:.3f} -> "
            f"{r['reject_edge_max_abs_dF']:.3f} kT | {r['reflect_rmse']:.3f} -> "
            f"{r['reject_rmse']:.3f} kT | {r['wall_hit_rate']:.4f} "
            f"({r['exact_rejection_rate']:.4f}) |"
        )
    out = {"n_starts": n_starts, "n_steps": n_steps, "bin_width": 0.2, "rows": rows}
    print(f"wrote {write_result(args.output, out, run)}")


if __name__ == "__main__":
    main()
