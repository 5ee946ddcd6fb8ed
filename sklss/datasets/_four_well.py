"""Brownian dynamics in the one-dimensional four-well potential of the LSS paper (section 3.1)."""

import math
from itertools import accumulate

import numpy as np
from scipy.linalg import eigh_tridiagonal
from sklearn.utils import Bunch

from ._base import (
    as_trajectory_data,
    check_int,
    check_physics,
    check_positive,
    check_rng,
    check_start,
    check_stiffness,
    sample_cells,
)

__all__ = ["four_well", "four_well_potential", "four_well_reference"]

#: Default thermal energy, in the energy units of the potential.
DEFAULT_KT = 0.5
#: Default diffusivity, in (length unit)^2 per time unit.
DEFAULT_DIFFUSION = 0.25
DEFAULT_DT = 1e-3

# Fewer walkers than this are simulated one after the other by the scalar loop, which beats
# numpy's per-call overhead on short arrays.
_MIN_VECTOR_WALKERS = 64
# Random numbers drawn at once (per walker in the scalar loop, in all for the walkers).
_CHUNK = 1 << 17
# Largest allowed step stiffness dt * D / kT * |V''| over the region the dynamics visit.


def four_well_potential(x):
    """The four-well potential ``V(x)``.

    ``V(x) = 2 (x^8 + 0.8 exp(-80 x^2) + 0.2 exp(-80 (x - 0.5)^2)
    + 0.5 exp(-40 (x + 0.5)^2))``, with minima near ``x = -0.74, -0.22, 0.27, 0.67`` and
    barriers near ``x = -0.50, 0, 0.50``.

    Parameters
    ----------
    x : array-like
        Positions (dimensionless).

    Returns
    -------
    V : ndarray of the shape of ``x``
        Potential energy, in the units in which ``kT`` is given.

    Examples
    --------
    >>> from sklss.datasets import four_well_potential
    >>> round(float(four_well_potential(0.0)), 4)
    1.6
    """
    x = np.asarray(x, dtype=np.float64)
    return 2.0 * (
        x**8
        + 0.8 * np.exp(-80.0 * x**2)
        + 0.2 * np.exp(-80.0 * (x - 0.5) ** 2)
        + 0.5 * np.exp(-40.0 * (x + 0.5) ** 2)
    )


def _curvature(x):
    y, z = x - 0.5, x + 0.5
    return 2.0 * (
        56.0 * x**6
        + 128.0 * (160.0 * x**2 - 1.0) * np.exp(-80.0 * x**2)
        + 32.0 * (160.0 * y**2 - 1.0) * np.exp(-80.0 * y**2)
        + 40.0 * (80.0 * z**2 - 1.0) * np.exp(-40.0 * z**2)
    )


def _half_width(kT, cutoff=30.0):
    """Half-width ``L`` of a domain ``[-L, L]`` outside which ``V - min V > cutoff * kT``."""
    x = np.arange(1.0, 4.0, 1e-3)
    v_min = four_well_potential(np.linspace(-1, 1, 4001)).min()
    high = np.minimum(four_well_potential(x), four_well_potential(-x)) - v_min > cutoff * kT
    return float(x[np.argmax(high)])


def _check_step(dt, kT, diffusion):
    """Reject a step so large that Euler-Maruyama is unstable where the dynamics go."""
    x = np.linspace(-1, 1, 4001) * _half_width(kT, cutoff=20.0)
    max_curvature = np.abs(_curvature(x)).max()
    check_stiffness(dt, kT, diffusion, max_curvature, "max|V''|")


