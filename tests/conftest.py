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
