"""Markov state models for validating simulators, built on deeptime.

deeptime is the field's library for Markov state models (MSMs): it estimates transition
counts, maximum-likelihood and Bayesian reversible MSMs, and their timescales. sklss uses it
here for three jobs and writes none of that maths itself:

* :func:`discretize` assigns frames of a fixed coordinate to ``n_states`` k-means states
  (deeptime's ``KMeans``);
* :func:`markov_timescales` gives the implied timescales of a reversible MSM on bins, and
  :func:`msm_timescales` those of an MSM on given states, with Bayesian error bars;
* :func:`chapman_kolmogorov_test` compares, at ``k`` times the lag, what an MSM estimated at
  the lag predicts, what MD shows directly, and what a simulator generates, with Bayesian
  error bars, so that a simulator that is not Markovian at its lag fails visibly.
"""

import numpy as np
from sklearn.utils import Bunch

from ._validation import check_int, is_trajectory_list

__all__ = ["chapman_kolmogorov_test", "discretize", "markov_timescales", "msm_timescales"]


def _dtraj_list(dtrajs, name):
    """A list of 1-D int32 state sequences from one sequence or a list of them."""
    if isinstance(dtrajs, (list, tuple)) and len(dtrajs) and np.ndim(dtrajs[0]) == 1:
        parts = list(dtrajs)
    else:
        parts = [dtrajs]
    out = []
    for i, d in enumerate(parts):
        d = np.asarray(d)
        if d.ndim != 1 or d.dtype.kind not in "iu":
            raise ValueError(f"{name}: trajectory {i} must be a 1-D integer array of states.")
        out.append(d.astype(np.int32))
    return out


def discretize(X, n_states, *, fit_on=None, random_state=0):
    """Assign frames to ``n_states`` k-means states (deeptime ``KMeans``).

    Parameters
    ----------
    X : array-like of shape (n_frames, d) or list of them
        Coordinates to discretise, for example a fixed TICA projection.
    n_states : int
        Number of states.
    fit_on : array-like or list, default=None
        Data to place the cluster centres on (for example the MD); ``None`` uses ``X``.
    random_state : int, default=0
        Seeds the k-means++ initialisation.

    Returns
    -------
    dtrajs : list of ndarray of int
        One state sequence per trajectory of ``X``.
    centers : ndarray of shape (n_states, d)
    """
    from deeptime.clustering import KMeans

    n_states = check_int("n_states", n_states, 2)
    trajs = [np.asarray(t, dtype=np.float64) for t in (X if is_trajectory_list(X) else [X])]
    trajs = [t[:, None] if t.ndim == 1 else t for t in trajs]
    ref = trajs if fit_on is None else (fit_on if is_trajectory_list(fit_on) else [fit_on])
    ref = np.concatenate([np.asarray(t, dtype=np.float64).reshape(len(t), -1) for t in ref])
    # Sorted along the first coordinate, so that state labels are reproducible and readable.
    km = KMeans(n_states, init_strategy="kmeans++", fixed_seed=int(random_state), max_iter=200)
    model = km.fit_fetch(ref)
    order = np.argsort(model.cluster_centers[:, 0])
    centers = model.cluster_centers[order]
    relabel = np.empty(n_states, dtype=np.int32)
    relabel[order] = np.arange(n_states, dtype=np.int32)
    return [relabel[model.transform(t)] for t in trajs], centers


