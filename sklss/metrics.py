"""Scores for latent space simulators: VAMP-2, implied timescales, free energies, divergences.

Time is counted in frames unless a ``dt`` is given. Free energies are in units of kT.
"""

import numpy as np

from ._covariance import lagged_covariances, vac_eigenvalues, vamp2_from_covariances
from ._random import derive_seeds, seed_entropy
from ._validation import as_float_trajectories, check_lag_time, is_trajectory_list, lagged_pairs
from ._zmatrix import _neighbour_lists
from .markov import markov_timescales  # noqa: F401  (public here too, for compatibility)

__all__ = [
    "autocorrelation",
    "autocorrelation_timescales",
    "block_average",
    "compare_distributions",
    "excursion_statistics",
    "free_energy_profile",
    "free_energy_rmse",
    "geometry_fidelity",
    "js_divergence",
    "markov_timescales",
    "eigenvalue_noise_floor",
    "timescales_from_eigenvalues",
    "implied_timescales",
    "implied_timescales_vs_lag",
    "vamp2_score",
]


def vamp2_score(X, lag_time, *, reversible=False, epsilon=1e-6, n_components=None):
    """VAMP-2 score of the coordinates ``X`` at ``lag_time``.

    The score is ``1 + sum_i s_i^2``, where ``s_i`` are the singular values of the whitened
    time-lagged cross-covariance of the (mean-free) coordinates; the ``1`` counts the constant
    function. It measures how much slow dynamics the coordinates' linear span captures, and is
    at most ``1 + n`` for ``n`` coordinates.

    VAMP-2 values at different lag times measure different things (singular values decay with
    the lag) and must not be compared with each other.

    Parameters
    ----------
    X : array-like of shape (n_frames, n_features) or list of them
        Trajectory data of the coordinates to score; pairs never cross trajectories.
    lag_time : int
        Lag in frames.
    reversible : bool, default=False
        Symmetrise the covariances over both time directions.
    epsilon : float, default=1e-6
        Covariance eigenvalues below it are cut off before whitening.
    n_components : int, default=None
        Sum only the leading singular values.

    Returns
    -------
    score : float
    """
    X0, Xt = lagged_pairs(as_float_trajectories(X), check_lag_time(lag_time))
    C00, C0t, Ctt, _, _ = lagged_covariances(X0, Xt, reversible=reversible)
    return vamp2_from_covariances(C00, C0t, Ctt, epsilon, n_components)


def eigenvalue_noise_floor(n_pairs, n_coordinates=1, *, factor=3.0):
    """Largest eigenvalue magnitude that time-lagged noise alone plausibly produces.

    The rule is ``factor * sqrt(n_coordinates / n_pairs)``. For one coordinate,
    ``1 / sqrt(n_pairs)`` is the standard error of a lagged autocorrelation estimated from
    ``n_pairs`` independent pairs of uncorrelated data, so the default floor is three standard
    errors. For ``d`` coordinates the estimated whitened Koopman matrix of uncorrelated data
    has ``d`` noise eigenvalues that spread over a radius of about ``sqrt(d / n_pairs)``
    (``sqrt(2 d / n_pairs)`` after reversible symmetrisation), so scaling with ``sqrt(d)``
    keeps the largest of them below the floor.

    The rule assumes independent pairs. Time-correlated data have fewer effective samples and
    a wider noise band; the bootstrap of :meth:`sklss.SRVTransformer.implied_timescales`
    accounts for that.

    Parameters
    ----------
    n_pairs : int
        Number of time-lagged pairs the eigenvalues were estimated from.
    n_coordinates : int, default=1
        Number of coordinates (the rank of the whitened basis).
    factor : float, default=3.0
        Multiple of the noise scale.

    Returns
    -------
    floor : float
    """
    if n_pairs < 1 or n_coordinates < 1:
        raise ValueError(
            f"n_pairs and n_coordinates must be positive; got {n_pairs} and {n_coordinates}."
        )
    return float(factor * np.sqrt(n_coordinates / n_pairs))


def timescales_from_eigenvalues(eigenvalues, lag_time, dt=1.0, *, noise_floor=0.0):
    """Implied timescales ``t_i = -lag_time * dt / ln(lambda_i)`` of resolved eigenvalues.

    Only an eigenvalue that is real and above ``noise_floor`` (and so positive) gives a
    timescale: anything at or below the floor, and any real eigenvalue at or below zero, gives
    ``nan``. A negative eigenvalue describes an oscillation with a period of two lag times, not
    a relaxation, and the timescale of an eigenvalue lost in noise would be a number without
    meaning. Eigenvalues at or above 1 give ``inf``.

    A complex eigenvalue (from a non-reversible estimate) gives the relaxation time of its
    modulus, ``-lag_time * dt / ln|lambda_i|``, and ``nan`` when the modulus is at or below
    the floor. Real entries of a complex array are treated as real eigenvalues.

    Parameters
    ----------
    eigenvalues : array-like, real or complex
        Eigenvalues at ``lag_time``.
    lag_time : float
        Lag time of the eigenvalues, in frames.
    dt : float, default=1.0
        Time per frame.
    noise_floor : float or array-like, default=0.0
        Eigenvalues at or below it give ``nan``; broadcast against ``eigenvalues`` (one floor
        per eigenvalue is allowed). See :func:`eigenvalue_noise_floor` for a default.

    Returns
    -------
    timescales : ndarray of the shape of ``eigenvalues``
        In frames, or in the units of ``dt``.
    """
    lam = np.asarray(eigenvalues)
    if np.iscomplexobj(lam):
        real_axis = np.imag(lam) == 0
        value = np.where(real_axis, np.real(lam), np.abs(lam)).astype(np.float64)
    else:
        value = lam.astype(np.float64)
    floor = np.asarray(noise_floor, dtype=np.float64)
    if np.isnan(floor).any() or (floor < 0).any():
        raise ValueError(f"noise_floor must be non-negative; got {noise_floor!r}.")
    floor = np.broadcast_to(floor, value.shape)
    t = np.full(value.shape, np.nan)
    resolved = (value > floor) & (value > 0)
    t[resolved & (value >= 1)] = np.inf
    decaying = resolved & (value < 1)
    t[decaying] = -lag_time * dt / np.log(value[decaying])
    return t[()] if t.ndim == 0 else t