def _run_scalar(x0, n_frames, stride, a, sigma, rng):
    """One chain, stepped by a plain Python loop on pre-drawn noise (about 0.5 us a step)."""
    exp = math.exp
    # x_{n+1} = x_n - a V'(x_n) + sigma xi_n with a = dt D / kT, V' expanded term by term.
    c1, c2, c3, c4 = -16.0 * a, 256.0 * a, 64.0 * a, 80.0 * a

    def step(x, noise):
        x2 = x * x
        y = x - 0.5
        z = x + 0.5
        return (
            x
            + (c1 * x2 * x2 * x2 + c2 * exp(-80.0 * x2)) * x
            + c3 * y * exp(-80.0 * y * y)
            + c4 * z * exp(-40.0 * z * z)
            + noise
        )

    out = np.empty(n_frames)
    frames_per_chunk = max(1, _CHUNK // stride)
    x, done = float(x0), 0
    while done < n_frames:
        m = min(frames_per_chunk, n_frames - done)
        noise = rng.standard_normal(m * stride)
        noise *= sigma
        path = list(accumulate(noise.tolist(), step, initial=x))
        out[done : done + m] = path[0 : m * stride : stride]
        x, done = path[-1], done + m
    return out


def _run_walkers(x0, n_frames, stride, a, sigma, rng):
    """Independent walkers advanced together, a few numpy calls per step for all of them."""
    n_walkers = len(x0)
    out = np.empty((n_frames, n_walkers))
    frames_per_chunk = max(1, _CHUNK // (stride * n_walkers))
    x, done = x0.astype(np.float64, copy=True), 0
    # The three Gaussian terms of -a V'(x) as rows: amplitude * (x - centre) * exp(-w (x - c)^2).
    centre = np.array([[0.0], [0.5], [-0.5]])
    width = np.array([[80.0], [80.0], [40.0]])
    amplitude = a * np.array([[256.0], [64.0], [80.0]])
    c1 = -16.0 * a
    while done < n_frames:
        m = min(frames_per_chunk, n_frames - done)
        noise = rng.standard_normal((m * stride, n_walkers))
        noise *= sigma
        for t in range(m * stride):
            if t % stride == 0:
                out[done + t // stride] = x
            d = x - centre
            x2 = x * x
            gauss = (amplitude * d * np.exp(-width * d * d)).sum(axis=0)
            x = x + c1 * x2 * x2 * x2 * x + gauss + noise[t]
        done += m
    return out


def _sample_stationary(size, kT, rng, n_grid=20_000):
    """Positions drawn from ``exp(-V/kT)``: a fine-grid cell by weight, then uniform in it."""
    half = _half_width(kT)
    edges = np.linspace(-half, half, n_grid + 1)
    centres = 0.5 * (edges[1:] + edges[:-1])
    v = four_well_potential(centres) / kT
    cells = sample_cells(np.exp(-(v - v.min())), size, rng)
    return edges[cells] + (edges[1] - edges[0]) * rng.random(size)


def four_well(
    n_steps=5_000_000,
    *,
    n_trajectories=1,
    dt=DEFAULT_DT,
    kT=DEFAULT_KT,
    diffusion=DEFAULT_DIFFUSION,
    stride=1,
    x0=None,
    random_state=None,
):
    """Brownian dynamics in the one-dimensional four-well potential.

    Integrates the overdamped Langevin equation ``dx = -(D / kT) V'(x) dt + sqrt(2 D) dW``
    in :func:`four_well_potential` with the Euler-Maruyama scheme

    ``x_{n+1} = x_n - (D / kT) V'(x_n) dt + sqrt(2 D dt) xi_n``, ``xi_n ~ N(0, 1)``,

    the model system of section 3.1 of Sidky, Chen & Ferguson (2020), who ran 5 x 10^6
    steps of length ``dt = 0.001``.

    Parameters
    ----------
    n_steps : int, default=5_000_000
        Length of each trajectory in integration steps. The chain visits ``x_0, ...,
        x_{n_steps - 1}``, and ``x_0, x_stride, x_{2 stride}, ...`` are saved, which gives
        ``n_frames = n_steps // stride`` frames.
    n_trajectories : int, default=1
        Number of independent trajectories, each ``n_steps`` long.
    dt : float, default=1e-3
        Integration time step, in reduced time units.
    kT : float, default=0.5
        Thermal energy, in the energy units of the potential.
    diffusion : float, default=0.25
        Diffusivity ``D``, in squared length units per reduced time unit.
    stride : int, default=1
        Save every ``stride``-th step; one frame is ``stride * dt`` time units.
    x0 : float or array-like of shape (n_trajectories,), default=None
        Starting positions. ``None`` draws each from the exact stationary density
        ``exp(-V/kT) / Z``, so the data are stationary from the first frame and need no
        burn-in.
    random_state : int, RandomState instance, Generator or None, default=None
        Seeds the starting positions and the noise. An int gives the same trajectories on
        every call, ``None`` fresh ones; numpy's global random state is never used.

    Returns
    -------
    X : ndarray of shape (n_frames, 1) or list of them
        One float64 array when ``n_trajectories == 1``, else a list of ``n_trajectories``
        arrays.

    Notes
    -----
    Units: positions are dimensionless, energies are measured in the units of ``V`` (so
    ``V / kT`` is in units of kT), and time is in reduced units in which ``D`` is given;
    ``dt`` is the step in those units. Elsewhere in sklss time is counted in frames, that is
    in saved steps of ``stride * dt`` time units.

    Why ``kT = 0.5`` and ``D = 0.25``: at ``kT = 0.5`` the barriers (relative to the
    adjacent wells) are about 3 kT in the middle, 1.4-1.9 kT on the left and 0.6-0.8 kT on
    the right, so the four wells are metastable and the three slow processes (implied
    timescales of about 3340, 510 and 260 steps) are clearly separated from the
    intra-well relaxation (about 50 steps and faster). A 5 x 10^6-step run spans about
    1500 of the slowest timescales. ``D = 0.25`` keeps the largest step stiffness
    ``dt D/kT max|V''|`` at about 0.13, where Euler-Maruyama shifts the slowest timescale
    by less than 1 % and the stationary free energy by about 0.02 kT RMS; the exact answers
    are given by :func:`four_well_reference`.

    Speed: fewer than 64 trajectories are run one after the other by a tight scalar loop
    on pre-drawn noise, about 0.5 us per step: the paper's 5 x 10^6 steps take about 2.6 s
    on one idle core of an AMD EPYC server (about twice that on a busy machine). 64 or more
    trajectories are advanced together with numpy at about 25-100 us per step for all of
    them: 5 x 10^6 steps in all, as 100 trajectories of 5 x 10^4 steps, take about 1 s,
    and 2 x 10^7 steps, as 1000 trajectories of 2 x 10^4, about 2 s. Both routes start
    every trajectory from the stationary density, so many short trajectories are as good
    as one long one for estimating stationary and kinetic quantities at lags well below
    their length. The two routes use the random stream differently, so the same seed
    gives unrelated trajectories for, say, 63 and 64 trajectories.

    References
    ----------
    .. [1] H. Sidky, W. Chen and A. L. Ferguson, "Molecular latent space simulators",
       Chem. Sci. 11, 9459-9467 (2020).

    Examples
    --------
    >>> from sklss.datasets import four_well
    >>> X = four_well(100_000, stride=10, random_state=0)
    >>> X.shape, X.dtype
    ((10000, 1), dtype('float64'))
    >>> Xs = four_well(10_000, n_trajectories=3, random_state=0)
    >>> len(Xs), Xs[0].shape
    (3, (10000, 1))
    """
    n_steps = check_int("n_steps", n_steps)
    n_trajectories = check_int("n_trajectories", n_trajectories)
    stride = check_int("stride", stride)
    if stride > n_steps:
        raise ValueError(
            f"The 'stride' parameter must not exceed n_steps={n_steps}, or no frame is "
            f"saved. Got stride={stride}."
        )
    dt, kT, diffusion = check_physics(dt, kT, diffusion)
    _check_step(dt, kT, diffusion)
    start = check_start("x0", x0, n_trajectories, 1)
    if start is not None:
        bound = _half_width(kT, cutoff=20.0)
        if np.abs(start).max() > bound:
            raise ValueError(
                f"The 'x0' parameter must lie in [-{bound:.3g}, {bound:.3g}], where "
                f"V - min V < 20 kT at kT={kT!r}. Got {x0!r}."
            )
        start = start[:, 0]
    rng = check_rng(random_state)
    if start is None:
        start = _sample_stationary(n_trajectories, kT, rng)

    n_frames = n_steps // stride
    a = dt * diffusion / kT
    sigma = math.sqrt(2.0 * diffusion * dt)
    if n_trajectories < _MIN_VECTOR_WALKERS:
        columns = [
            _run_scalar(start[i], n_frames, stride, a, sigma, rng)[:, None]
            for i in range(n_trajectories)
        ]
    else:
        paths = _run_walkers(start, n_frames, stride, a, sigma, rng)
        columns = [paths[:, [i]] for i in range(n_trajectories)]
    return as_trajectory_data(columns, n_trajectories)


def _transition_matrix_factory(pi, vectors, rates, frame_time):
    """``P(lag)[i, j]``: probability of cell ``j`` after ``lag`` frames, starting in cell ``i``."""
    root = np.sqrt(pi)

    def transition_matrix(lag_time):
        lag_time = check_positive("lag_time", lag_time)
        decay = np.exp(rates * lag_time * frame_time)
        # exp(Q t) = Pi^{-1/2} U exp(L t) U^T Pi^{1/2} for the symmetrised generator U L U^T.
        P = (vectors * decay) @ vectors.T
        P *= root[None, :] / root[:, None]
        np.clip(P, 0.0, None, out=P)
        P /= P.sum(axis=1, keepdims=True)
        return P

    return transition_matrix


def four_well_reference(
    *,
    dt=DEFAULT_DT,
    kT=DEFAULT_KT,
    diffusion=DEFAULT_DIFFUSION,
    stride=1,
    n_grid=1000,
    n_timescales=10,
):
    """Exact stationary density, free energy and kinetics of :func:`four_well`.

    The generator of the Brownian dynamics (the adjoint of the Fokker-Planck operator) is
    discretised on ``n_grid`` equal cells of ``[-L, L]`` by the square-root approximation
    (SqRA): the rate from cell ``i`` to a neighbour ``j`` is
    ``D / h^2 exp(-(V_j - V_i) / (2 kT))``. The scheme obeys detailed balance with respect
    to ``exp(-V/kT)`` exactly, so it is symmetrised and diagonalised as a tridiagonal
    matrix. ``L`` is chosen so that ``V - min V > 30 kT`` outside the domain.

    Parameters
    ----------
    dt, kT, diffusion, stride : float, float, float, int
        As in :func:`four_well`; ``dt`` and ``stride`` only convert times to frames.
    n_grid : int, default=1000
        Number of grid cells. The slowest timescale changes by about 0.02 % between 1000
        and 4000 cells at the default ``kT``.
    n_timescales : int, default=10
        Number of implied timescales (and non-trivial eigenvalues) returned.

    Returns
    -------
    reference : :class:`~sklearn.utils.Bunch`
        With attributes

        grid : ndarray of shape (n_grid,)
            Cell centres.
        edges : ndarray of shape (n_grid + 1,)
            Cell edges.
        stationary_density : ndarray of shape (n_grid,)
            ``exp(-V/kT) / Z`` at the centres, normalised so that ``sum(p) * h == 1``.
        free_energy : ndarray of shape (n_grid,)
            ``V / kT`` shifted to a minimum of 0, in units of kT.
        eigenvalues : ndarray of shape (n_timescales + 1,)
            Leading eigenvalues of the discretised generator in reduced inverse time units,
            ``0`` first, then decreasing.
        timescales : ndarray of shape (n_timescales,)
            Implied timescales ``-1 / (eigenvalue * dt * stride)`` in frames, slowest
            first.
        transition_matrix : callable
            ``transition_matrix(lag_time)`` returns the ``(n_grid, n_grid)`` row-stochastic
            matrix whose row ``i`` is the probability of each cell ``lag_time`` frames
            after starting in cell ``i``; divide by the cell width ``h`` for the transition
            density ``p(x_{t+lag} | x_t)``.
        frame_time : float
            ``dt * stride``, the length of one frame in time units.

    Notes
    -----
    The reference describes the continuous-time dynamics. The Euler-Maruyama chain of
    :func:`four_well` with finite ``dt`` differs from it slightly; at the defaults the
    slowest timescale of the chain is about 0.8 % longer and its stationary free energy
    differs by about 0.02 kT RMS (computed from the chain's Gaussian one-step kernel on a
    fine grid).
    Building the reference takes about 0.1 s.

    Examples
    --------
    >>> from sklss.datasets import four_well_reference
    >>> ref = four_well_reference(stride=10)
    >>> [round(float(t)) for t in ref.timescales[:3]]
    [334, 51, 26]
    """
    dt, kT, diffusion = check_physics(dt, kT, diffusion)
    stride = check_int("stride", stride)
    n_grid = check_int("n_grid", n_grid, low=10)
    n_timescales = check_int("n_timescales", n_timescales)
    if n_timescales >= n_grid:
        raise ValueError(
            f"The 'n_timescales' parameter must be smaller than n_grid={n_grid}. "
            f"Got {n_timescales}."
        )

    half = _half_width(kT)
    edges = np.linspace(-half, half, n_grid + 1)
    grid = 0.5 * (edges[1:] + edges[:-1])
    h = edges[1] - edges[0]
    u = four_well_potential(grid) / kT
    u -= u.min()
    pi = np.exp(-u)
    pi /= pi.sum()

    # Symmetrised SqRA generator sqrt(pi_i / pi_j) Q_ij: the off-diagonal is D / h^2.
    rate = diffusion / h**2
    diag = np.zeros(n_grid)
    diag[:-1] -= rate * np.exp(-(u[1:] - u[:-1]) / 2)
    diag[1:] -= rate * np.exp(-(u[:-1] - u[1:]) / 2)
    off = np.full(n_grid - 1, rate)
    values, vectors = eigh_tridiagonal(diag, off)
    order = np.argsort(values)[::-1]
    values, vectors = values[order], vectors[:, order]
    values[0] = 0.0  # the stationary eigenvalue, up to round-off

    frame_time = dt * stride
    leading = values[: n_timescales + 1]
    return Bunch(
        grid=grid,
        edges=edges,
        stationary_density=pi / h,
        free_energy=u,
        eigenvalues=leading,
        timescales=-1.0 / (leading[1:] * frame_time),
        transition_matrix=_transition_matrix_factory(pi, vectors, values, frame_time),
        frame_time=frame_time,
        kT=kT,
        diffusion=diffusion,
    )
