"""Scores for latent space simulators: VAMP-2, implied timescales, free energies, divergences.

Time is counted in frames unless a ``dt`` is given. Free energies are in units of kT.
"""

import numpy as np

from ._covariance import koopman_matrix, lagged_covariances, vamp2_from_covariances
from ._validation import check_lag_time, is_trajectory_list, lagged_pairs

__all__ = [
    "autocorrelation",
    "autocorrelation_timescales",
    "block_average",
    "free_energy_profile",
    "free_energy_rmse",
    "js_divergence",
    "markov_timescales",
    "timescales_from_eigenvalues",
    "implied_timescales",
    "vamp2_score",
]


def _as_trajectories(X, name="X"):
    trajs = list(X) if is_trajectory_list(X) else [X]
    out = []
    for i, t in enumerate(trajs):
        t = np.asarray(t, dtype=np.float64)
        if t.ndim == 1:
            t = t[:, None]
        if t.ndim != 2:
            raise ValueError(f"{name}: trajectory {i} must be 2-D, got shape {t.shape}.")
        if not np.isfinite(t).all():
            frame = int(np.argwhere(~np.isfinite(t))[0, 0])
            raise ValueError(f"{name} contains NaN or inf at trajectory {i}, frame {frame}.")
        out.append(t)
    return out


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
    X0, Xt = lagged_pairs(_as_trajectories(X), check_lag_time(lag_time))
    C00, C0t, Ctt, _, _ = lagged_covariances(X0, Xt, reversible=reversible)
    return vamp2_from_covariances(C00, C0t, Ctt, epsilon, n_components)


def timescales_from_eigenvalues(eigenvalues, lag_time, dt=1.0):
    """Implied timescales ``t_i = -lag_time * dt / ln|lambda_i|``.

    Eigenvalues at or above 1 give ``inf``; an eigenvalue of 0 gives 0.
    """
    lam = np.abs(np.asarray(eigenvalues, dtype=np.float64))
    with np.errstate(divide="ignore"):
        t = -lag_time * dt / np.log(np.clip(lam, 0, 1))
    t[lam >= 1] = np.inf
    t[lam == 0] = 0.0
    return t


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
):
    """Implied timescales of the coordinates ``X``.

    ``method="vac"`` solves the generalised eigenproblem ``C0t v = lambda C00 v`` of the (by
    default reversibly symmetrised) covariances at ``lag_time`` and returns
    ``-lag_time * dt / ln|lambda_i|`` in descending order: for coordinates that span the slow
    eigenfunctions (for example an SRV's output) these are the relaxation timescales.

    ``method="autocorrelation"`` fits ``exp(-t / t_i)`` to the autocorrelation of each
    coordinate separately (see :func:`autocorrelation_timescales`), as the latent space
    simulator paper does for the columns of latent trajectories; ``lag_time`` is ignored.

    Returns
    -------
    timescales : ndarray of shape (n_components,)
        In frames, or in the units of ``dt``.
    """
    if method == "autocorrelation":
        ts, _ = autocorrelation_timescales(X, dt=dt, max_lag=max_lag, n_blocks=1)
        return ts if n_components is None else ts[:n_components]
    if method != "vac":
        raise ValueError(f"method must be 'vac' or 'autocorrelation'; got {method!r}.")
    lag_time = check_lag_time(lag_time)
    X0, Xt = lagged_pairs(_as_trajectories(X), lag_time)
    C00, C0t, Ctt, _, _ = lagged_covariances(X0, Xt, reversible=reversible)
    K, _, _ = koopman_matrix(C00, C0t, Ctt, epsilon)
    if reversible:
        lam = np.linalg.eigvalsh(K)[::-1]
    else:
        lam = np.sort(np.abs(np.linalg.eigvals(K)))[::-1]
    if n_components is not None:
        lam = lam[:n_components]
    return timescales_from_eigenvalues(lam, lag_time, dt)


def autocorrelation(X, max_lag):
    """Normalised autocorrelation of each coordinate at lags ``0..max_lag`` frames.

    The mean and variance are pooled over all trajectories, and products are formed within
    each trajectory only, so ``C(0) = 1`` and ``C(k)`` is the correlation of ``x_t`` with
    ``x_{t+k}``.

    Returns
    -------
    acf : ndarray of shape (max_lag + 1, n_features)
    """
    trajs = _as_trajectories(X)
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
    trajs = _as_trajectories(X)
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


def markov_timescales(x, edges, lag_time, *, n_components=1, dt=1.0):
    """Implied timescales of a reversible Markov state model on the bins ``edges`` of ``x``.

    Each frame of the one-dimensional coordinate ``x`` (an array, or a list of trajectories)
    is assigned to its bin (values outside go to the end bins), and the linear VAC of the
    bin indicators at ``lag_time`` frames is solved: this is a reversible Markov state model.

    Returns
    -------
    timescales : ndarray of shape (n_components,)
        In frames of ``x``, or in the units of ``dt``.
    """
    edges = np.asarray(edges, dtype=np.float64)
    trajs = x if is_trajectory_list(x) else [x]
    onehot = []
    for t in trajs:
        states = np.clip(np.digitize(np.ravel(t), edges) - 1, 0, len(edges) - 2)
        onehot.append(np.eye(len(edges) - 1)[states])
    return implied_timescales(onehot, lag_time, n_components=n_components, dt=dt)


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

    Only bins populated in both profiles (finite ``F``) count. Free energies are defined up to
    an additive constant, so ``F_b`` is shifted by the constant that minimises the RMSE (the
    mean difference over the shared bins) before comparing.

    Parameters
    ----------
    F_a, F_b : array-like of the same shape
        Profiles in kT; ``inf`` marks an empty bin.
    max_free_energy : float, default=None
        If given, only bins where ``F_a`` (the reference) is at most this, relative to its
        minimum, count.
    """
    F_a = np.asarray(F_a, dtype=np.float64)
    F_b = np.asarray(F_b, dtype=np.float64)
    if F_a.shape != F_b.shape:
        raise ValueError(f"Profiles must have the same shape; got {F_a.shape} and {F_b.shape}.")
    both = np.isfinite(F_a) & np.isfinite(F_b)
    if max_free_energy is not None:
        both &= F_a - F_a[np.isfinite(F_a)].min() <= max_free_energy
    if not both.any():
        raise ValueError("The two profiles share no populated bin.")
    diff = F_a[both] - F_b[both]
    return float(np.sqrt(np.mean((diff - diff.mean()) ** 2)))


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
