"""Choosing the lag time and the number of kernels by cross-validated grid search.

A latent space simulator is a scikit-learn estimator whose parameters nest like a
Pipeline's (``lag_time``, ``propagator__n_kernels``, ``encoder__n_components``), so
:class:`sklearn.model_selection.GridSearchCV` tunes it. Two things differ from frame-wise
data: folds must hold out whole trajectories (:class:`sklss.model_selection.TrajectoryKFold`),
and the score must compare models with different lag times, which VAMP-2 and likelihoods
cannot. The free-energy RMSE and the timescale error compare a simulation with the
held-out MD in kT and in frames on a fixed observable (a TICA of the input features), so
they are comparable whatever the lag or the encoder.

Run with SKLSS_SMALL=1 for a tiny version (seconds, meaningless numbers).
"""

import os

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

# Six trajectories of the hidden-coordinate toy: 20 noisy features of a 2-D system.
X = hidden_wells(N_FRAMES, n_trajectories=6, random_state=0)

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
