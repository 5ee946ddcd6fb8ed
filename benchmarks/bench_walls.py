"""Do the propagator's walls bias the stationary density?

An ``MDNPropagator`` whose network is set to exactly the Ornstein-Uhlenbeck kernel
``p(x' | x) = N(a x, 1 - a^2)`` (stationary density N(0, 1)) is sampled inside a box of
``+-wall`` standard deviations, with the wall policy of ``sample`` (reject-and-stay: a draw
that leaves the box keeps the current state) and, for comparison, with reflecting walls (the
policy sklss used before: a draw is folded back off the wall it crossed). Both are compared
with the exact density truncated to the box, bin by bin (bins of width 0.2).

Prints a table and writes ``results/walls.json``. Run from the repository root:
``python benchmarks/bench_walls.py`` (about a minute).
"""

import json
import math
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from scipy.special import ndtr

from sklss import MDNPropagator

RESULTS = Path(__file__).resolve().parent / "results"
N_STARTS, N_STEPS = 2000, 5000


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


def reflecting(x0, a, wall, seed):
    rng = np.random.default_rng(seed)
    width = math.sqrt(1 - a * a)
    x, out = x0[:, 0].copy(), np.empty((N_STEPS - 1, len(x0)))
    for t in range(N_STEPS - 1):
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
    rows = []
    for wall in (2.0, 3.0):
        edges = np.linspace(-wall, wall, int(round(2 * wall / 0.2)) + 1)
        for a in (0.9, 0.5):
            x = np.random.default_rng(1).normal(size=4 * N_STARTS)
            x0 = x[np.abs(x) < wall][:N_STARTS, None]
            start = time.perf_counter()
            mdn = exact_ou_mdn(a, wall)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                traj = mdn.sample(x0, N_STEPS, random_state=2)[:, 1:]
            seconds = time.perf_counter() - start
            after = errors(traj, edges, wall)
            before = errors(reflecting(x0, a, wall, 2), edges, wall)
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
    RESULTS.mkdir(exist_ok=True)
    out = {"n_starts": N_STARTS, "n_steps": N_STEPS, "bin_width": 0.2, "rows": rows}
    (RESULTS / "walls.json").write_text(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
