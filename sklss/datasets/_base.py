"""Shared helpers of the toy-system generators: argument checks, random streams, sampling."""

from numbers import Real

import numpy as np

from .._random import check_rng  # noqa: F401  (used by the generators)
from .._validation import check_int  # noqa: F401  (used by the generators)


def check_positive(name, value, *, allow_zero=False):
    """Return ``value`` as a finite float > 0 (or >= 0), or raise a ValueError naming it."""
    ok = (
        not isinstance(value, bool)
        and isinstance(value, Real)
        and np.isfinite(value)
        and (value >= 0 if allow_zero else value > 0)
    )
    if not ok:
        bound = "[0, inf)" if allow_zero else "(0, inf)"
        raise ValueError(
            f"The '{name}' parameter must be a finite float in the range {bound}. Got {value!r}."
        )
    return float(value)


def check_start(name, value, n_trajectories, n_dim):
    """Starting points as an array of shape ``(n_trajectories, n_dim)``, or ``None``.

    A single point is used for every trajectory.
    """
    if value is None:
        return None
    try:
        arr = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"The '{name}' parameter must be None or an array of numbers. Got {value!r}."
        ) from None
    if arr.size == n_dim:
        arr = np.broadcast_to(arr.reshape(1, n_dim), (n_trajectories, n_dim))
    elif arr.size == n_trajectories * n_dim:
        arr = arr.reshape(n_trajectories, n_dim)
    else:
        raise ValueError(
            f"The '{name}' parameter must hold one point of dimension {n_dim} or one per "
            f"trajectory (n_trajectories={n_trajectories}); got an array of shape {arr.shape}."
        )
    if not np.isfinite(arr).all():
        raise ValueError(f"The '{name}' parameter contains NaN or inf: {value!r}.")
    return np.array(arr)


def sample_cells(weights, size, rng):
    """Indices of cells drawn with probability proportional to ``weights`` (a flat array)."""
    cdf = np.cumsum(weights, dtype=np.float64)
    cdf /= cdf[-1]
    u = rng.random(size)
    return np.minimum(np.searchsorted(cdf, u, side="right"), len(cdf) - 1)


def observed_through(latent, features, noise, rng, n_trajectories, return_latent):
    """The generators' common ending: latent trajectories seen through a feature map.

    ``features`` maps all frames at once (a few large numpy calls beat many small ones),
    Gaussian noise of standard deviation ``noise`` is added from ``rng``, and the result is
    split back into trajectories, returned as :func:`as_trajectory_data` does (with the
    latent trajectories too when ``return_latent``).
    """
    observed = features(np.concatenate(latent))
    if noise > 0:
        observed += noise * rng.standard_normal(observed.shape)
    observed = np.split(observed, np.cumsum([len(z) for z in latent])[:-1])
    X = as_trajectory_data(observed, n_trajectories)
    if return_latent:
        return X, as_trajectory_data(latent, n_trajectories)
    return X


def as_trajectory_data(columns, n_trajectories):
    """One array for a single trajectory, a list of contiguous arrays for several."""
    trajs = [np.ascontiguousarray(c, dtype=np.float64) for c in columns]
    return trajs[0] if n_trajectories == 1 else trajs


# Largest step stiffness dt * D / kT * max|curvature| accepted: Euler-Maruyama on a harmonic
# well is stable below 2, and accurate only well below that.
MAX_STIFFNESS = 1.0


def check_physics(dt, kT, diffusion):
    """Validate the time step, thermal energy and diffusivity; return them as floats."""
    return (
        check_positive("dt", dt),
        check_positive("kT", kT),
        check_positive("diffusion", diffusion),
    )


def check_stiffness(dt, kT, diffusion, max_curvature, curvature_name):
    """Reject a step so large that Euler-Maruyama is unstable where the dynamics go."""
    stiffness = dt * diffusion / kT * max_curvature
    if stiffness > MAX_STIFFNESS:
        raise ValueError(
            f"The 'dt' parameter is too large: dt={dt!r} with diffusion={diffusion!r} and "
            f"kT={kT!r} gives a step stiffness dt*D/kT*{curvature_name} = {stiffness:.3g} > "
            f"{MAX_STIFFNESS}; use dt <= {dt * MAX_STIFFNESS / stiffness:.3g}."
        )
