import numpy as np
import pytest
import torch


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


def random_walks(n_trajs=3, n_frames=300, n_features=3, seed=0):
    """A list of small Gaussian random walks: cheap, smooth trajectory data for API tests."""
    rng = np.random.default_rng(seed)
    return [0.1 * rng.normal(size=(n_frames, n_features)).cumsum(axis=0) for _ in range(n_trajs)]


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


@pytest.fixture(scope="module")
def one_torch_thread():
    """Run a test module with one torch intra-op thread, then restore the caller's setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)
