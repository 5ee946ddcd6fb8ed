"""Three independent two-state switches seen through a fixed nonlinear map to many features.

A Trp-cage-sized test system with an exact answer: three slow processes (m = 3), hundreds of
features, as many frames as a user wants, and decoded targets from a second map.
"""

import functools
import itertools
import math

import numpy as np
from scipy.linalg import eigh_tridiagonal
from sklearn.utils import Bunch

from .._validation import is_trajectory_list
from ._base import (
    as_trajectory_data,
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
    "hidden_switches",
    "hidden_switches_features",
    "hidden_switches_latent",
    "hidden_switches_potential",
    "hidden_switches_reference",
]

# Tilted double wells h (x^2 - 1)^2 + c x, one per latent coordinate (energies in kT).
_BARRIERS = np.array([4.0, 3.7, 3.4])
_TILTS = np.array([0.4, -0.3, 0.2])
# Half-width of the grids used for the reference and for stationary starting points.
_GRID_HALF_WIDTH = 2.6
_FREQ = (2.0, 4.0)
DEFAULT_DT = 2e-3
DEFAULT_STRIDE = 10
_CHUNK_STEPS = 2048


def hidden_switches_potential(Z):
    """The potential of :func:`hidden_switches`: ``V = sum_i h_i (z_i^2 - 1)^2 + c_i z_i``.

    Barriers ``h = (4.0, 3.7, 3.4)`` and tilts ``c = (0.4, -0.3, 0.2)``, in units of ``kT``.

    Parameters
    ----------
    Z : array-like of shape (..., 3)
        Latent positions.

    Returns
    -------
    V : ndarray of shape Z.shape[:-1]
        Potential energy, in units of ``kT``.
    """
    Z = np.asarray(Z, dtype=np.float64)
    if Z.shape[-1:] != (3,):
        raise ValueError(f"Z must have a last axis of length 3; got shape {Z.shape}.")
    return np.sum(_BARRIERS * (Z**2 - 1.0) ** 2 + _TILTS * Z, axis=-1)


