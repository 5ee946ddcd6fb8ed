"""Covariances of time-lagged pairs and their regularised inverse square roots (float64).

Shared by the SRV encoder (its final VAC step) and ``sklss.metrics``. Everything here runs in
float64 numpy. Eigenvalues of a covariance below ``epsilon`` are cut off: the directions they
span carry no variance worth whitening and would amplify noise.
"""

import numpy as np


def lagged_covariances(X0, Xt, *, reversible=False):
    """Mean-free covariances ``C00, C0t, Ctt`` of lagged pairs.

    With ``reversible=True`` the estimate is symmetrised over both directions of time: both
    halves share one mean, ``C00 = Ctt = (X0'X0 + Xt'Xt) / 2n`` and
    ``C0t = (X0'Xt + Xt'X0) / 2n``, as for a process in detailed balance.

    Returns
    -------
    C00, C0t, Ctt : ndarray of shape (n_features, n_features)
    mean0, meant : ndarray of shape (n_features,)
    """
    X0 = np.asarray(X0, dtype=np.float64)
    Xt = np.asarray(Xt, dtype=np.float64)
    n = len(X0)
    if reversible:
        mean = 0.5 * (X0.mean(axis=0) + Xt.mean(axis=0))
        A, B = X0 - mean, Xt - mean
        C00 = (A.T @ A + B.T @ B) / (2 * n)
        C0t = (A.T @ B + B.T @ A) / (2 * n)
        return C00, C0t, C00, mean, mean
    mean0, meant = X0.mean(axis=0), Xt.mean(axis=0)
    A, B = X0 - mean0, Xt - meant
    return A.T @ A / n, A.T @ B / n, B.T @ B / n, mean0, meant


def inv_sqrt(C, epsilon=1e-6):
    """``C^{-1/2}`` restricted to eigenvalues above ``epsilon`` (truncation).

    Returns ``W`` of shape (n, r) with ``W.T @ C @ W = I_r``, where ``r`` is the number of
    eigenvalues above ``epsilon`` (the numerical rank).
    """
    s, V = np.linalg.eigh(C)
    keep = s > epsilon
    return V[:, keep] / np.sqrt(s[keep])


def koopman_matrix(C00, C0t, Ctt, epsilon=1e-6):
    """Whitened cross-covariance ``K = C00^{-1/2} C0t Ctt^{-1/2}`` and the two whitenings."""
    W0 = inv_sqrt(C00, epsilon)
    Wt = inv_sqrt(Ctt, epsilon)
    return W0.T @ C0t @ Wt, W0, Wt


def vamp2_from_covariances(C00, C0t, Ctt, epsilon=1e-6, n_components=None):
    """VAMP-2 score ``1 + sum_i s_i^2`` over the leading ``n_components`` singular values.

    The constant singular function (singular value 1) is counted by the leading ``1 +``, as in
    deeptime and PyEMMA.
    """
    K, _, _ = koopman_matrix(C00, C0t, Ctt, epsilon)
    s = np.linalg.svd(K, compute_uv=False)
    if n_components is not None:
        s = s[:n_components]
    return 1.0 + float(np.sum(s**2))