def implied_timescales(
    X,
    lag_time,
    *,
    method="vac",
    n_components=None,
    reversible=True,
    dt=1.0,
    epsilon=1e-6,
    max_lag=None,
    noise_floor="auto",
):
    """Implied timescales of the coordinates ``X``.

    ``method="vac"`` solves the generalised eigenproblem ``C0t v = lambda C00 v`` of the
    covariances at ``lag_time`` and returns ``-lag_time * dt / ln(lambda_i)`` for the leading
    eigenvalues: for coordinates that span the slow eigenfunctions (for example an SRV's
    output) these are the relaxation timescales. Eigenvalues at or below ``noise_floor``, and
    non-positive ones, give ``nan`` (see :func:`timescales_from_eigenvalues`).

    With ``reversible=True`` the covariances are symmetrised over both directions of time and
    the eigenvalues are real, in descending order. With ``reversible=False`` they are the
    eigenvalues of ``C00^{-1} C0t`` (the estimated propagator of the coordinates), which may
    be complex: a complex pair gives the timescale of its modulus, and the order is by
    modulus, with real non-positive eigenvalues last.

    ``method="autocorrelation"`` fits ``exp(-t / t_i)`` to the autocorrelation of each
    coordinate separately (see :func:`autocorrelation_timescales`), as the latent space
    simulator paper does for the columns of latent trajectories; ``lag_time``, ``reversible``,
    ``epsilon`` and ``noise_floor`` are ignored.

    Parameters
    ----------
    X : array-like of shape (n_frames, n_features) or list of them
        Trajectory data of the coordinates; pairs never cross trajectories.
    lag_time : int
        Lag in frames.
    method : {"vac", "autocorrelation"}, default="vac"
    n_components : int, default=None
        Return only the leading timescales.
    reversible : bool, default=True
        Symmetrise the covariances (detailed balance).
    dt : float, default=1.0
        Time per frame.
    epsilon : float, default=1e-6
        Covariance eigenvalues below it are cut off before whitening.
    max_lag : int, default=None
        Passed to :func:`autocorrelation_timescales` by ``method="autocorrelation"``.
    noise_floor : "auto" or float, default="auto"
        Eigenvalues at or below it give ``nan``. ``"auto"`` uses
        :func:`eigenvalue_noise_floor` of the number of lagged pairs and the rank of the
        whitened coordinates (three noise standard errors); 0 keeps every positive eigenvalue.

    Returns
    -------
    timescales : ndarray of shape (n_components,)
        In frames, or in the units of ``dt``; ``nan`` for unresolved eigenvalues.
    """
    if method == "autocorrelation":
        ts, _ = autocorrelation_timescales(X, dt=dt, max_lag=max_lag, n_blocks=1)
        return ts if n_components is None else ts[:n_components]
    if method != "vac":
        raise ValueError(f"method must be 'vac' or 'autocorrelation'; got {method!r}.")
    lag_time = check_lag_time(lag_time)
    X0, Xt = lagged_pairs(as_float_trajectories(X), lag_time)
    C00, C0t, _, _, _ = lagged_covariances(X0, Xt, reversible=reversible)
    lam = vac_eigenvalues(C00, C0t, reversible=reversible, epsilon=epsilon)
    floor = _resolve_noise_floor(noise_floor, len(X0), len(lam))
    if n_components is not None:
        lam = lam[:n_components]
    return timescales_from_eigenvalues(lam, lag_time, dt, noise_floor=floor)


def _resolve_noise_floor(noise_floor, n_pairs, n_coordinates):
    if isinstance(noise_floor, str):
        if noise_floor != "auto":
            raise ValueError(f"noise_floor must be 'auto' or a number; got {noise_floor!r}.")
        return eigenvalue_noise_floor(n_pairs, max(n_coordinates, 1))
    return float(noise_floor)


