"""Does the grid-search score pick the simulator with the right kinetics?

A grid search on the hidden-coordinate toy (two slow processes hidden in 10 noisy nonlinear
features; exact slowest timescale 340 frames) over lag times, kernel counts and two encoders:
an SRV (m = 2) and an encoder that learns the fastest linear mode of the features. Every
candidate is trained on 4 trajectories and scored on 4 held-out ones:

- old scores, measured along each candidate's own psi_1 as sklss did before: the free-energy
  RMSE over bins both profiles populate, and the relative error of the psi_1 relaxation time
  of the simulation against the held-out MD;
- new scores, on the fixed observable (TICA of the features, fitted on the training fold):
  the free-energy RMSE with missing states charged, the Jensen-Shannon divergence, the
  relative error of the observable's relaxation time, and the default ``fidelity``, their
  sum (FE RMSE in kT plus the relative error, from the same seeded simulation, so it is
  computed here as that sum);
- the exact error: the relative error of the candidate simulator's own slowest relaxation
  time (autocorrelation fit of psi_1 over a long run) against the exact 340 frames.

It prints a table and writes ``results/scoring.json``. Run from the repository root:
``python benchmarks/bench_scoring.py`` (about 16 minutes on two cores); ``--quick`` runs a
small version (4 x 5,000 training frames, 2 epochs, lags 2 and 10), ``--output PATH`` writes
elsewhere.
"""

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
from _common import RESULTS, start_run, write_result
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GridSearchCV

from sklss import LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss.datasets import hidden_wells, hidden_wells_reference
from sklss.metrics import free_energy_profile
from sklss.model_selection import get_scorer


class FastModeEncoder(TransformerMixin, BaseEstimator):
    """Learns the fastest linear mode (the last TICA component) of the features."""

    def __init__(self, lag_time=1):
        self.lag_time = lag_time

    def fit(self, X, y=None):
        from deeptime.decomposition import TICA

        model = TICA(lagtime=self.lag_time).fit(X).fetch_model()
        self.mean_, self.coef_ = model.mean_0, model.singular_vectors_left[:, -1:]
        return self

    def transform(self, X):
        if isinstance(X, list):
            return [(np.asarray(t) - self.mean_) @ self.coef_ for t in X]
        return (np.asarray(X) - self.mean_) @ self.coef_


def old_free_energy_rmse(est, X, y=None):
    """The score sklss used before: psi_1 of each candidate, bins both sides populate."""
    md, lss = est._md_and_simulation(X, None, None, "latent")
    md = np.concatenate([t[:, 0] for t in md])
    lss = np.concatenate([t[:, 0] for t in lss])
    edges = np.linspace(md.min(), md.max(), 51)
    F_md, F_lss = free_energy_profile(md, bins=edges)[0], free_energy_profile(lss, bins=edges)[0]
    both = np.isfinite(F_md) & np.isfinite(F_lss)
    diff = F_md[both] - F_lss[both]
    return -float(np.sqrt(np.mean((diff - diff.mean()) ** 2)))


