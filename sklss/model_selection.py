"""Cross-validation for trajectory data: splitters that respect time, and scorers.

Frames of one trajectory are correlated in time, so shuffled frame splits leak information
from training into test data. The splitters here hold out whole trajectories
(:class:`TrajectoryKFold`) or contiguous blocks of one long trajectory (:class:`BlockKFold`).

With a list of trajectories, scikit-learn counts each trajectory as one "sample", so
``GridSearchCV(cv=TrajectoryKFold(...))`` hands whole trajectories to ``fit`` and ``score``.

VAMP-2 scores (and propagator log-likelihoods) at different lag times measure different
things and must not be compared. To choose a lag time, a kernel count or an encoder, use
``fidelity`` (the default), ``free_energy_rmse``, ``js_divergence`` or ``timescale_error``:
they compare simulated with held-out dynamics on fixed coordinates that do not depend on the
candidate (the simulator's ``observable``, by default a TICA of the input features fitted on
the training fold), and missing or extra states cost. Only ``fidelity`` and
``timescale_error`` see wrong kinetics; a free-energy score alone can prefer an encoder that
learned a fast mode but reproduces the populations.
"""

import numpy as np
from sklearn.model_selection import BaseCrossValidator

from ._validation import check_int, is_trajectory_list

__all__ = [
    "BlockKFold",
    "TrajectoryKFold",
    "fidelity_scorer",
    "free_energy_rmse_scorer",
    "get_scorer",
    "js_divergence_scorer",
    "log_likelihood_scorer",
    "timescale_error_scorer",
    "vamp2_scorer",
]


class TrajectoryKFold(BaseCrossValidator):
    """K-fold over whole trajectories of a list: a trajectory is never split.

    Folds are contiguous runs of trajectories in list order (no shuffling), so the split is
    deterministic.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds; at most the number of trajectories.
    """

    def __init__(self, n_splits=5):
        self.n_splits = n_splits

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_splits

    def _iter_test_indices(self, X=None, y=None, groups=None):
        n_splits = check_int("n_splits", self.n_splits, 2)
        if not is_trajectory_list(X):
            raise ValueError(
                "TrajectoryKFold splits a list of trajectories; for one long trajectory use "
                "BlockKFold."
            )
        n = len(X)
        if n_splits > n:
            raise ValueError(f"n_splits={n_splits} is more than the {n} trajectories in X.")
        yield from np.array_split(np.arange(n), n_splits)


class BlockKFold(BaseCrossValidator):
    """K-fold over contiguous blocks of frames of one long trajectory.

    The test set is one contiguous block; the training set is every other frame except
    ``gap`` frames on either side of the block, so that no training pair at lag up to ``gap``
    reaches into the test block. The training frames before and after the block are joined
    into one array by scikit-learn, so ``lag_time`` pairs straddle the join; to avoid even
    those, cut the trajectory into a list of blocks and use :class:`TrajectoryKFold`.

    Parameters
    ----------
    n_splits : int, default=5
        Number of blocks.
    gap : int, default=0
        Frames dropped from the training set on each side of the test block; use at least
        the lag time.
    """

    def __init__(self, n_splits=5, *, gap=0):
        self.n_splits = n_splits
        self.gap = gap

    def get_n_splits(self, X=None, y=None, groups=None):
        return self.n_splits

    def split(self, X, y=None, groups=None):
        n_splits = check_int("n_splits", self.n_splits, 2)
        if is_trajectory_list(X):
            raise ValueError("BlockKFold splits one trajectory; for a list use TrajectoryKFold.")
        n = len(X)
        gap = int(self.gap)
        if gap < 0:
            raise ValueError(f"gap must be non-negative; got {self.gap!r}.")
        indices = np.arange(n)
        for block in np.array_split(indices, n_splits):
            lo, hi = block[0], block[-1] + 1
            train = np.concatenate([indices[: max(lo - gap, 0)], indices[hi + gap :]])
            if len(train) == 0:
                raise ValueError(f"gap={gap} leaves no training frames for a block of {n}.")
            yield train, block