def implied_timescales_vs_lag(
    estimator,
    X_test,
    lag_times,
    *,
    X_train=None,
    n_bootstrap=100,
    n_blocks=10,
    confidence=0.95,
    noise_floor="auto",
    random_state=None,
):
    """Held-out implied timescales with error bars at several lag times.

    Two modes, chosen by ``X_train``:

    * With ``X_train``, a clone of ``estimator`` is fitted at each lag on ``X_train`` and its
      timescales are measured on ``X_test`` at that lag. This is the usual implied-timescale
      test for choosing a lag: the model's estimate should level off once the lag is long
      enough for the fitted eigenfunctions to resolve the slow processes. It costs one fit
      per lag.
    * Without it, the already fitted ``estimator`` keeps its eigenfunctions and they are
      evaluated on ``X_test`` at every lag. This is cheap and checks one model: the
      timescales stay flat in the lag only if the fitted functions behave like true
      eigenfunctions (``lambda(k tau) = lambda(tau)^k``), so a drift exposes an inaccurate
      model. It does not show how a model fitted at another lag would do.

    In both modes the timescales come from ``estimator.implied_timescales`` (for example
    :meth:`sklss.SRVTransformer.implied_timescales`): a VAC solve on held-out data, ``nan``
    for eigenvalues below the noise floor, and bootstrap error bars.

    Parameters
    ----------
    estimator : SRVTransformer
        Any estimator with a ``lag_time`` parameter and an ``implied_timescales(X, *,
        lag_time, n_bootstrap, n_blocks, confidence, noise_floor, random_state)`` method that
        returns a :class:`~sklearn.utils.Bunch` like the SRV's. Fitted, unless ``X_train`` is
        given.
    X_test : array-like of shape (n_frames, n_features) or list of them
        Held-out trajectory data.
    lag_times : array-like of int
        Lag times in frames.
    X_train : array-like or list of them, default=None
        Training data for one fit per lag; ``None`` evaluates the fitted ``estimator``.
    n_bootstrap, n_blocks, confidence, noise_floor
        Passed to ``estimator.implied_timescales``.
    random_state : int, RandomState instance or None, default=None
        Seeds the bootstrap at each lag (one derived seed per lag). ``None`` leaves the
        estimator's own deterministic default at every lag.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``lag_times`` (n_lags,), and ``timescales``, ``std_error``, ``lower``, ``upper``,
        ``eigenvalues`` and ``noise_floor``, each of shape (n_lags, n_components) with
        ``nan`` where a lag gives fewer components (``n_components="auto"`` can differ
        between fits), in frames. ``estimators`` holds the fitted clones (``None`` without
        ``X_train``). Pass ``lag_times``, ``timescales`` and ``std_error`` to
        :func:`sklss.plotting.implied_timescales`.
    """
    import inspect

    from sklearn.base import clone
    from sklearn.utils import Bunch

    method = getattr(estimator, "implied_timescales", None)
    needed = {"lag_time", "n_bootstrap"}
    if not callable(method) or not needed <= set(inspect.signature(method).parameters):
        raise TypeError(
            f"{type(estimator).__name__} has no implied_timescales(X, lag_time=..., "
            f"n_bootstrap=...) method; use an encoder such as SRVTransformer."
        )
    lags = np.array([check_lag_time(lag) for lag in np.asarray(lag_times).ravel().tolist()])
    if lags.size == 0:
        raise ValueError("lag_times is empty.")
    if random_state is None:
        # The estimator's own deterministic default at every lag.
        seeds = [None] * len(lags)
    else:
        entropy = seed_entropy(random_state)
        seeds = derive_seeds(entropy, len(lags))
    results, fitted = [], []
    for lag, seed in zip(lags, seeds, strict=True):
        est = estimator
        if X_train is not None:
            est = clone(estimator).set_params(lag_time=int(lag)).fit(X_train)
            fitted.append(est)
        results.append(
            est.implied_timescales(
                X_test,
                lag_time=int(lag),
                n_bootstrap=n_bootstrap,
                n_blocks=n_blocks,
                confidence=confidence,
                noise_floor=noise_floor,
                random_state=seed,
            )
        )
    width = max(len(r.timescales) for r in results)

    def stack(key):
        rows = [np.asarray(r[key]) for r in results]
        dtype = np.complex128 if any(np.iscomplexobj(v) for v in rows) else np.float64
        out = np.full((len(rows), width), np.nan, dtype=dtype)
        for i, v in enumerate(rows):
            out[i, : len(v)] = v
        return out

    keys = ("timescales", "std_error", "lower", "upper", "eigenvalues", "noise_floor")
    return Bunch(
        lag_times=lags,
        **{key: stack(key) for key in keys},
        estimators=fitted if X_train is not None else None,
    )


def autocorrelation(X, max_lag):
    """Normalised autocorrelation of each coordinate at lags ``0..max_lag`` frames.

    The mean and variance are pooled over all trajectories, and products are formed within
    each trajectory only, so ``C(0) = 1`` and ``C(k)`` is the correlation of ``x_t`` with
    ``x_{t+k}``.

    Returns
    -------
    acf : ndarray of shape (max_lag + 1, n_features)
    """
    trajs = as_float_trajectories(X)
    max_lag = int(max_lag)
    if max_lag < 0:
        raise ValueError(f"max_lag must be non-negative; got {max_lag}.")
    longest = max(len(t) for t in trajs)
    if max_lag >= longest:
        raise ValueError(f"max_lag={max_lag} must be below the longest trajectory ({longest}).")
    allx = np.concatenate(trajs)
    mean, var = allx.mean(axis=0), allx.var(axis=0)
    var = np.where(var > 0, var, 1.0)
    sums = np.zeros((max_lag + 1, allx.shape[1]))
    counts = np.zeros(max_lag + 1)
    for t in trajs:
        d = t - mean
        n = len(d)
        # FFT correlation: O(n log n) for all lags at once.
        size = 1 << int(np.ceil(np.log2(2 * n)))
        f = np.fft.rfft(d, n=size, axis=0)
        full = np.fft.irfft(f * np.conj(f), n=size, axis=0)[: min(n, max_lag + 1)]
        sums[: len(full)] += full
        counts[: len(full)] += n - np.arange(len(full))
    return sums / counts[:, None] / var