def old_timescale_error(est, X, y=None):
    its = est.implied_timescales(X, space="latent", n_blocks=1)
    return -abs(its["lss"][0] / its["md"][0] - 1)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a small version (smoke run)")
    parser.add_argument("--output", type=Path, default=RESULTS / "scoring.json")
    args = parser.parse_args()
    run = start_run()
    warnings.simplefilter("ignore", UserWarning)
    start = time.perf_counter()
    if args.quick:
        n_train, n_test, srv_epochs, mdn_epochs, lags, exact_steps = (
            5_000,
            20_000,
            2,
            2,
            [2, 10],
            20_000,
        )
    else:
        n_train, n_test, srv_epochs, mdn_epochs = 50_000, 250_000, 20, 30
        lags, exact_steps = [2, 10, 40], 200_000
    X = hidden_wells(n_train, n_trajectories=4, n_features=10, random_state=0)
    X_test = hidden_wells(n_test, n_trajectories=4, n_features=10, random_state=1)
    exact = float(hidden_wells_reference().timescales[0])
    srv = SRVTransformer(
        n_components=2, hidden_layer_sizes=(64, 64), batch_size=4096, max_epochs=srv_epochs
    )
    mdn = MDNPropagator(hidden_layer_sizes=(64, 64), max_epochs=mdn_epochs, patience=6)
    lss = LatentSpaceSimulator(srv, mdn, "passthrough", random_state=0)
    grid = [
        {"lag_time": lags, "propagator__n_kernels": [1, 8], "encoder": [srv]},
        {"lag_time": lags, "propagator__n_kernels": [8], "encoder": [FastModeEncoder()]},
    ]

    def exact_error(est, X, y=None):
        t = est.implied_timescales(
            X, space="latent", n_blocks=1, n_steps=exact_steps // est.lag_time_
        )
        return -abs(t["lss"][0] / exact - 1)

    scoring = {
        "old_free_energy_rmse": old_free_energy_rmse,
        "old_timescale_error": old_timescale_error,
        "free_energy_rmse": get_scorer("free_energy_rmse"),
        "js_divergence": get_scorer("js_divergence"),
        "timescale_error": get_scorer("timescale_error"),
        "exact": exact_error,
    }
    search = GridSearchCV(
        lss, grid, cv=[(np.arange(4), np.arange(4, 8))], scoring=scoring, refit=False
    ).fit(X + X_test)
    res = search.cv_results_
    rows = []
    for i, p in enumerate(res["params"]):
        rows.append(
            {
                "lag_time": p["lag_time"],
                "n_kernels": p["propagator__n_kernels"],
                "encoder": type(p["encoder"]).__name__,
                **{k: float(-res[f"mean_test_{k}"][i]) for k in scoring},
            }
        )
    for r in rows:
        r["fidelity"] = r["free_energy_rmse"] + r["timescale_error"]
    res["mean_test_fidelity"] = -np.array([r["fidelity"] for r in rows])
    chosen = {}
    for k in [*scoring, "fidelity"]:
        if k == "exact":
            continue
        best = int(np.argmax(res[f"mean_test_{k}"]))
        chosen[k] = {"candidate": best, "exact_error": rows[best]["exact"]}
    print(
        "| lag | kernels | encoder | old FE RMSE | old t error | FE RMSE | JS | t error "
        "| fidelity | exact t1 error |"
    )
    print("|" + "---|" * 10)
    for r in rows:
        print(
            f"| {r['lag_time']} | {r['n_kernels']} | {r['encoder']} | "
            f"{r['old_free_energy_rmse']:.3f} | {r['old_timescale_error']:.1%} | "
            f"{r['free_energy_rmse']:.3f} | {r['js_divergence']:.4f} | "
            f"{r['timescale_error']:.1%} | {r['fidelity']:.3f} | {r['exact']:.1%} |"
        )
    print("\nchosen by each score (exact t1 error of the chosen model):")
    for k, c in chosen.items():
        r = rows[c["candidate"]]
        print(
            f"  {k:>22}: lag {r['lag_time']}, {r['n_kernels']} kernels, {r['encoder']} "
            f"-> {c['exact_error']:.1%}"
        )
    best_possible = min(r["exact"] for r in rows)
    print(f"  smallest exact error in the grid: {best_possible:.1%}")
    elapsed = time.perf_counter() - start
    print(f"\n{elapsed:.0f} s")
    out = {
        "exact_t1_frames": exact,
        "train_frames": 4 * n_train,
        "heldout_frames": 4 * n_test,
        "quick": bool(args.quick),
        "candidates": rows,
        "chosen": chosen,
        "smallest_exact_error": best_possible,
        "seconds": elapsed,
    }
    print(f"wrote {write_result(args.output, out, run)}")


if __name__ == "__main__":
    main()