def _switch_grid(kT, n_grid):
    edges = np.linspace(-_GRID_HALF_WIDTH, _GRID_HALF_WIDTH, n_grid + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    u = (_BARRIERS[:, None] * (centres**2 - 1.0) ** 2 + _TILTS[:, None] * centres) / kT
    return edges, centres, u - u.min(axis=1, keepdims=True)


def _check_step(dt, kT, diffusion):
    # Curvature 4 h (3 z^2 - 1) where V - min V < 15 kT.
    _, centres, u = _switch_grid(kT, 2000)
    curvature = 4 * _BARRIERS[:, None] * np.abs(3 * centres**2 - 1.0)
    check_stiffness(dt, kT, diffusion, curvature[u < 15.0].max(), "max|V''|")


def hidden_switches_latent(
    n_frames=10_000,
    *,
    n_trajectories=1,
    stride=DEFAULT_STRIDE,
    dt=DEFAULT_DT,
    kT=1.0,
    diffusion=1.0,
    x0=None,
    random_state=None,
):
    """Latent trajectories of :func:`hidden_switches`, without the features.

    Each coordinate follows overdamped Langevin dynamics in its own tilted double well,
    integrated by Euler-Maruyama; all trajectories and coordinates are advanced together.
    Use this with :func:`hidden_switches_features` to build data sets too large for memory
    one trajectory at a time.

    Parameters are those of :func:`hidden_switches`.

    Returns
    -------
    Z : ndarray of shape (n_frames, 3) or list of them
        Latent positions; one array when ``n_trajectories == 1``, else a list.
    """
    n_frames = check_int("n_frames", n_frames)
    n_trajectories = check_int("n_trajectories", n_trajectories)
    stride = check_int("stride", stride)
    dt, kT, diffusion = check_physics(dt, kT, diffusion)
    _check_step(dt, kT, diffusion)
    start = check_start("x0", x0, n_trajectories, 3)
    if start is not None and np.abs(start).max() > _GRID_HALF_WIDTH:
        raise ValueError(
            f"The 'x0' parameter must lie in [-{_GRID_HALF_WIDTH}, {_GRID_HALF_WIDTH}]^3. "
            f"Got {x0!r}."
        )
    rng = check_rng(random_state)
    if start is None:
        edges, _, u = _switch_grid(kT, 2000)
        h = edges[1] - edges[0]
        cells = np.stack([sample_cells(np.exp(-ui), n_trajectories, rng) for ui in u], axis=1)
        start = edges[cells] + h * rng.random((n_trajectories, 3))

    a = dt * diffusion / kT
    sigma = math.sqrt(2.0 * diffusion * dt)
    four_h, tilt = 4.0 * _BARRIERS, _TILTS
    z = np.array(start, dtype=np.float64)
    out = np.empty((n_frames, n_trajectories, 3))
    n_steps = n_frames * stride
    step = 0
    while step < n_steps:
        m = min(_CHUNK_STEPS, n_steps - step)
        noise = rng.standard_normal((m, n_trajectories, 3))
        noise *= sigma
        for k in range(m):
            if (step + k) % stride == 0:
                out[(step + k) // stride] = z
            z = z - a * (four_h * z * (z * z - 1.0) + tilt) + noise[k]
        step += m
    return as_trajectory_data([out[:, i] for i in range(n_trajectories)], n_trajectories)


@functools.lru_cache(maxsize=4)
def _random_map(n_features, map_seed):
    """The map's parameters, read-only, drawn once per ``(n_features, map_seed)``.

    Mapping trajectory after trajectory would otherwise repeat the QR of an ``n x n``
    matrix each time.
    """
    rng = np.random.default_rng(map_seed)
    # Three monotone coordinates tanh(A z): the map is injective because A is invertible.
    Q3, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    A = Q3 * rng.uniform(0.5, 0.8, size=3)[None, :]
    n_sin = n_features - 3
    direction = rng.standard_normal((n_sin, 3))
    direction /= np.linalg.norm(direction, axis=1, keepdims=True)
    W = direction * rng.uniform(*_FREQ, size=n_sin)[:, None]
    phase = rng.uniform(0, 2 * np.pi, size=n_sin)
    Q, R = np.linalg.qr(rng.standard_normal((n_features, n_features)))
    Q *= np.sign(np.diag(R))[None, :]
    for a in (A, W, phase, Q):
        a.flags.writeable = False
    return A, W, phase, Q


def hidden_switches_features(Z, *, n_features=330, map_seed=0, dtype=np.float64):
    """The fixed nonlinear map from latent positions to features of :func:`hidden_switches`.

    Three monotone functions ``tanh(A z)`` (``A`` a random invertible matrix, so the map is
    injective) and ``n_features - 3`` ridge sinusoids ``sin(w_k . z + phi_k)`` with random
    directions, frequencies between 2 and 4 radians per unit length and phases, mixed by a
    random orthogonal matrix. Every feature depends on every switch.

    Parameters
    ----------
    Z : array-like of shape (n_frames, 3) or list of them
        Latent positions.
    n_features : int, default=330
        Number of features, at least 3.
    map_seed : int, default=0
        Seed of the map. A second seed gives a second, independent map, for example for
        targets to decode.
    dtype : numpy dtype, default=float64
        Type of the returned features.

    Returns
    -------
    F : ndarray of shape (n_frames, n_features) or list of them
        Noise-free features, in the same form as ``Z``.
    """
    if is_trajectory_list(Z):
        return [
            hidden_switches_features(z, n_features=n_features, map_seed=map_seed, dtype=dtype)
            for z in Z
        ]
    n_features = check_int("n_features", n_features, low=3)
    map_seed = check_int("map_seed", map_seed, low=0)
    Z = np.asarray(Z, dtype=np.float64)
    if Z.ndim != 2 or Z.shape[1] != 3:
        raise ValueError(f"Z must have shape (n_frames, 3); got shape {Z.shape}.")
    A, W, phase, Q = _random_map(n_features, map_seed)
    raw = np.concatenate([np.tanh(Z @ A.T), np.sin(Z @ W.T + phase)], axis=1)
    return (raw @ Q.T).astype(dtype, copy=False)


def hidden_switches(
    n_frames=10_000,
    *,
    n_trajectories=1,
    n_features=330,
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
    """Three independent two-state switches, observed through hundreds of nonlinear features.

    The latent position ``z`` in three dimensions follows ``dz = -(D/kT) grad V dt +
    sqrt(2 D) dW`` in :func:`hidden_switches_potential`: a tilted double well along each axis,
    with barriers of 4.0, 3.7 and 3.4 kT. Each switch has one slow process, so the system
    has exactly three slow processes (m = 3) with known timescales, about 395, 326 and 268
    frames at the defaults (:func:`hidden_switches_reference`); the next one, two switches
    relaxing together, is at 179 frames, and everything else is faster than 5 frames. The
    frames are pushed through :func:`hidden_switches_features` and Gaussian noise is added.

    With 330 features by default and as many frames as wanted, it stands in for a
    Trp-cage-sized data set (the LSS paper's: 1.04 million frames of a few hundred
    features, m = 3) with an exact answer.

    Parameters
    ----------
    n_frames : int, default=10_000
        Frames per trajectory; frame ``i`` is the state after ``i * stride`` steps.
    n_trajectories : int, default=1
        Number of independent trajectories.
    n_features : int, default=330
        Number of features, at least 3.
    noise : float, default=0.05
        Standard deviation of the noise added to every feature (the noise-free features have
        standard deviations of about 0.6-0.9).
    stride : int, default=10
        Integration steps per frame.
    dt : float, default=2e-3
        Integration time step, in reduced time units.
    kT : float, default=1.0
        Thermal energy, in the energy units of the potential.
    diffusion : float, default=1.0
        Diffusivity ``D``.
    map_seed : int, default=0
        Seed of the feature map; ``random_state`` does not affect it.
    x0 : array-like of shape (3,) or (n_trajectories, 3), default=None
        Starting points; ``None`` draws them from the stationary density.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the starting points, the dynamics and then the feature noise.
    return_latent : bool, default=False
        Also return the latent trajectories.

    Returns
    -------
    X : ndarray of shape (n_frames, n_features) or list of them
        Features; one float64 array when ``n_trajectories == 1``, else a list.
    Z : ndarray of shape (n_frames, 3) or list of them
        Latent positions, in the same form; only if ``return_latent``.

    Notes
    -----
    Speed: every step advances all trajectories together, about 10-25 us per step whatever
    their number (up to a few hundred), so 104 trajectories of 10,000 frames take about
    2.5 s and one trajectory of 100,000 frames about 13 s; the features of 10^6 frames by
    330 take 15-30 s more (one core of an AMD EPYC server). For data larger than memory,
    draw the latent trajectories with :func:`hidden_switches_latent` and map them one at a
    time.

    Examples
    --------
    >>> from sklss.datasets import hidden_switches
    >>> X, Z = hidden_switches(500, n_features=20, random_state=0, return_latent=True)
    >>> X.shape, Z.shape
    ((500, 20), (500, 3))
    """
    n_features = check_int("n_features", n_features, low=3)
    noise = check_positive("noise", noise, allow_zero=True)
    map_seed = check_int("map_seed", map_seed, low=0)
    if not isinstance(return_latent, (bool, np.bool_)):
        raise ValueError(f"The 'return_latent' parameter must be a bool. Got {return_latent!r}.")
    rng = check_rng(random_state)
    latent = hidden_switches_latent(
        n_frames,
        n_trajectories=n_trajectories,
        stride=stride,
        dt=dt,
        kT=kT,
        diffusion=diffusion,
        x0=x0,
        random_state=rng,
    )
    latent = [latent] if n_trajectories == 1 else latent

    def features(Z):
        return hidden_switches_features(Z, n_features=n_features, map_seed=map_seed)

    return observed_through(latent, features, noise, rng, n_trajectories, return_latent)


def hidden_switches_reference(
    *, dt=DEFAULT_DT, kT=1.0, diffusion=1.0, stride=DEFAULT_STRIDE, n_grid=2000, n_timescales=5
):
    """Exact stationary densities, eigenfunctions and timescales of :func:`hidden_switches`.

    Each switch's generator is discretised on a fine grid by the square-root approximation
    and diagonalised exactly (a symmetric tridiagonal matrix). The switches are independent,
    so the system's eigenvalues are sums of one eigenvalue per switch and its eigenfunctions
    products: the slow ones are the three switches alone, then pairs of them.

    Parameters
    ----------
    dt, kT, diffusion, stride : as in :func:`hidden_switches`
        ``dt`` and ``stride`` only convert times to frames.
    n_grid : int, default=2000
        Grid cells per switch on [-2.6, 2.6].
    n_timescales : int, default=5
        Number of the system's timescales returned, at most 7.

    Returns
    -------
    reference : :class:`~sklearn.utils.Bunch`
        With attributes

        grid : ndarray of shape (n_grid,)
            Cell centres, shared by the three switches.
        edges : ndarray of shape (n_grid + 1,)
            Cell edges.
        free_energy : ndarray of shape (3, n_grid)
            ``V_i / kT`` along each switch, minimum 0.
        stationary_density : ndarray of shape (3, n_grid)
            Normalised so that each sums to 1 times the cell width.
        eigenfunctions : ndarray of shape (3, n_grid)
            The slow eigenfunction of each switch, mean 0 and variance 1 under its
            stationary density, positive on the right (``z > 1``).
        switch_timescales : ndarray of shape (3,)
            Each switch's slowest implied timescale, in frames.
        timescales : ndarray of shape (n_timescales,)
            The system's slowest implied timescales, in frames.
        modes : list of tuple
            For each of ``timescales``, the switches that relax together: ``(0,)`` is the
            first switch alone, ``(0, 1)`` the product of the first two.
        frame_time : float
            ``dt * stride``.

    Examples
    --------
    >>> from sklss.datasets import hidden_switches_reference
    >>> ref = hidden_switches_reference()
    >>> [round(float(t)) for t in ref.switch_timescales]
    [395, 326, 268]
    """
    dt, kT, diffusion = check_physics(dt, kT, diffusion)
    stride = check_int("stride", stride)
    n_grid = check_int("n_grid", n_grid, low=50)
    n_timescales = check_int("n_timescales", n_timescales)
    if n_timescales > 7:
        raise ValueError(
            f"The 'n_timescales' parameter must be at most 7 (the three switches and their "
            f"products). Got {n_timescales}."
        )
    edges, centres, u = _switch_grid(kT, n_grid)
    h = edges[1] - edges[0]
    rate = diffusion / h**2
    pi = np.exp(-u)
    pi /= pi.sum(axis=1, keepdims=True)
    rates, psis = [], []
    for ui, pii in zip(u, pi):
        # Symmetrised SqRA generator: rate D/h^2 exp(-(u_j - u_i) / 2) between neighbours.
        diag = np.zeros(n_grid)
        diag[:-1] -= rate * np.exp(-(ui[1:] - ui[:-1]) / 2)
        diag[1:] -= rate * np.exp(-(ui[:-1] - ui[1:]) / 2)
        values, vectors = eigh_tridiagonal(
            diag, np.full(n_grid - 1, rate), select="i", select_range=(n_grid - 2, n_grid - 1)
        )
        slow = vectors[:, 0] / np.sqrt(pii)
        slow /= np.sqrt(np.sum(pii * slow**2))
        slow *= np.sign(slow[-1])
        rates.append(-values[0])
        psis.append(slow)
    rates = np.array(rates)
    frame_time = dt * stride
    combos = [c for k in (1, 2, 3) for c in itertools.combinations(range(3), k)]
    combo_rates = np.array([rates[list(c)].sum() for c in combos])
    order = np.argsort(combo_rates)[:n_timescales]
    return Bunch(
        grid=centres,
        edges=edges,
        free_energy=u,
        stationary_density=pi / h,
        eigenfunctions=np.array(psis),
        switch_timescales=1.0 / (rates * frame_time),
        timescales=1.0 / (combo_rates[order] * frame_time),
        modes=[combos[i] for i in order],
        frame_time=frame_time,
    )