def _msm(dtrajs, lag, n_states, *, bayesian=0, random_state=0, all_states=True):
    """A reversible MSM at ``lag`` on all ``n_states`` states, or ``None`` if not connected
    (with ``all_states=False``, on the largest connected set, whatever its size).

    Returns the maximum-likelihood transition matrix and, with ``bayesian > 0``, that many
    posterior samples of it: deeptime's reversible transition-matrix sampler on effective
    counts, as ``BayesianMSM`` runs it, but with a fixed seed so results are reproducible.
    """
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM
    from deeptime.markov.tools.estimation.dense.tmat_sampling.tmatrix_sampler import (
        TransitionMatrixSampler,
    )

    counts = TransitionCountEstimator(lag, "effective" if bayesian else "sliding", n_states)
    count_model = counts.fit_fetch(dtrajs)
    if count_model.count_matrix.sum() == 0:
        return None
    largest = count_model.submodel_largest()
    if (all_states and largest.n_states != n_states) or largest.n_states < 2:
        return None
    T = MaximumLikelihoodMSM(reversible=True).fit_fetch(largest).transition_matrix
    if not bayesian:
        return T, None
    sampler = TransitionMatrixSampler(
        largest.count_matrix,
        reversible=True,
        P0=T,
        n_steps=max(1, int(np.sqrt(n_states))),
        seed=int(random_state) % (2**31),
    )
    n = largest.n_states
    return T, np.asarray(sampler.sample(nsamples=bayesian)).reshape(bayesian, n, n)


def markov_timescales(x, edges, lag_time, *, n_components=1, dt=1.0):
    """Implied timescales of a reversible Markov state model on the bins ``edges`` of ``x``.

    Each frame of the one-dimensional coordinate ``x`` (an array, or a list of trajectories)
    is assigned to its bin (values outside go to the end bins); deeptime estimates the
    maximum-likelihood reversible MSM at ``lag_time`` frames on the largest connected set of
    bins, and its timescales are returned.

    Returns
    -------
    timescales : ndarray of shape (n_components,)
        In frames of ``x``, or in the units of ``dt``; NaN where the MSM has fewer states.
    """
    from deeptime.markov import TransitionCountEstimator
    from deeptime.markov.msm import MaximumLikelihoodMSM

    edges = np.asarray(edges, dtype=np.float64)
    lag_time = check_int("lag_time", lag_time, 1)
    trajs = x if is_trajectory_list(x) else [x]
    n_bins = len(edges) - 1
    dtrajs = [
        np.clip(np.digitize(np.ravel(t), edges) - 1, 0, n_bins - 1).astype(np.int32) for t in trajs
    ]
    if max(len(d) for d in dtrajs) <= lag_time:
        raise ValueError(
            f"lag_time={lag_time} is not below the longest trajectory "
            f"({max(len(d) for d in dtrajs)} frames)."
        )
    count_model = TransitionCountEstimator(lag_time, "sliding").fit_fetch(dtrajs)
    msm = MaximumLikelihoodMSM(reversible=True).fit_fetch(count_model.submodel_largest())
    ts = np.full(n_components, np.nan)
    k = min(n_components, msm.n_states - 1)
    if k > 0:
        ts[:k] = msm.timescales(k)
    return ts * dt