def vamp2_scorer(estimator, X, y=None):
    """VAMP-2 on held-out data (``vamp2_score`` of a simulator, ``score`` of an encoder).

    Not comparable across lag times.
    """
    if hasattr(estimator, "vamp2_score"):
        return estimator.vamp2_score(X)
    return estimator.score(X)


def log_likelihood_scorer(estimator, X, y=None):
    """Mean held-out log-likelihood per lagged pair under the propagator.

    Compares kernel counts and architectures at one lag time; not comparable across lags.
    """
    if hasattr(estimator, "propagator_"):
        return estimator.propagator_.score(estimator.transform(X))
    return estimator.score(X)


def fidelity_scorer(estimator, X, y=None):
    """Negated sum of the free-energy RMSE (kT) and the relative timescale error.

    Both on the first coordinate of the simulator's fixed observable, from one simulation
    started at the held-out trajectories' first frames: a candidate must reproduce the
    populations (missing and extra states cost) and the slowest relaxation. The default
    score of ``LatentSpaceSimulator``. Comparable across lag times, kernel counts and
    encoders.
    """
    return -estimator._fidelity(X)


def free_energy_rmse_scorer(estimator, X, y=None):
    """Negated free-energy RMSE (kT) between held-out MD and simulation, missing states included.

    Measured along the simulator's fixed observable (by default the leading TICA coordinate
    of the training features), not the candidate's own latent coordinate; bins that only one
    side populates count at the cap. The simulation starts from the held-out trajectories'
    first frames and is as long as the held-out data. Comparable across lag times, kernel
    counts and encoders.
    """
    return -estimator.free_energy_rmse(X)


def js_divergence_scorer(estimator, X, y=None):
    """Negated Jensen-Shannon divergence (bits) of the first two observable coordinates.

    A two-dimensional histogram of the fixed observable, held-out MD against simulation, with
    mass outside the MD's range in a cell of its own. Comparable across lag times, kernel
    counts and encoders.
    """
    return -estimator.compare(X, coordinate=None, bins=20)["js_divergence"]


def timescale_error_scorer(estimator, X, y=None):
    """Negated relative error of the slowest relaxation time on the fixed observable.

    The relaxation time of the first observable coordinate (see
    ``LatentSpaceSimulator.implied_timescales(space="observable")``), simulation against
    held-out MD. Comparable across lag times, kernel counts and encoders. Where the held-out
    data are too short to measure a relaxation time, the error counts as 100 %, with a
    warning (as in ``fidelity``), so that a grid search gets a number rather than NaN.
    """
    return -estimator._timescale_error(X)


def rollout_error_scorer(estimator, X, y=None):
    """Negated ``rollout_error`` (kT) of the propagator on held-out latent trajectories.

    Long trajectories generated from frames of ``X`` against ``X``: the free-energy RMSE
    along every latent coordinate, with no cap, so that barriers and rare states count (see
    ``MDNPropagator.rollout_error``). On a simulator, ``X`` is encoded first. Compares
    propagators on one latent space (kernel counts, seeds, training settings); not
    comparable across encoders or lag times.
    """
    if hasattr(estimator, "propagator_"):
        return -estimator.propagator_.rollout_error(estimator.transform(X))
    return -estimator.rollout_error(X)


_SCORERS = {
    "fidelity": fidelity_scorer,
    "vamp2": vamp2_scorer,
    "log_likelihood": log_likelihood_scorer,
    "free_energy_rmse": free_energy_rmse_scorer,
    "js_divergence": js_divergence_scorer,
    "timescale_error": timescale_error_scorer,
    "rollout_error": rollout_error_scorer,
}


def get_scorer(name):
    """The scorer called ``name``: one of "fidelity", "vamp2", "log_likelihood",
    "free_energy_rmse", "js_divergence", "timescale_error", "rollout_error". Each is a callable
    ``(estimator, X, y=None) -> float`` that ``GridSearchCV(scoring=...)`` accepts; higher is
    better."""
    if name not in _SCORERS:
        raise ValueError(f"Unknown scorer {name!r}; choose one of {sorted(_SCORERS)}.")
    return _SCORERS[name]
