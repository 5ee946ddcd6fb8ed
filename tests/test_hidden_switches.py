"""Tests of sklss.datasets.hidden_switches against its exact answer.

The statistical checks share one simulated data set (200 walkers x 3,000 frames, about 1,500
relaxation times of the slowest switch). Tolerances come from five other seeds (quoted at
each test), with room for several standard deviations.
"""

import math

import numpy as np
import pytest

from sklss.datasets import (
    hidden_switches,
    hidden_switches_features,
    hidden_switches_latent,
    hidden_switches_potential,
    hidden_switches_reference,
)
from sklss.datasets._hidden_switches import _BARRIERS, _TILTS
from sklss.markov import msm_timescales
from sklss.metrics import free_energy_rmse


@pytest.fixture(scope="module")
def ref():
    return hidden_switches_reference()


@pytest.fixture(scope="module")
def long_latent():
    return hidden_switches_latent(3000, n_trajectories=200, random_state=7)


def test_each_switch_samples_its_exact_boltzmann_density(long_latent, ref):
    Z = np.concatenate(long_latent)
    for k in range(3):
        # Bins of 20 grid cells: the exact probability of a bin is the sum over its cells.
        hist, _ = np.histogram(Z[:, k], ref.edges[::20])
        exact = ref.stationary_density[k].reshape(-1, 20).sum(axis=1)
        with np.errstate(divide="ignore"):
            F = -np.log(hist / hist.sum())
        F_exact = -np.log(exact / exact.sum())
        F_exact -= F_exact.min()
        # Five other seeds: 0.033-0.083 kT over the bins up to 4 kT.
        assert free_energy_rmse(F_exact, F - F[np.argmin(F_exact)], max_free_energy=4.0) < 0.12


def test_markov_models_of_each_switch_give_the_exact_timescales(long_latent, ref):
    edges = np.linspace(-1.8, 1.8, 31)
    for k in range(3):
        dtrajs = [np.digitize(z[:, k], edges) for z in long_latent]
        t = msm_timescales(dtrajs, 20, n_components=1, n_samples=2).timescales[0]
        # Five other seeds: -3.0 % to +2.3 % from the reference.
        assert t == pytest.approx(ref.switch_timescales[k], rel=0.08)


def test_reference_eigenfunction_decays_at_its_timescale(long_latent, ref):
    lag = 50
    for k in range(3):
        psi = [np.interp(z[:, k], ref.grid, ref.eigenfunctions[k]) for z in long_latent]
        a = np.concatenate([p[:-lag] for p in psi])
        b = np.concatenate([p[lag:] for p in psi])
        acf = np.mean(a * b) / np.mean(np.concatenate(psi) ** 2)
        # Five other seeds: within 0.006 of exp(-lag / t_k).
        assert acf == pytest.approx(math.exp(-lag / ref.switch_timescales[k]), abs=0.02)


def test_reference_timescales_are_the_switches_then_their_products(ref):
    t1, t2, t3 = ref.switch_timescales
    assert t1 > t2 > t3 > 200
    assert ref.modes[:4] == [(0,), (1,), (2,), (0, 1)]
    np.testing.assert_allclose(ref.timescales[:3], ref.switch_timescales)
    # Independent switches: the rates of a product add up.
    assert ref.timescales[3] == pytest.approx(1 / (1 / t1 + 1 / t2))
    # m = 3 has a gap: the fourth process is clearly faster than the third.
    assert ref.timescales[3] < 0.75 * t3


def test_reference_densities_and_eigenfunctions_are_normalised(ref):
    h = ref.edges[1] - ref.edges[0]
    for k in range(3):
        pi = ref.stationary_density[k] * h
        assert pi.sum() == pytest.approx(1.0)
        psi = ref.eigenfunctions[k]
        assert np.sum(pi * psi) == pytest.approx(0.0, abs=1e-8)
        assert np.sum(pi * psi**2) == pytest.approx(1.0)
        assert psi[-1] > 0 > psi[0]
        assert ref.free_energy[k].min() == 0.0