def _fit_exponential(acf, dt):
    """Fit ``exp(-k dt / tau)`` to one autocorrelation curve by least squares; return tau."""
    from scipy.optimize import curve_fit

    k = np.arange(len(acf)) * dt
    below = np.flatnonzero(acf < np.exp(-1))
    guess = k[below[0]] if len(below) else k[-1]
    guess = max(guess, dt)
    try:
        (tau,), _ = curve_fit(
            lambda t, tau: np.exp(-t / tau), k, acf, p0=[guess], bounds=(1e-12 * dt, np.inf)
        )
    except RuntimeError:
        tau = guess
    return float(tau)


def autocorrelation_timescales(X, *, dt=1.0, max_lag=None, n_blocks=5):
    """Relaxation time of each coordinate from an exponential fit to its autocorrelation.

    For an eigenfunction ``psi_i`` of a reversible transfer operator the autocorrelation is
    exactly ``exp(-t / t_i)``, so fitting it recovers the implied timescale ``t_i`` without an
    eigen-solve; this is how the latent space simulator paper compares MD with synthetic
    trajectories (its section 3.2).

    Parameters
    ----------
    X : array-like of shape (n_frames, n_features) or list of them
        Trajectory data; consecutive frames are ``dt`` apart.
    dt : float, default=1.0
        Time between frames. Synthetic trajectories from an MDN advance one lag time per
        step, so pass ``dt=lag_time`` to get their timescales in MD frames.
    max_lag : int, default=None
        Last lag (in frames of ``X``) included in the fit. ``None`` fits each coordinate up
        to where its autocorrelation first falls below ``exp(-2)``, the range where the
        slowest exponential dominates and noise is still small.
    n_blocks : int, default=5
        The standard error comes from fits to ``n_blocks`` contiguous blocks (each trajectory
        cut into ``n_blocks`` parts; block ``k`` holds the ``k``-th parts). 1 gives no error.

    Returns
    -------
    timescales : ndarray of shape (n_features,)
        In the units of ``dt``.
    std_errors : ndarray of shape (n_features,)
        Standard errors of the block estimates (``nan`` with ``n_blocks=1``).
    """
    trajs = as_float_trajectories(X)
    shortest_block = min(len(t) for t in trajs) // max(n_blocks, 1)

    def fit(data):
        longest = max(len(t) for t in data)
        limit = longest - 1 if max_lag is None else min(int(max_lag), longest - 1)
        acf = autocorrelation(data, limit)
        taus = []
        for j in range(acf.shape[1]):
            a = acf[:, j]
            if max_lag is None:
                below = np.flatnonzero(a < np.exp(-2))
                a = a[: max(below[0] + 1, 3)] if len(below) else a
            taus.append(_fit_exponential(a, dt))
        return np.array(taus)

    timescales = fit(trajs)
    if n_blocks <= 1:
        return timescales, np.full_like(timescales, np.nan)
    if shortest_block < 3:
        raise ValueError(
            f"Trajectories are too short to cut into n_blocks={n_blocks} blocks of 3+ frames."
        )
    blocks = [[np.array_split(t, n_blocks)[k] for t in trajs] for k in range(n_blocks)]
    _, sem = block_average([fit(b) for b in blocks])
    return timescales, sem


