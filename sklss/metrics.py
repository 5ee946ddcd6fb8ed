"""Scores for latent space simulators: VAMP-2, implied timescales, free energies, divergences.

Time is counted in frames unless a ``dt`` is given. Free energies are in units of kT.
"""

import numpy as np

from ._covariance import koopman_matrix, lagged_covariances, vamp2_from_covariances
from ._validation import check_lag_time, is_trajectory_list, lagged_pairs

__all__ = [
    "free_energy_profile",
    "free_energy_rmse",
    "js_divergence",
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


def implied_timescales(X, lag_time, *, n_components=None, reversible=True, dt=1.0, epsilon=1e-6):
    """Implied timescales of the linear VAC (TICA) model on the coordinates ``X``.

    Solves the generalised eigenproblem ``C0t v = lambda C00 v`` of the (by default
    reversibly symmetrised) covariances and returns ``-lag_time * dt / ln|lambda_i|`` in
    descending order. For coordinates that span the slow eigenfunctions (for example an
    SRV's output) these are the system's relaxation timescales.

    Returns
    -------
    timescales : ndarray of shape (n_components,)
        In frames, or in the units of ``dt``.
    """
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