def msm_timescales(
    dtrajs, lag_time, *, n_components=1, n_samples=100, level=0.95, dt=1.0, random_state=0
):
    """Implied timescales of a reversible MSM on discrete states, with Bayesian error bars.

    The maximum-likelihood reversible MSM at ``lag_time`` gives the estimate, and
    ``n_samples`` transition matrices from its posterior give the interval and the standard
    error; both are estimated on effective counts (statistically independent transitions,
    as deeptime's ``BayesianMSM`` counts them), so that the error bars of correlated data are
    not too narrow. Both use the largest connected set of states, whose size is returned:
    compare two models (MD and a simulator) on the same states only when both connect them.

    Parameters
    ----------
    dtrajs : array-like of int or list of them
        State sequences, frames one frame apart.
    lag_time : int
        Lag in frames.
    n_components : int, default=1
        Number of timescales, slowest first.
    n_samples : int, default=100
        Posterior samples for the error bars (at least 2).
    level : float, default=0.95
        Coverage of the percentile interval.
    dt : float, default=1.0
        Time between frames; timescales come in its units.
    random_state : int, default=0
        Seeds the posterior sampling.

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``timescales``, ``std_error``, ``lower``, ``upper``: arrays of shape
        ``(n_components,)`` in units of ``dt`` (NaN where the connected set has too few
        states); ``n_states_connected`` and ``n_states``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklss.markov import msm_timescales
    >>> rng = np.random.default_rng(0)
    >>> T = np.array([[0.99, 0.01], [0.02, 0.98]])
    >>> s = [0]
    >>> for _ in range(20000):
    ...     s.append(rng.choice(2, p=T[s[-1]]))
    >>> r = msm_timescales(np.array(s), 1, n_samples=20)
    >>> bool(r.lower[0] < -1 / np.log(0.97) < r.upper[0])  # exact: 32.8 frames
    True
    """

    lag_time = check_int("lag_time", lag_time, 1)
    n_components = check_int("n_components", n_components, 1)
    n_samples = check_int("n_samples", n_samples, 2)
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1); got {level!r}.")
    parts = _dtraj_list(dtrajs, "dtrajs")
    if max(len(d) for d in parts) <= lag_time:
        raise ValueError(
            f"lag_time={lag_time} is not below the longest trajectory "
            f"({max(len(d) for d in parts)} frames)."
        )
    n = int(max(d.max() for d in parts)) + 1
    fit = _msm(parts, lag_time, n, bayesian=n_samples, random_state=random_state, all_states=False)
    n_connected = len(fit[0]) if fit is not None else 0
    ts = np.full((n_samples + 1, n_components), np.nan)
    k = min(n_components, n_connected - 1)
    if k > 0:
        for row, T in enumerate([fit[0], *fit[1]]):
            ev = np.sort(np.abs(np.linalg.eigvals(T)))[::-1][1 : k + 1]
            with np.errstate(divide="ignore"):
                ts[row, :k] = np.where(ev > 0, -lag_time / np.log(ev), np.nan)
    samples = ts[1:]
    lower, upper, se = (np.full(n_components, np.nan) for _ in range(3))
    if k > 0:
        alpha = (1 - level) / 2
        lower[:k], upper[:k] = np.nanquantile(samples[:, :k], [alpha, 1 - alpha], axis=0)
        se[:k] = np.nanstd(samples[:, :k], axis=0, ddof=1)
    return Bunch(
        timescales=ts[0] * dt,
        std_error=se * dt,
        lower=lower * dt,
        upper=upper * dt,
        n_states_connected=n_connected,
        n_states=n,
    )


def _diagonal_interval(matrices, level):
    """The ``level`` percentile interval of the diagonals of a stack of matrices."""
    diagonals = np.diagonal(matrices, axis1=-2, axis2=-1)
    lo = np.percentile(diagonals, 50 * (1 - level), axis=0)
    hi = np.percentile(diagonals, 50 * (1 + level), axis=0)
    return lo, hi


