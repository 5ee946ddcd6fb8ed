"""A two-dimensional three-well system seen only through a fixed nonlinear map to many features."""

import math

import numpy as np
from scipy import sparse
from scipy.sparse.linalg import eigsh
from sklearn.utils import Bunch

from .._validation import is_trajectory_list
from ._base import (
    check_int,
    check_physics,
    check_positive,
    check_rng,
    check_start,
    check_stiffness,
    observed_through,
    sample_cells,
)

__all__ = [
    "hidden_wells",
    "hidden_wells_features",
    "hidden_wells_potential",
    "hidden_wells_reference",
]

# Gaussian wells: centres, depths (in the energy units of kT) and common width.
_CENTRES = np.array([[-1.3, 0.0], [1.1, -0.6], [0.6, 1.1]])
_DEPTHS = np.array([6.0, 5.0, 5.0])
_WIDTH = 0.5
# Quartic confinement 0.2 (x^4 + y^4).
_CONFINE = 0.2
# The map's latent origin, near the middle of the three wells.
_ORIGIN = np.array([0.1, 0.2])
# Range of the sinusoids' angular frequencies, in radians per unit length.
_FREQ = (2.5, 5.0)

DEFAULT_DT = 2e-3
DEFAULT_STRIDE = 10
_MIN_VECTOR_WALKERS = 32
_CHUNK = 1 << 17