def block_average(values):
    """Mean and standard error of per-block estimates (stacked along the first axis).

    Returns
    -------
    mean, std_error : ndarray
        ``std_error = std(values, ddof=1) / sqrt(n_blocks)``.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) < 2:
        raise ValueError("block_average needs at least two blocks.")
    return values.mean(axis=0), values.std(axis=0, ddof=1) / np.sqrt(len(values))


def excursion_statistics(x, enter, leave, *, dt=1.0):
    """Entries into a rare state and the stays in it, with core-set boundaries.

    A trajectory of one coordinate ``x`` enters the state when it reaches the interval
    ``enter`` from outside and leaves it only when it reaches ``leave``; frames between the
    two intervals keep the last state visited (a core-set definition, which does not count
    recrossings of a single dividing line as transitions). A trajectory that starts in
    ``enter`` starts inside, and one that starts anywhere else starts outside; its first
    entry counts only after that. A stay still going at the end of a trajectory is
    censored: it counts as an entry but not in the mean stay.

    Parameters
    ----------
    x : array-like of shape (n_frames,) or list of such arrays
        The coordinate, for example the backbone dihedral phi in radians.
    enter, leave : tuple of float
        ``(low, high)`` intervals (closed); use ``-np.inf`` or ``np.inf`` for an open end.
    dt : float, default=1.0
        Time between frames; rates and stays are in its units.

    Returns
    -------
    stats : sklearn.utils.Bunch
        ``n_entries``, ``entries_per_time`` (entries over the total time), ``stays`` (the
        completed stays, array), ``mean_stay`` and ``mean_stay_std_error`` (``nan``
        without a completed stay, or with one for the error), ``n_censored``,
        ``inside_fraction`` (fraction of frames inside by this definition) and ``total_time``.

    Examples
    --------
    >>> import numpy as np
    >>> from sklss.metrics import excursion_statistics
    >>> phi = np.array([-2.0, 0.5, 0.1, -0.5, 1.0, -1.5, -2.0, 1.2, 1.3])
    >>> s = excursion_statistics(phi, enter=(0.3, 2.0), leave=(-np.inf, -1.0))
    >>> int(s.n_entries), s.stays.tolist(), int(s.n_censored)
    (2, [4.0], 1)
    """
    from sklearn.utils import Bunch

    lo_in, hi_in = (float(v) for v in enter)
    lo_out, hi_out = (float(v) for v in leave)
    if not (lo_in <= hi_in and lo_out <= hi_out):
        raise ValueError(f"enter and leave must be (low, high) intervals; got {enter}, {leave}.")
    if max(lo_in, lo_out) <= min(hi_in, hi_out):
        raise ValueError(f"The enter {enter} and leave {leave} intervals must not overlap.")
    if not dt > 0:
        raise ValueError(f"dt must be positive; got {dt!r}.")
    parts = list(x) if isinstance(x, (list, tuple)) else [x]
    stays, n_entries, n_censored, inside, total = [], 0, 0, 0, 0
    for i, part in enumerate(parts):
        traj = np.asarray(part, dtype=np.float64)
        where = f"trajectory {i} of x" if isinstance(x, (list, tuple)) else "x"
        if traj.ndim == 2 and traj.shape[1] == 1:
            traj = traj[:, 0]
        if traj.ndim != 1 or len(traj) == 0:
            raise ValueError(f"{where} must be one coordinate per frame; got shape {traj.shape}.")
        if not np.isfinite(traj).all():
            raise ValueError(
                f"{where} contains NaN or inf at frame {np.argmin(np.isfinite(traj))}."
            )
        # +1 in the enter interval, -1 in the leave interval; between them a frame keeps the
        # last boundary reached, and before any it is outside.
        mark = np.where((traj >= lo_in) & (traj <= hi_in), 1, 0)
        mark = np.where((traj >= lo_out) & (traj <= hi_out), -1, mark)
        hits = np.flatnonzero(mark)
        state = np.full(len(traj), -1)
        if len(hits):
            last = np.searchsorted(hits, np.arange(len(traj)), side="right") - 1
            state = np.where(last >= 0, mark[hits[np.maximum(last, 0)]], -1)
        starts = np.flatnonzero((state[1:] == 1) & (state[:-1] == -1)) + 1
        ends = np.flatnonzero((state[1:] == -1) & (state[:-1] == 1)) + 1
        if state[0] == 1:
            ends = ends[1:]  # the end of the stay it started in: no entry, no stay
        n_entries += len(starts)
        stays.extend((ends - starts[: len(ends)]) * float(dt))
        n_censored += len(starts) - len(ends)
        inside += int((state == 1).sum())
        total += len(traj)
    stays = np.asarray(stays, dtype=np.float64)
    total_time = total * float(dt)
    mean = float(stays.mean()) if len(stays) else float("nan")
    se = float(stays.std(ddof=1) / np.sqrt(len(stays))) if len(stays) > 1 else float("nan")
    return Bunch(
        n_entries=n_entries,
        entries_per_time=n_entries / total_time,
        stays=stays,
        mean_stay=mean,
        mean_stay_std_error=se,
        n_censored=n_censored,
        inside_fraction=inside / total,
        total_time=total_time,
    )


def free_energy_profile(x, bins=50, range=None, kT=1.0, weights=None):
    """Free energy ``F = -kT ln q`` along one coordinate, with ``q`` the histogram density.

    Empty bins get ``F = inf``. The profile is shifted so that its minimum is 0.

    Returns
    -------
    F : ndarray of shape (n_bins,)
        Free energy in the units of ``kT``.
    edges : ndarray of shape (n_bins + 1,)
    """
    x = np.concatenate([np.ravel(t) for t in x]) if is_trajectory_list(x) else np.ravel(x)
    if not np.isfinite(x).all():
        raise ValueError("x contains NaN or inf values.")
    q, edges = np.histogram(x, bins=bins, range=range, weights=weights, density=True)
    with np.errstate(divide="ignore"):
        F = -kT * np.log(q)
    F -= F[np.isfinite(F)].min()
    return F, edges


def free_energy_rmse(F_a, F_b, *, max_free_energy=None):
    """Root-mean-square difference of two free-energy profiles on the same bins.

    Missing and extra states cost: a bin populated in one profile and empty (``inf``) in the
    other counts, at a capped free energy. The steps are:

    1. ``F_b`` is shifted by the additive constant that best aligns it with ``F_a`` on the
       bins both populate below the cap (free energies are defined up to a constant).
    2. Both profiles are capped at ``cap = min(F_a) + max_free_energy``; an empty bin counts
       as lying at the cap. With ``max_free_energy=None`` the cap is the largest finite free
       energy of either profile, so an empty bin counts as at least as rare as the rarest
       populated one.
    3. The RMSE is taken over every bin where either profile lies below the cap.

    A model that never visits a basin the reference populates therefore pays about
    ``cap - F_a`` in each of that basin's bins, instead of nothing.

    Parameters
    ----------
    F_a, F_b : array-like of the same shape
        Profiles in kT (or any energy unit, consistently); ``inf`` marks an empty bin.
        ``F_a`` is the reference (MD).
    max_free_energy : float, default=None
        Height of the cap above the reference minimum, in the units of the profiles. Bins
        above it in both profiles do not count: sparsely visited tails are noisy.

    Returns
    -------
    rmse : float
    """
    F_a = np.asarray(F_a, dtype=np.float64)
    F_b = np.asarray(F_b, dtype=np.float64)
    if F_a.shape != F_b.shape:
        raise ValueError(f"Profiles must have the same shape; got {F_a.shape} and {F_b.shape}.")
    if np.isnan(F_a).any() or np.isnan(F_b).any():
        raise ValueError("Free-energy profiles contain NaN; empty bins must be inf.")
    finite_a, finite_b = np.isfinite(F_a), np.isfinite(F_b)
    if not finite_a.any() or not finite_b.any():
        raise ValueError("A free-energy profile has no populated bin.")
    F_a = F_a - F_a[finite_a].min()
    F_b = F_b - F_b[finite_b].min()
    if max_free_energy is not None:
        if not np.isfinite(max_free_energy) or max_free_energy <= 0:
            raise ValueError(f"max_free_energy must be positive; got {max_free_energy!r}.")
        cap = float(max_free_energy)
    else:
        cap = max(F_a[finite_a].max(), F_b[finite_b].max())
    shared = finite_a & finite_b & (F_a <= cap) & (F_b <= cap)
    if shared.any():
        F_b = F_b - np.mean(F_b[shared] - F_a[shared])
    Fa_capped = np.minimum(F_a, cap)
    Fb_capped = np.minimum(F_b, cap)
    counted = (F_a < cap) | (F_b < cap)
    if not counted.any():
        return 0.0
    diff = Fa_capped[counted] - Fb_capped[counted]
    return float(np.sqrt(np.mean(diff**2)))


def js_divergence(p, q, *, base=2):
    """Jensen-Shannon divergence between two histograms (normalised here).

    In bits by default (``base=2``), so it lies in ``[0, 1]``. The histograms may be of any
    shape (1-D or 2-D) but must match.
    """
    p = np.asarray(p, dtype=np.float64).ravel()
    q = np.asarray(q, dtype=np.float64).ravel()
    if p.shape != q.shape:
        raise ValueError(f"Histograms must have the same shape; got {p.shape} and {q.shape}.")
    if (p < 0).any() or (q < 0).any() or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("Histograms must be non-negative with a positive sum.")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a, b):
        nz = a > 0
        return np.sum(a[nz] * np.log(a[nz] / b[nz]))

    return float((0.5 * kl(p, m) + 0.5 * kl(q, m)) / np.log(base))


def _pooled_samples(x, name):
    """One array of shape (n_samples, d) from an array or a list of trajectories."""
    parts = list(x) if is_trajectory_list(x) else [x]
    arrays = []
    for i, part in enumerate(parts):
        a = np.asarray(part, dtype=np.float64)
        a = a.reshape(len(a), -1) if a.ndim != 1 else a[:, None]
        if a.ndim != 2:
            raise ValueError(f"{name}: part {i} must be 1-D or 2-D; got shape {np.shape(part)}.")
        arrays.append(a)
    widths = {a.shape[1] for a in arrays}
    if len(widths) != 1:
        raise ValueError(f"{name}: every part must have the same number of columns; got {widths}.")
    out = np.concatenate(arrays) if arrays else np.empty((0, 1))
    if len(out) == 0:
        raise ValueError(f"{name} holds no samples.")
    if not np.isfinite(out).all():
        row = int(np.argwhere(~np.isfinite(out))[0, 0])
        raise ValueError(f"{name} contains NaN or inf at sample {row}.")
    return out


def compare_distributions(
    x_ref, x_model, *, bins=50, range=None, kT=1.0, max_free_energy=None, kl_floor=0.5
):
    """Compare a model's samples with reference samples on one binning, missing mass included.

    Both sample sets are histogrammed on the same bins (by default spanning the reference's
    range). Samples of either set that fall outside the bins go to one extra *outside* cell,
    so a model that puts mass where the reference has none (beyond its range, or in its
    empty bins) is charged for it, as is a model that never visits part of the reference.

    Parameters
    ----------
    x_ref, x_model : array-like of shape (n_samples,) or (n_samples, d), or list of them
        Reference (for example held-out MD) and model samples of the same ``d`` coordinates
        (``d`` is 1 or 2 in practice: the histogram has ``bins ** d`` cells).
    bins : int or sequence of int, default=50
        Bins per coordinate.
    range : sequence of (low, high) pairs, default=None
        Bin range per coordinate; ``None`` uses the reference's minimum and maximum.
    kT : float, default=1.0
        Thermal energy: free energies and their RMSE are in these units.
    max_free_energy : float, default=None
        Cap of :func:`free_energy_rmse`, in units of ``kT`` above the reference minimum.
    kl_floor : float, default=0.5
        Counts below this floor are raised to it in the model histogram for the
        Kullback-Leibler divergence, so a missing state costs ``ln(n_ref_in_cell / floor)``
        instead of infinity. In counts of the model's samples.

    Returns
    -------
    scores : dict
        ``"free_energy_rmse"`` (kT, over the in-range bins, see :func:`free_energy_rmse`),
        ``"js_divergence"`` (bits, over bins and the outside cell), ``"kl_divergence"``
        (nats, KL(reference || model) with the floor), ``"missing_mass"`` (reference
        probability in cells the model never visits), ``"extra_mass"`` (model probability in
        cells the reference never visits, the outside cell included) and
        ``"outside_mass"`` (model probability outside the bins).
    """
    ref = _pooled_samples(x_ref, "x_ref")
    mod = _pooled_samples(x_model, "x_model")
    d = ref.shape[1]
    if mod.shape[1] != d:
        raise ValueError(
            f"x_ref has {d} coordinates but x_model has {mod.shape[1]}; they must match."
        )
    if range is None:
        lo, hi = ref.min(axis=0), ref.max(axis=0)
        hi = np.where(hi > lo, hi, lo + 1.0)
        range = list(zip(lo, hi))
    if not np.isfinite(kT) or kT <= 0:
        raise ValueError(f"kT must be positive; got {kT!r}.")
    edges = np.histogramdd(ref[:1], bins=bins, range=range)[1]

    def counts(samples):
        inside, _ = np.histogramdd(samples, bins=edges)
        inside = inside.ravel()
        # histogramdd counts a value equal to the last edge in the last bin.
        return np.append(inside, len(samples) - inside.sum())

    c_ref, c_mod = counts(ref), counts(mod)
    p_ref, p_mod = c_ref / c_ref.sum(), c_mod / c_mod.sum()
    with np.errstate(divide="ignore"):
        F_ref = -kT * np.log(p_ref[:-1])
        F_mod = -kT * np.log(p_mod[:-1])
    cap = None if max_free_energy is None else max_free_energy * kT
    if np.isfinite(F_mod).any():
        rmse = free_energy_rmse(F_ref, F_mod, max_free_energy=cap)
    else:
        rmse = np.inf  # every model sample lies outside the reference's bins
    floor = kl_floor / c_mod.sum()
    seen = p_ref > 0
    kl = float(np.sum(p_ref[seen] * np.log(p_ref[seen] / np.maximum(p_mod[seen], floor))))
    return {
        "free_energy_rmse": float(rmse),
        "js_divergence": js_divergence(c_ref, c_mod),
        "kl_divergence": kl,
        "missing_mass": float(p_ref[p_mod == 0].sum()),
        "extra_mass": float(p_mod[p_ref == 0].sum()),
        "outside_mass": float(p_mod[-1]),
    }


def _bonded_terms(bonds, n_atoms):
    """Bond angles (triples a-centre-b) and candidate stereocentres of a bond graph."""
    neighbours = _neighbour_lists(np.asarray(bonds, dtype=np.int64).reshape(-1, 2), n_atoms)
    triples = [
        (a, centre, b)
        for centre, near in enumerate(neighbours)
        for i, a in enumerate(near)
        for b in near[i + 1 :]
    ]
    centres = [(c, *near[:3]) for c, near in enumerate(neighbours) if len(near) >= 3]
    return np.array(triples, dtype=np.int64).reshape(-1, 3), centres


def geometry_fidelity(reference, generated, *, bonds=None, names=None, outlier_sd=5.0):
    """Bond lengths, bond angles and handedness of generated structures against reference MD.

    A decoder can match every average and still build molecules no force field would: bonds
    spread several times wider than thermal motion allows, angles bent away, a stereocentre
    mirrored. This compares, for every bond and every bond angle of the bond graph, the mean
    (error of the generated mean) and the spread (ratio of standard deviations, generated
    over reference); counts frames with any bond beyond ``outlier_sd`` reference standard
    deviations of its reference mean; and checks each stereocentre's handedness.

    A stereocentre is an atom with at least three bonded neighbours whose signed volume (of
    its first three neighbours, by index) keeps one sign in at least 99 % of the reference
    frames, such as the C-alpha of an amino acid; planar centres (a peptide carbon) flip sign
    with thermal motion and are not stereocentres. A generated frame keeps the chirality when
    every stereocentre has its reference sign.

    Parameters
    ----------
    reference, generated : mdtraj.Trajectory, list of them, or array-like of shape
        (n_frames, n_atoms, 3) or a list of them
        Reference (MD) and generated structures of the same atoms, in the same order.
    bonds : array-like of shape (n_bonds, 2), default=None
        Bonded atom pairs; ``None`` takes the bonds of the reference's topology.
    names : list of str, default=None
        Atom labels for the row names; ``None`` uses the topology's (``ALA2-CA``) or
        ``atom3``.
    outlier_sd : float, default=5.0
        Distance from the reference mean, in reference standard deviations, beyond which a
        bond length counts as an outlier.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``bond_names``, ``bond_mean_error`` (same length unit as the coordinates),
        ``bond_spread_ratio``, ``angle_names``, ``angle_mean_error`` (degrees),
        ``angle_spread_ratio``; ``bond_outlier_fraction`` (generated frames with a bond
        beyond ``outlier_sd``) and ``bond_outlier_fraction_reference`` (the same for the
        reference itself); ``stereocentres`` (atom indices), ``chirality_kept`` (fraction of
        generated frames with every stereocentre's reference sign; 1.0 without
        stereocentres) and ``reference_md``: a dict of the reference means and standard
        deviations of bonds and angles.

    Examples
    --------
    >>> import numpy as np
    >>> from sklss.metrics import geometry_fidelity
    >>> rng = np.random.default_rng(0)
    >>> base = np.array([[0.0, 0, 0], [0.15, 0, 0], [0.2, 0.14, 0], [0.1, -0.1, 0.12]])
    >>> md = base + 0.004 * rng.standard_normal((2000, 4, 3))
    >>> blurred = base + 0.012 * rng.standard_normal((2000, 4, 3))
    >>> g = geometry_fidelity(md, blurred, bonds=[(0, 1), (1, 2), (1, 3)])
    >>> bool(np.all(g.bond_spread_ratio > 2.5)), g.stereocentres
    (True, [1])
    """
    from sklearn.utils import Bunch

    from ._zmatrix import angles as _angles
    from ._zmatrix import chirality_sign

    ref_xyz, topology = _structure_frames(reference, "reference")
    gen_xyz, _ = _structure_frames(generated, "generated")
    if gen_xyz.shape[1] != ref_xyz.shape[1]:
        raise ValueError(
            f"generated has {gen_xyz.shape[1]} atoms per frame; reference has {ref_xyz.shape[1]}."
        )
    if bonds is None:
        if topology is None:
            raise ValueError("bonds are needed when reference is an array, not a trajectory.")
        bonds = [(a.index, b.index) for a, b in topology.bonds]
    bonds = np.asarray(bonds, dtype=np.int64).reshape(-1, 2)
    n_atoms = ref_xyz.shape[1]
    if bonds.size == 0 or bonds.min() < 0 or bonds.max() >= n_atoms:
        raise ValueError(f"bonds must be pairs of atom indices in [0, {n_atoms}); got {bonds}.")
    if names is None:
        names = (
            [f"{a.residue.name}{a.residue.resSeq}-{a.name}" for a in topology.atoms]
            if topology is not None
            else [f"atom{i}" for i in range(n_atoms)]
        )
    triples, centres = _bonded_terms(bonds, n_atoms)

    def lengths(xyz):
        return np.linalg.norm(xyz[:, bonds[:, 0]] - xyz[:, bonds[:, 1]], axis=-1)

    b_ref, b_gen = lengths(ref_xyz), lengths(gen_xyz)
    a_ref = np.degrees(_angles(ref_xyz, triples)) if len(triples) else np.zeros((len(ref_xyz), 0))
    a_gen = np.degrees(_angles(gen_xyz, triples)) if len(triples) else np.zeros((len(gen_xyz), 0))
    b_sd = b_ref.std(0)
    if not (b_sd > 0).all():
        raise ValueError("A reference bond length does not vary; spreads cannot be compared.")

    def outliers(b):
        return float(np.mean((np.abs(b - b_ref.mean(0)) / b_sd > outlier_sd).any(axis=1)))

    stereo, kept = [], np.ones(len(gen_xyz), dtype=bool)
    for c, a, b, d in centres:
        sign = chirality_sign(ref_xyz, c, a, b, d)
        majority = 1.0 if np.sum(sign) >= 0 else -1.0
        if np.mean(sign == majority) >= 0.99:
            stereo.append(int(c))
            kept &= chirality_sign(gen_xyz, c, a, b, d) == majority
    return Bunch(
        bond_names=[f"{names[a]} {names[b]}" for a, b in bonds],
        bond_mean_error=b_gen.mean(0) - b_ref.mean(0),
        bond_spread_ratio=b_gen.std(0) / b_sd,
        angle_names=[f"{names[a]} {names[c]} {names[b]}" for a, c, b in triples],
        angle_mean_error=a_gen.mean(0) - a_ref.mean(0),
        angle_spread_ratio=a_gen.std(0) / a_ref.std(0),
        bond_outlier_fraction=outliers(b_gen),
        bond_outlier_fraction_reference=outliers(b_ref),
        stereocentres=stereo,
        chirality_kept=float(kept.mean()),
        reference_md={
            "bond_mean": b_ref.mean(0),
            "bond_sd": b_sd,
            "angle_mean": a_ref.mean(0),
            "angle_sd": a_ref.std(0),
        },
    )


def _structure_frames(x, name):
    """Frames ``(n, n_atoms, 3)`` and the topology (or None) of trajectories or arrays."""
    parts = list(x) if isinstance(x, (list, tuple)) else [x]
    if not parts:
        raise ValueError(f"{name} holds no trajectory.")
    topology, frames = None, []
    for i, part in enumerate(parts):
        if hasattr(part, "xyz") and hasattr(part, "topology"):
            topology = topology or part.topology
            part = part.xyz
        arr = np.asarray(part, dtype=np.float64)
        if arr.ndim != 3 or arr.shape[2] != 3:
            raise ValueError(
                f"{name}: trajectory {i} must have shape (n_frames, n_atoms, 3); got {arr.shape}."
            )
        if not np.isfinite(arr).all():
            raise ValueError(f"{name}: trajectory {i} contains NaN or inf coordinates.")
        frames.append(arr)
    if len({f.shape[1] for f in frames}) > 1:
        raise ValueError(f"{name}: trajectories have different numbers of atoms.")
    return np.concatenate(frames), topology