def chapman_kolmogorov_test(
    md_dtrajs,
    lag_time,
    *,
    k_max=5,
    model_dtrajs=None,
    n_states=None,
    n_samples=100,
    level=0.95,
    tolerance=0.05,
    random_state=0,
):
    """Chapman-Kolmogorov test of MD and of a simulator on fixed discrete states.

    For ``k = 1..k_max``, the probability of being in state ``i`` again ``k`` lag times after
    being in it is computed three ways:

    * ``predicted``: from the MSM estimated on the MD at ``lag_time``, as ``T(lag)^k``;
    * ``md``: from an MSM estimated on the MD directly at ``k * lag_time``;
    * ``model``: from an MSM estimated at ``k`` steps on the simulator's state sequences,
      whose consecutive frames are one ``lag_time`` apart.

    Error bars are ``level`` intervals over ``n_samples`` Bayesian MSM samples (deeptime's
    ``BayesianMSM`` on effective counts). The model *passes* when every ``model`` estimate
    lies within the ``md`` interval widened by ``tolerance`` on each side. An MSM is Markovian
    at ``lag_time`` when ``predicted`` tracks ``md``; the simulator is faithful when ``model``
    does.

    Parameters
    ----------
    md_dtrajs : array-like of int or list of them
        State sequences of the MD, frames one frame apart.
    lag_time : int
        Lag in MD frames (the simulator's step).
    k_max : int, default=5
        Largest multiple of the lag tested.
    model_dtrajs : array-like of int or list of them, default=None
        State sequences of the simulator, one step (``lag_time`` MD frames) apart.
    n_states : int, default=None
        Number of states; ``None`` uses the largest state index in the MD plus one.
    n_samples : int, default=100
        Bayesian samples for the error bars.
    level : float, default=0.95
        Coverage of the intervals.
    tolerance : float, default=0.05
        Absolute slack (in probability) added to the MD interval for the pass test.
    random_state : int, default=0
        Seeds the Bayesian sampling (numpy's global state is restored afterwards).

    Returns
    -------
    result : :class:`~sklearn.utils.Bunch`
        ``lag_times`` (``k * lag_time`` for ``k = 0..k_max``, in MD frames); arrays of
        shape (k_max + 1, n_states): ``predicted``, ``predicted_lower``, ``predicted_upper``,
        ``md``, ``md_lower``, ``md_upper``, and, with ``model_dtrajs``, ``model``,
        ``model_lower``, ``model_upper``; ``max_model_deviation`` (largest ``|model - md|``),
        ``max_markov_deviation`` (largest ``|predicted - md|``) and ``passed`` (bool, or
        ``None`` without a model). Row 0 is 1 by definition. An entry is NaN where the MSM
        at that lag does not connect all states (too little data); such entries do not count.
    """
    lag_time = check_int("lag_time", lag_time, 1)
    k_max = check_int("k_max", k_max, 1)
    n_samples = check_int("n_samples", n_samples, 2)
    md = _dtraj_list(md_dtrajs, "md_dtrajs")
    n = int(max(d.max() for d in md)) + 1 if n_states is None else int(n_states)
    longest = max(len(d) for d in md)
    if k_max * lag_time >= longest:
        raise ValueError(
            f"k_max * lag_time = {k_max * lag_time} frames must be below the longest MD "
            f"trajectory ({longest} frames)."
        )
    shape = (k_max + 1, n)

    base = _msm(md, lag_time, n, bayesian=n_samples, random_state=random_state)
    if base is None:
        raise ValueError(
            f"The MD does not connect all {n} states at lag_time={lag_time}: use fewer states "
            "or more data."
        )
    T, T_samples = base
    out = Bunch(lag_times=np.arange(k_max + 1) * lag_time)
    keys = ("predicted", "md") + (("model",) if model_dtrajs is not None else ())
    for key in keys:
        for suffix in ("", "_lower", "_upper"):
            out[key + suffix] = np.full(shape, np.nan)
            out[key + suffix][0] = 1.0
    model = None if model_dtrajs is None else _dtraj_list(model_dtrajs, "model_dtrajs")
    for k in range(1, k_max + 1):
        out.predicted[k] = np.diagonal(np.linalg.matrix_power(T, k))
        powers = np.stack([np.linalg.matrix_power(s, k) for s in T_samples])
        out.predicted_lower[k], out.predicted_upper[k] = _diagonal_interval(powers, level)
        direct = _msm(md, k * lag_time, n, bayesian=n_samples, random_state=random_state + k)
        if direct is not None:
            out.md[k] = np.diagonal(direct[0])
            out.md_lower[k], out.md_upper[k] = _diagonal_interval(direct[1], level)
        if model is not None and max(len(d) for d in model) > k:
            sim = _msm(model, k, n, bayesian=n_samples, random_state=random_state + 100 + k)
            if sim is not None:
                out.model[k] = np.diagonal(sim[0])
                out.model_lower[k], out.model_upper[k] = _diagonal_interval(sim[1], level)
    with np.errstate(invalid="ignore"):
        markov = np.abs(out.predicted - out.md)
        out.max_markov_deviation = (
            float(np.nanmax(markov[1:])) if np.isfinite(markov[1:]).any() else np.nan
        )
        if model is None:
            out.max_model_deviation = np.nan
            out.passed = None
        else:
            dev = np.abs(out.model - out.md)[1:]
            out.max_model_deviation = float(np.nanmax(dev)) if np.isfinite(dev).any() else np.nan
            inside = (out.model[1:] >= out.md_lower[1:] - tolerance) & (
                out.model[1:] <= out.md_upper[1:] + tolerance
            )
            checked = np.isfinite(out.model[1:]) & np.isfinite(out.md[1:])
            out.passed = bool(checked.any() and inside[checked].all())
    return out
