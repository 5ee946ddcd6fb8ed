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


def vac_decomposition(C00, C0t, Ctt=None, *, reversible=True, epsilon=1e-6):
    """The linear VAC (or VAMP) solution: values and coefficients, largest first.

    The one solver of the package. ``C00`` is whitened by ``W0 = inv_sqrt(C00, epsilon)``,
    which drops directions with covariance eigenvalues at or below ``epsilon``. With
    ``reversible``, the eigenvectors ``u`` of the symmetric ``K = W0.T @ C0t @ W0`` give the
    eigenfunctions ``W0 @ u`` of ``C0t v = lambda C00 v``. Otherwise the left singular
    vectors of ``W0.T @ C0t @ Wt`` (``Wt`` whitens ``Ctt``) give VAMP's left singular
    functions, with the singular values.

    Returns
    -------
    values : ndarray of shape (rank,)
        Eigenvalues (reversible) or singular values, in descending order.
    coef : ndarray of shape (n_features, rank)
        Coefficients of the eigenfunctions (or singular functions) on the mean-free inputs;
        ``rank`` is the number of directions kept by the whitening.
    """
    if reversible:
        W0 = inv_sqrt(C00, epsilon)
        K = W0.T @ C0t @ W0
        lam, U = np.linalg.eigh(0.5 * (K + K.T))
        order = np.argsort(lam)[::-1]
        return lam[order], W0 @ U[:, order]
    K, W0, _ = koopman_matrix(C00, C0t, C00 if Ctt is None else Ctt, epsilon)
    U, s, _ = np.linalg.svd(K, full_matrices=False)
    return s, W0 @ U


def vac_eigenvalues(C00, C0t, *, reversible=True, epsilon=1e-6):
    """Eigenvalues of the transfer operator estimated from ``C0t v = lambda C00 v``.

    ``C00`` is whitened by the truncated ``W0 = inv_sqrt(C00, epsilon)``, and the eigenvalues
    of ``K = W0.T @ C0t @ W0`` are returned. When no direction is cut off, ``W0`` is square
    with ``W0 @ W0.T = C00^{-1}``, so ``K = W0^{-1} (C00^{-1} C0t) W0`` is similar to
    ``C00^{-1} C0t`` and has its eigenvalues; with a cut-off, the same holds on the retained
    subspace. No inverse of a badly conditioned ``C00`` is formed.

    With ``reversible=True`` the (symmetrised) ``C0t`` is symmetric and so is ``K``: the
    eigenvalues are real and sorted in descending order. Otherwise ``K`` is a general real
    matrix whose eigenvalues may come in complex conjugate pairs; they are sorted by modulus
    in descending order, except that real eigenvalues at or below zero (which have no
    relaxation timescale) come last, by value. These are eigenvalues, not the singular values
    of ``C00^{-1/2} C0t Ctt^{-1/2}`` that VAMP uses: for a non-normal propagator the two
    differ.

    Returns
    -------
    eigenvalues : ndarray of shape (rank,)
        Real, or complex when ``reversible=False`` and some eigenvalues are complex.
    """
    if reversible:
        return vac_decomposition(C00, C0t, epsilon=epsilon)[0]
    W0 = inv_sqrt(C00, epsilon)
    lam = np.linalg.eigvals(W0.T @ C0t @ W0)
    on_real_axis = np.imag(lam) == 0
    nonpositive = on_real_axis & (np.real(lam) <= 0)
    key = np.where(nonpositive, np.real(lam) - 1.0, np.abs(lam))
    lam = lam[np.argsort(-key, kind="stable")]
    return lam.real if np.all(np.imag(lam) == 0) else lam


def lagged_moments(X0, Xt):
    """Sums over lagged pairs from which their covariances can be assembled.

    Sums add up over disjoint sets of pairs, so the covariances of any union of sets, or of a
    bootstrap resample of them (a weighted sum), follow from these without revisiting the
    frames: see :func:`covariances_from_moments`.

    Returns
    -------
    moments : dict
        ``"n"`` (number of pairs), ``"s0"``, ``"st"`` (sums of ``x_t`` and ``x_{t+tau}``) and
        ``"s00"``, ``"s0t"``, ``"stt"`` (sums of their outer products), all float64.
    """
    X0 = np.asarray(X0, dtype=np.float64)
    Xt = np.asarray(Xt, dtype=np.float64)
    return {
        "n": float(len(X0)),
        "s0": X0.sum(axis=0),
        "st": Xt.sum(axis=0),
        "s00": X0.T @ X0,
        "s0t": X0.T @ Xt,
        "stt": Xt.T @ Xt,
    }


def covariances_from_moments(moments, *, reversible=False):
    """Mean-free ``C00, C0t, Ctt`` from the sums of :func:`lagged_moments`.

    Equal to what :func:`lagged_covariances` computes from the pairs themselves (up to
    rounding), including the shared mean and the symmetrisation with ``reversible=True``.
    """
    n = moments["n"]
    if reversible:
        mean = (moments["s0"] + moments["st"]) / (2 * n)
        mm = np.outer(mean, mean)
        C00 = (moments["s00"] + moments["stt"]) / (2 * n) - mm
        C0t = (moments["s0t"] + moments["s0t"].T) / (2 * n) - mm
        return C00, C0t, C00
    mean0, meant = moments["s0"] / n, moments["st"] / n
    C00 = moments["s00"] / n - np.outer(mean0, mean0)
    C0t = moments["s0t"] / n - np.outer(mean0, meant)
    Ctt = moments["stt"] / n - np.outer(meant, meant)
    return C00, C0t, Ctt