def hidden_wells_potential(Z):
    """The three-well potential ``V(x, y)`` of :func:`hidden_wells`.

    ``V = 0.2 (x^4 + y^4) - sum_k A_k exp(-|r - c_k|^2 / (2 * 0.5^2))`` with wells at
    ``c = (-1.3, 0), (1.1, -0.6), (0.6, 1.1)`` of depths ``A = 6, 5, 5``.

    Parameters
    ----------
    Z : array-like of shape (..., 2)
        Latent positions ``(x, y)``.

    Returns
    -------
    V : ndarray of shape Z.shape[:-1]
        Potential energy, in the units of ``kT``.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.shape[-1:] != (2,):
        raise ValueError(f"Z must have a last axis of length 2 (x, y); got shape {Z.shape}.")
    x, y = Z[..., 0], Z[..., 1]
    v = _CONFINE * (x**4 + y**4)
    for (cx, cy), depth in zip(_CENTRES, _DEPTHS):
        v = v - depth * np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / (2 * _WIDTH**2))
    return v


def _hessian_norm(x, y):
    """Largest absolute eigenvalue of the Hessian of ``V`` at the points ``(x, y)``."""
    vxx = 12 * _CONFINE * x**2
    vyy = 12 * _CONFINE * y**2
    vxy = np.zeros_like(x)
    s2 = _WIDTH**2
    for (cx, cy), depth in zip(_CENTRES, _DEPTHS):
        dx, dy = x - cx, y - cy
        g = depth / s2 * np.exp(-(dx**2 + dy**2) / (2 * s2))
        vxx = vxx + g * (1 - dx**2 / s2)
        vyy = vyy + g * (1 - dy**2 / s2)
        vxy = vxy - g * dx * dy / s2
    mean, diff = 0.5 * (vxx + vyy), np.sqrt(0.25 * (vxx - vyy) ** 2 + vxy**2)
    return np.maximum(np.abs(mean + diff), np.abs(mean - diff))


def _half_width(kT, cutoff=20.0):
    """Half-width of a square box outside which ``V - min V > cutoff * kT``."""
    v_min = hidden_wells_potential(_CENTRES).min() - 0.1  # a lower bound on min V
    return float(math.ceil(((cutoff * kT - v_min) / _CONFINE) ** 0.25 * 20) / 20)


def _check_step(dt, kT, diffusion):
    half = _half_width(kT, cutoff=15.0)
    g = np.linspace(-half, half, 301)
    X, Y = np.meshgrid(g, g, indexing="ij")
    visited = hidden_wells_potential(np.stack([X, Y], -1)) < -6.0 + 15.0 * kT
    max_curvature = _hessian_norm(X[visited], Y[visited]).max()
    check_stiffness(dt, kT, diffusion, max_curvature, "max|Hess V|")


def _run_scalar(z0, n_frames, stride, a, sigma, rng):
    """One chain, stepped by a plain Python loop on pre-drawn noise (about 1.5 us a step)."""
    exp = math.exp
    (c1x, c1y), (c2x, c2y), (c3x, c3y) = _CENTRES.tolist()
    w1, w2, w3 = (a * depth / _WIDTH**2 for depth in _DEPTHS.tolist())
    q = -1.0 / (2.0 * _WIDTH**2)
    k = 4.0 * _CONFINE * a

    out = np.empty((n_frames, 2))
    frames_per_chunk = max(1, _CHUNK // stride)
    x, y, done = float(z0[0]), float(z0[1]), 0
    while done < n_frames:
        m = min(frames_per_chunk, n_frames - done)
        noise = rng.standard_normal((m * stride, 2))
        noise *= sigma
        noise_x, noise_y = noise[:, 0].tolist(), noise[:, 1].tolist()
        path_x, path_y = [0.0] * (m * stride), [0.0] * (m * stride)
        for i in range(m * stride):
            path_x[i] = x
            path_y[i] = y
            d1x, d1y = x - c1x, y - c1y
            d2x, d2y = x - c2x, y - c2y
            d3x, d3y = x - c3x, y - c3y
            g1 = w1 * exp(q * (d1x * d1x + d1y * d1y))
            g2 = w2 * exp(q * (d2x * d2x + d2y * d2y))
            g3 = w3 * exp(q * (d3x * d3x + d3y * d3y))
            x, y = (
                x - k * x * x * x - g1 * d1x - g2 * d2x - g3 * d3x + noise_x[i],
                y - k * y * y * y - g1 * d1y - g2 * d2y - g3 * d3y + noise_y[i],
            )
        out[done : done + m, 0] = path_x[::stride]
        out[done : done + m, 1] = path_y[::stride]
        done += m
    return out


def _run_walkers(z0, n_frames, stride, a, sigma, rng):
    """Independent walkers advanced together with numpy; returns (n_frames, n_walkers, 2)."""
    n_walkers = len(z0)
    out = np.empty((n_frames, n_walkers, 2))
    x, y = z0[:, 0].copy(), z0[:, 1].copy()
    # One row per well, one column per walker.
    cx, cy = _CENTRES[:, :1], _CENTRES[:, 1:]
    w = (a * _DEPTHS / _WIDTH**2)[:, None]
    q = -1.0 / (2.0 * _WIDTH**2)
    k = 4.0 * _CONFINE * a
    frames_per_chunk = max(1, _CHUNK // (2 * stride * n_walkers))
    done = 0
    while done < n_frames:
        m = min(frames_per_chunk, n_frames - done)
        noise = rng.standard_normal((m * stride, 2, n_walkers))
        noise *= sigma
        for t in range(m * stride):
            if t % stride == 0:
                out[done + t // stride, :, 0] = x
                out[done + t // stride, :, 1] = y
            dx = x - cx
            dy = y - cy
            g = w * np.exp(q * (dx * dx + dy * dy))
            x = x - k * x * x * x - (g * dx).sum(axis=0) + noise[t, 0]
            y = y - k * y * y * y - (g * dy).sum(axis=0) + noise[t, 1]
        done += m
    return out


def _sample_stationary(size, kT, rng, n_grid=400):
    """Points drawn from ``exp(-V/kT)``: a fine-grid cell by weight, then uniform in it."""
    half = _half_width(kT)
    edges = np.linspace(-half, half, n_grid + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    X, Y = np.meshgrid(centres, centres, indexing="ij")
    u = hidden_wells_potential(np.stack([X, Y], -1)) / kT
    cells = sample_cells(np.exp(-(u - u.min())).ravel(), size, rng)
    h = edges[1] - edges[0]
    ix, iy = np.unravel_index(cells, (n_grid, n_grid))
    return np.stack([edges[ix], edges[iy]], axis=1) + h * rng.random((size, 2))


def _random_map(n_features, map_seed):
    """Parameters of the fixed nonlinear map, drawn from their own generator."""
    rng = np.random.default_rng(map_seed)
    # Swirl: rotate each point by an angle that grows with its squared distance from origin.
    twist = rng.uniform(0.5, 0.9) * rng.choice([-1.0, 1.0])
    # Two monotone coordinates tanh(A z): injective because A is invertible.
    angle = rng.uniform(0, 2 * np.pi)
    rot = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    A = rot * rng.uniform(0.35, 0.6, size=2)[None, :]
    # Ridge sinusoids sin(w . z + phase) with random directions and frequencies.
    n_sin = n_features - 2
    direction = rng.uniform(0, 2 * np.pi, size=n_sin)
    freq = rng.uniform(*_FREQ, size=n_sin)
    W = np.stack([np.cos(direction), np.sin(direction)], axis=1) * freq[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=n_sin)
    # Random orthogonal mixing of all features (Haar measure via QR with sign fix).
    Q, R = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    Q *= np.sign(np.diag(R))[None, :]
    return twist, A, W, phase, Q


def hidden_wells_features(Z, *, n_features=20, map_seed=0):
    """The fixed nonlinear map from latent positions to features used by :func:`hidden_wells`.

    Parameters
    ----------
    Z : array-like of shape (n_frames, 2) or list of them
        Latent positions ``(x, y)``.
    n_features : int, default=20
        Number of features, at least 2.
    map_seed : int, default=0
        Seed of the map's random parameters.

    Returns
    -------
    F : ndarray of shape (n_frames, n_features) or list of them
        Noise-free features, in the same form as ``Z``.

    Notes
    -----
    With ``z = (x, y) - (0.1, 0.2)``, the map builds ``2 + (n_features - 2)`` functions

    * ``tanh(A s(z))``, where ``s`` rotates ``z`` by an angle proportional to ``|z|^2`` (a
      bijection of the plane) and ``A`` is a random invertible 2 x 2 matrix, and
    * ``sin(w_k . z + phi_k)``, ridge sinusoids with random directions, frequencies
      between 2.5 and 5 radians per unit length, and phases,

    and mixes them with a random orthogonal matrix. The first pair alone determines ``z``,
    so the whole map is injective; the swirl and the sinusoids make the metastable states
    nonlinear in the features.
    """
    if is_trajectory_list(Z):
        return [hidden_wells_features(z, n_features=n_features, map_seed=map_seed) for z in Z]
    n_features = check_int("n_features", n_features, low=2)
    map_seed = check_int("map_seed", map_seed, low=0)
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 2:
        raise ValueError(f"Z must have shape (n_frames, 2); got shape {Z.shape}.")
    twist, A, W, phase, Q = _random_map(n_features, map_seed)
    z = Z - _ORIGIN
    angle = twist * np.sum(z**2, axis=1)
    c, s = np.cos(angle), np.sin(angle)
    swirled = np.stack([c * z[:, 0] - s * z[:, 1], s * z[:, 0] + c * z[:, 1]], axis=1)
    raw = np.concatenate([np.tanh(swirled @ A.T), np.sin(z @ W.T + phase)], axis=1)
    return raw @ Q.T


def hidden_wells(
    n_frames=100_000,
    *,
    n_trajectories=1,
    n_features=20,
    noise=0.05,
    stride=DEFAULT_STRIDE,
    dt=DEFAULT_DT,
    kT=1.0,
    diffusion=1.0,
    map_seed=0,
    x0=None,
    random_state=None,
    return_latent=False,
):
    """Brownian dynamics in a 2-D three-well potential, observed through nonlinear features.

    The latent position ``r = (x, y)`` follows ``dr = -(D/kT) grad V dt + sqrt(2 D) dW`` in
    :func:`hidden_wells_potential` (three Gaussian wells in a quartic box), integrated by
    Euler-Maruyama. Each saved frame is pushed through the fixed injective nonlinear map
    :func:`hidden_wells_features` and Gaussian noise is added. The two slow processes
    (exchange of the deepest well with the other two, and exchange between those two) are
    nonlinear functions of the features, so linear methods such as TICA underestimate their
    timescales while a nonlinear encoder can recover them.

    Parameters
    ----------
    n_frames : int, default=100_000
        Frames per trajectory. Frame ``i`` is the state after ``i * stride`` steps; frame 0
        is the starting point.
    n_trajectories : int, default=1
        Number of independent trajectories.
    n_features : int, default=20
        Number of features, at least 2.
    noise : float, default=0.05
        Standard deviation of the white Gaussian noise added to every feature. The noise-free
        features have standard deviations of about 0.4-0.9.
    stride : int, default=10
        Integration steps per frame.
    dt : float, default=2e-3
        Integration time step, in reduced time units.
    kT : float, default=1.0
        Thermal energy, in the energy units of the potential.
    diffusion : float, default=1.0
        Diffusivity ``D``.
    map_seed : int, default=0
        Seed of the feature map. Keep it fixed so that train and test data share the map;
        ``random_state`` does not affect it.
    x0 : array-like of shape (2,) or (n_trajectories, 2), default=None
        Latent starting points. ``None`` draws them from the exact stationary density
        ``exp(-V/kT) / Z``, so the data are stationary from the first frame.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the starting points, the dynamics and the feature noise (in that order, so the
        latent trajectories for a given seed do not depend on ``noise``). Numpy's global
        random state is never used.
    return_latent : bool, default=False
        Also return the latent trajectories.

    Returns
    -------
    X : ndarray of shape (n_frames, n_features) or list of them
        Features; one float64 array when ``n_trajectories == 1``, else a list.
    Z : ndarray of shape (n_frames, 2) or list of them
        Latent positions ``(x, y)``, in the same form; only if ``return_latent``.

    Notes
    -----
    Units: lengths are dimensionless, energies are in units of ``kT = 1`` (the wells are 6,
    5 and 5 deep), time is in reduced units in which ``D`` is given, and one frame is
    ``stride * dt = 0.02`` time units by default. At the defaults the reference implied
    timescales (:func:`hidden_wells_reference`) are about 340 and 99 frames for the two
    slow processes and 10 frames and less for the rest, so 100 000 frames hold about 300
    of the slowest relaxation times. The largest step stiffness ``dt D/kT max|Hess V|`` is
    about 0.06; Markov state models of long simulated runs reproduce the two slow
    reference timescales to within about 2 % (to -1.5 % and -0.9 % on average).

    How hidden the slow processes are: linear TICA at a lag of 20 frames on the default
    20 noisy features (``map_seed=0``) finds slowest timescales of about 130 and 50 frames
    instead of 340 and 99 (about 150/52 with 10 features and 220-270/75-90 with 30,
    depending on the data), while a small MLP (two hidden layers of 64 units, trained on
    30 000 frames) regresses the latent positions from the noisy features with R^2 of
    about 0.99: the map is injective (see :func:`hidden_wells_features`), so no slow
    information is lost.

    Speed: fewer than 32 trajectories are integrated one after the other by a scalar
    loop, about 1.5 us per step, so the default 100 000 frames (10^6 steps) take about
    1-2 s; 32 or more are advanced together with numpy at about 60 us per step for all
    of them (up to a few hundred), so 100 trajectories of 2000 frames take about 1.2 s.
    Times are for one core of an AMD EPYC server. The two routes use the random stream
    differently.

    Examples
    --------
    >>> from sklss.datasets import hidden_wells
    >>> X, Z = hidden_wells(1000, n_features=10, random_state=0, return_latent=True)
    >>> X.shape, Z.shape
    ((1000, 10), (1000, 2))
    """
    n_frames = check_int("n_frames", n_frames)
    n_trajectories = check_int("n_trajectories", n_trajectories)
    n_features = check_int("n_features", n_features, low=2)
    noise = check_positive("noise", noise, allow_zero=True)
    stride = check_int("stride", stride)
    map_seed = check_int("map_seed", map_seed, low=0)
    dt, kT, diffusion = check_physics(dt, kT, diffusion)
    _check_step(dt, kT, diffusion)
    start = check_start("x0", x0, n_trajectories, 2)
    if start is not None:
        half = _half_width(kT, cutoff=15.0)
        if np.abs(start).max() > half:
            raise ValueError(
                f"The 'x0' parameter must lie in the box [-{half}, {half}]^2, where V - min V "
                f"< 15 kT at kT={kT!r}. Got {x0!r}."
            )
    if not isinstance(return_latent, (bool, np.bool_)):
        raise ValueError(f"The 'return_latent' parameter must be a bool. Got {return_latent!r}.")
    rng = check_rng(random_state)
    if start is None:
        start = _sample_stationary(n_trajectories, kT, rng)

    a = dt * diffusion / kT
    sigma = math.sqrt(2.0 * diffusion * dt)
    if n_trajectories < _MIN_VECTOR_WALKERS:
        latent = [_run_scalar(z0, n_frames, stride, a, sigma, rng) for z0 in start]
    else:
        paths = _run_walkers(start, n_frames, stride, a, sigma, rng)
        latent = [paths[:, i] for i in range(n_trajectories)]

    def features(Z):
        return hidden_wells_features(Z, n_features=n_features, map_seed=map_seed)

    return observed_through(latent, features, noise, rng, n_trajectories, return_latent)


def hidden_wells_reference(
    *,
    dt=DEFAULT_DT,
    kT=1.0,
    diffusion=1.0,
    stride=DEFAULT_STRIDE,
    n_grid=150,
    n_timescales=5,
):
    """Exact stationary density and slow kinetics of the latent dynamics of :func:`hidden_wells`.

    The generator is discretised on an ``n_grid x n_grid`` square grid by the square-root
    approximation (rate ``D / h^2 exp(-(V_j - V_i) / (2 kT))`` between neighbouring cells),
    symmetrised with the stationary weights, and its leading eigenpairs are found by
    shift-invert Lanczos (``scipy.sparse.linalg.eigsh``). The box is chosen so that
    ``V - min V > 20 kT`` outside it.

    Parameters
    ----------
    dt, kT, diffusion, stride : float, float, float, int
        As in :func:`hidden_wells`; ``dt`` and ``stride`` only convert times to frames.
    n_grid : int, default=150
        Cells per axis. The two slow timescales change by less than 0.1 % between 150 and
        300 cells at the defaults.
    n_timescales : int, default=5
        Number of implied timescales returned.

    Returns
    -------
    reference : :class:`~sklearn.utils.Bunch`
        With attributes

        grid_x, grid_y : ndarray of shape (n_grid,)
            Cell centres along ``x`` and ``y``.
        edges_x, edges_y : ndarray of shape (n_grid + 1,)
            Cell edges.
        stationary_density : ndarray of shape (n_grid, n_grid)
            ``exp(-V/kT) / Z`` at the centres, indexed ``[ix, iy]`` and normalised so that
            its sum times the cell area is 1.
        free_energy : ndarray of shape (n_grid, n_grid)
            ``V / kT`` shifted to a minimum of 0, in units of kT.
        eigenvalues : ndarray of shape (n_timescales + 1,)
            Leading generator eigenvalues in inverse time units, ``0`` first.
        timescales : ndarray of shape (n_timescales,)
            Implied timescales ``-1 / (eigenvalue * dt * stride)`` in frames, slowest first.
        eigenfunctions : ndarray of shape (n_timescales + 1, n_grid, n_grid)
            The matching eigenfunctions of the generator on the grid, normalised to unit
            variance under the stationary density (the first is the constant 1).
        frame_time : float
            ``dt * stride``.

    Notes
    -----
    The reference is for continuous time. The Euler-Maruyama chain of :func:`hidden_wells`
    at the default step has slow timescales within about 2 % of it. Building the
    reference takes about 0.5 s.

    Examples
    --------
    >>> from sklss.datasets import hidden_wells_reference
    >>> ref = hidden_wells_reference()
    >>> [round(float(t)) for t in ref.timescales[:2]]
    [340, 99]
    """
    dt, kT, diffusion = check_physics(dt, kT, diffusion)
    stride = check_int("stride", stride)
    n_grid = check_int("n_grid", n_grid, low=10)
    n_timescales = check_int("n_timescales", n_timescales)
    if n_timescales + 2 >= n_grid * n_grid:
        raise ValueError(
            f"The 'n_timescales' parameter must be smaller than n_grid**2 - 2. Got {n_timescales}."
        )

    half = _half_width(kT)
    edges = np.linspace(-half, half, n_grid + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    h = edges[1] - edges[0]
    X, Y = np.meshgrid(centres, centres, indexing="ij")
    u = hidden_wells_potential(np.stack([X, Y], -1)) / kT
    u -= u.min()
    pi = np.exp(-u)
    pi /= pi.sum()

    # Symmetrised SqRA generator: off-diagonal D / h^2 between neighbours, and the diagonal
    # minus the sum of the (unsymmetrised) outgoing rates.
    rate = diffusion / h**2
    index = np.arange(n_grid * n_grid).reshape(n_grid, n_grid)
    diag = np.zeros((n_grid, n_grid))
    rows, cols = [], []
    for axis in (0, 1):
        lo = [slice(None)] * 2
        hi = [slice(None)] * 2
        lo[axis], hi[axis] = slice(0, -1), slice(1, None)
        lo, hi = tuple(lo), tuple(hi)
        diag[lo] -= rate * np.exp(-(u[hi] - u[lo]) / 2)
        diag[hi] -= rate * np.exp(-(u[lo] - u[hi]) / 2)
        rows += [index[lo].ravel(), index[hi].ravel()]
        cols += [index[hi].ravel(), index[lo].ravel()]
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    S = sparse.coo_matrix(
        (np.full(len(rows), rate), (rows, cols)), shape=(n_grid**2, n_grid**2)
    ).tocsc()
    S = S + sparse.diags(diag.ravel())
    k = n_timescales + 1
    # Shift-invert just above 0 (the largest eigenvalue) finds the slowest eigenpairs.
    values, vectors = eigsh(S, k=k, sigma=1e-2 * diffusion, which="LM", v0=np.sqrt(pi).ravel())
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    values[0] = 0.0
    psi = vectors / np.sqrt(pi).ravel()[:, None]
    psi /= np.sqrt(np.sum(pi.ravel()[:, None] * psi**2, axis=0))
    psi *= np.sign(psi[np.argmax(np.abs(psi), axis=0), np.arange(k)])[None, :]
    frame_time = dt * stride
    return Bunch(
        grid_x=centres,
        grid_y=centres.copy(),
        edges_x=edges,
        edges_y=edges.copy(),
        stationary_density=pi / h**2,
        free_energy=u,
        eigenvalues=values,
        timescales=-1.0 / (values[1:] * frame_time),
        eigenfunctions=psi.T.reshape(k, n_grid, n_grid),
        frame_time=frame_time,
        kT=kT,
        diffusion=diffusion,
    )
