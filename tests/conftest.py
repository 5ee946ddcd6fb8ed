import numpy as np
import pytest


def ar1(n_frames, coefficients, random_state=0):
    """Independent AR(1) processes x_{t+1} = a x_t + N(0, 1), started in equilibrium."""
    rng = np.random.default_rng(random_state)
    a = np.atleast_1d(np.asarray(coefficients, dtype=np.float64))
    x = np.empty((n_frames, len(a)))
    x[0] = rng.normal(size=len(a)) / np.sqrt(1 - a**2)
    noise = rng.normal(size=(n_frames, len(a)))
    for t in range(1, n_frames):
        x[t] = a * x[t - 1] + noise[t]
    return x


@pytest.fixture
def ar1_data():
    return ar1


def exact_free_energy(reference, edges):
    """Exact free energy (kT, minimum 0) on the bins ``edges``, from a fine-grid reference
    with cell edges ``reference.edges`` and density ``reference.stationary_density``."""
    overlap = (
        np.clip(
            np.minimum(reference.edges[1:, None], edges[None, 1:])
            - np.maximum(reference.edges[:-1, None], edges[None, :-1]),
            0,
            None,
        )
        / np.diff(reference.edges)[:, None]
    )
    p = (reference.stationary_density * np.diff(reference.edges)) @ overlap
    return -np.log(p) + np.log(p.max())


def markov_timescale(x, edges, lag=1):
    """Leading implied timescale (frames of ``x``) of a Markov model on the bins ``edges``."""
    from sklss.metrics import markov_timescales

    return markov_timescales(x, edges, lag)[0]
