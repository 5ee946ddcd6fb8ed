"""
Grid search over the lag time and the kernel count
==================================================

:class:`~sklss.LatentSpaceSimulator` exposes its components' parameters the way a
scikit-learn ``Pipeline`` does (``lag_time``, ``propagator__n_kernels``,
``encoder__n_components``), so :class:`sklearn.model_selection.GridSearchCV` tunes
``lag_time`` (which sets the lag of encoder and propagator together) and
``propagator__n_kernels`` in one search.

Two rules make the search sound for trajectory data:

- **Split by trajectory.** :class:`sklss.model_selection.TrajectoryKFold` holds out whole
  trajectories; :class:`sklss.model_selection.BlockKFold` holds out contiguous blocks of a
  single long one. Frames shuffled across folds leak information through time correlation.
- **Score across lags and encoders on fixed coordinates.** VAMP-2 and propagator
  log-likelihoods change meaning with the lag time, and any score measured along a
  candidate's own latent coordinate only checks the candidate against itself: an encoder
  whose first coordinate is a fast mode reproduces that fast mode well and scores well.
  :func:`sklss.model_selection.free_energy_rmse_scorer` (kT),
  :func:`sklss.model_selection.js_divergence_scorer` and
  :func:`sklss.model_selection.timescale_error_scorer` (relative error of the slowest
  relaxation time) simulate from the held-out trajectories' first frames and compare with
  them on the simulator's ``observable``: by default the leading TICA coordinates of the
  input features, fitted once on the training fold, the same for every candidate. States
  the simulation never visits, or visits where the MD never goes, cost. All are negated
  errors: higher is better.

Fits inside the search are seeded from ``random_state``, so ``n_jobs=-1`` or a Dask cluster
(``with joblib.parallel_backend("dask"): search.fit(X)``) give the same ``cv_results_`` as a
serial run.

.. note::

   The output on this page comes from the documentation build, which runs the script at CI
   size (``SKLSS_SMALL=1``: 400 frames per trajectory and one epoch, seconds), so its
   numbers, the best parameters and the figure are meaningless. Run it yourself,
   ``python grid_search.py``, for the full size.

**What to expect at full size** (6 trajectories of 40,000 frames, 30 epochs; 18 fits and
a refit): the exact slowest timescale of the toy is 340 frames; expect the timescale error
to fall as the lag grows. ``benchmarks/bench_scoring.py`` runs a similar grid (see
``benchmarks/README.md``): there, with 8 kernels, the timescale error on the fixed
observable falls from 32 % at lag 2 to 17 % at lag 40, and it ranks the candidates in the
order of their exact errors.
"""

import os

import matplotlib.pyplot as plt
import numpy as np
from sklearn.model_selection import GridSearchCV

from sklss import LatentSpaceSimulator, MDNPropagator, SRVTransformer
from sklss.datasets import hidden_wells
from sklss.model_selection import (
    TrajectoryKFold,
    free_energy_rmse_scorer,
    timescale_error_scorer,
)

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_FRAMES = 400 if SMALL else 40_000  # per trajectory
MAX_EPOCHS = 1 if SMALL else 30

# %%
# The data and the search
# -----------------------
#
# Six trajectories of the hidden-coordinate toy: 20 noisy features of a 2-D system.

X = hidden_wells(N_FRAMES, n_trajectories=6, random_state=0)

# %%
# A latent-only simulator (no decoder): to score it on the fixed observable, each simulated
# latent point takes the observable of the training frame nearest to it in latent space.

lss = LatentSpaceSimulator(
    SRVTransformer(n_components=2, max_epochs=MAX_EPOCHS),
    MDNPropagator(max_epochs=MAX_EPOCHS),
    "passthrough",
    random_state=0,
)
search = GridSearchCV(
    lss,
    {"lag_time": [2, 5, 10], "propagator__n_kernels": [4, 12]},
    cv=TrajectoryKFold(n_splits=3),  # two whole trajectories held out per fold
    scoring={"free_energy": free_energy_rmse_scorer, "timescale": timescale_error_scorer},
    refit="free_energy",  # both scores are negated errors: higher is better
    n_jobs=1,  # more workers, or joblib.parallel_backend("dask"), give the same results
)
search.fit(X)  # a list of trajectories: each one counts as one "sample" for the folds

# %%
# The results
# -----------
#
# Both scores are errors measured on the held-out trajectories, so they compare candidates
# with different lag times.

results = search.cv_results_
print("lag  kernels  free-energy RMSE (kT)  timescale error")
for i, params in enumerate(results["params"]):
    print(
        f"{params['lag_time']:>3}  {params['propagator__n_kernels']:>7}  "
        f"{-results['mean_test_free_energy'][i]:>10.3f} ± {results['std_test_free_energy'][i]:.3f}"
        f"  {-results['mean_test_timescale'][i]:>11.1%}"
    )
print("best:", search.best_params_)
best = search.best_estimator_  # refitted on all six trajectories
print("implied timescales of the best encoder (frames):", np.round(best.encoder_.timescales_))

# %%
# The two errors against the lag time, one line per kernel count, with their standard
# deviations over the three folds.

fig, axes = plt.subplots(1, 2, figsize=(10, 3.5), layout="constrained")
for n_kernels in (4, 12):
    rows = [i for i, p in enumerate(results["params"]) if p["propagator__n_kernels"] == n_kernels]
    lags = [results["params"][i]["lag_time"] for i in rows]
    for ax, score in zip(axes, ("free_energy", "timescale")):
        ax.errorbar(
            lags,
            -results[f"mean_test_{score}"][rows],
            results[f"std_test_{score}"][rows],
            marker="o",
            capsize=3,
            label=f"{n_kernels} kernels",
        )
axes[0].set_ylabel("free-energy RMSE (kT)")
axes[1].set_ylabel("relative error of the slowest timescale")
for ax in axes:
    ax.set_xlabel("lag time (frames)")
    ax.legend()
fig.savefig("grid_search.png", dpi=100)