def test_latent_step_is_euler_maruyama():
    dt, stride = 2e-3, 1
    z0 = np.array([0.3, -0.8, 1.1])
    Z = hidden_switches_latent(3, x0=z0, stride=stride, dt=dt, random_state=5)
    noise = np.random.default_rng(5).standard_normal((3, 1, 3))[:, 0] * math.sqrt(2 * dt)
    z = z0.copy()
    expected = [z.copy()]
    for k in range(2):
        z = z - dt * (4 * _BARRIERS * z * (z * z - 1) + _TILTS) + noise[k]
        expected.append(z.copy())
    np.testing.assert_allclose(Z, np.array(expected), rtol=0, atol=1e-12)


def test_potential_is_a_sum_of_tilted_double_wells():
    Z = np.array([[1.0, -1.0, 0.0], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(hidden_switches_potential(Z), [0.4 + 0.3 + 3.4, 4.0 + 3.7 + 3.4])
    with pytest.raises(ValueError, match="last axis of length 3"):
        hidden_switches_potential(np.zeros((2, 2)))


def test_features_are_the_fixed_map_plus_noise_and_the_map_depends_on_map_seed_only():
    X, Z = hidden_switches(200, n_features=40, noise=0.05, random_state=0, return_latent=True)
    clean = hidden_switches_features(Z, n_features=40)
    residual = X - clean
    assert X.shape == (200, 40) and Z.shape == (200, 3) and X.dtype == np.float64
    assert residual.std() == pytest.approx(0.05, rel=0.1)
    X2 = hidden_switches(200, n_features=40, noise=0.05, random_state=1)
    assert not np.allclose(X, X2)
    other = hidden_switches_features(Z, n_features=40, map_seed=1)
    assert np.abs(other - clean).max() > 0.5
    f32 = hidden_switches_features(Z, n_features=40, dtype=np.float32)
    assert f32.dtype == np.float32 and np.allclose(f32, clean, atol=1e-6)


def test_the_map_keeps_the_three_switches_apart():
    # Injective: nearby features come from nearby latent points. Points 0.3 apart in z map
    # at least 0.05 apart in features (the monotone tanh part alone guarantees a bound).
    rng = np.random.default_rng(0)
    Z = rng.uniform(-1.5, 1.5, size=(400, 3))
    F = hidden_switches_features(Z, n_features=30)
    dz = np.linalg.norm(Z[:, None] - Z[None], axis=-1)
    dF = np.linalg.norm(F[:, None] - F[None], axis=-1)
    assert dF[dz > 0.3].min() > 0.05


def test_several_trajectories_come_as_a_list_and_seeds_reproduce():
    a = hidden_switches(50, n_trajectories=3, n_features=10, random_state=3)
    b = hidden_switches(50, n_trajectories=3, n_features=10, random_state=3)
    assert isinstance(a, list) and len(a) == 3
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)
    state = np.random.get_state()[1].copy()
    hidden_switches(20, n_features=5, random_state=None)
    np.testing.assert_array_equal(np.random.get_state()[1], state)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_frames": 0}, "n_frames"),
        ({"n_features": 2}, "n_features"),
        ({"noise": -1.0}, "noise"),
        ({"dt": 0.1}, "dt"),
        ({"x0": [0.0, 0.0, 5.0]}, "x0"),
        ({"x0": [0.0, 0.0]}, "x0"),
        ({"return_latent": "yes"}, "return_latent"),
    ],
)
def test_bad_arguments_raise_value_errors_naming_them(kwargs, name):
    with pytest.raises(ValueError, match=name):
        hidden_switches(**{"n_frames": 10, **kwargs})


def test_reference_bad_arguments_raise_value_errors_naming_them():
    with pytest.raises(ValueError, match="n_timescales"):
        hidden_switches_reference(n_timescales=8)
    with pytest.raises(ValueError, match="n_grid"):
        hidden_switches_reference(n_grid=10)
