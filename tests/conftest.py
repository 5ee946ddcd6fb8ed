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


def flip_chain(n_frames, flip_probabilities, random_state=0):
    """Independent two-state (+1/-1) chains that flip sign with the given probabilities.

    The eigenvalue of each chain is ``1 - 2 p`` (0.9 for p = 0.05; -0.9 for p = 0.95), and,
    unlike a Gaussian AR(1) process (whose powers x^2, x^3, ... are eigenfunctions too), a
    two-state chain has no other: the rest of an SRV's basis is left to noise.
    """
    rng = np.random.default_rng(random_state)
    flips = rng.random((n_frames, len(flip_probabilities))) < np.asarray(flip_probabilities)
    return np.where(np.cumsum(flips, axis=0) % 2 == 0, 1.0, -1.0)


def small_srv(**kw):
    """A small, quickly trained SRV (lag 1, one component) for API and numerics tests."""
    from sklss import SRVTransformer

    params = dict(
        lag_time=1,
        n_components=1,
        hidden_layer_sizes=(16, 16),
        max_epochs=15,
        batch_size=256,
        random_state=0,
    )
    params.update(kw)
    return SRVTransformer(**params)


def dihedral(p):
    """Dihedral angle (rad) of points p[..., 0..3, :], by the textbook atan2 formula."""
    b0, b1, b2 = (
        p[..., 0, :] - p[..., 1, :],
        p[..., 2, :] - p[..., 1, :],
        p[..., 3, :] - p[..., 2, :],
    )
    b1 = b1 / np.linalg.norm(b1, axis=-1, keepdims=True)
    v = b0 - np.sum(b0 * b1, -1, keepdims=True) * b1
    w = b2 - np.sum(b2 * b1, -1, keepdims=True) * b1
    return np.arctan2(np.sum(np.cross(b1, v) * w, -1), np.sum(v * w, -1))
