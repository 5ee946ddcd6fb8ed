"""Tests of the toy-system generators in sklss.datasets against their known answers.

The statistical checks of each system (stationary histogram, Markov-state-model timescales)
share one simulated data set, built once per module with a fixed seed. Each tolerance comes
from repeating the same estimate with five or six other seeds (the spread is quoted at each
test) and allows for several standard deviations of it plus the small time-step bias of
Euler-Maruyama.
"""

import math

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from threadpoolctl import threadpool_limits

from sklss.datasets import (
    _four_well,
    _hidden_wells,
    four_well,
    four_well_potential,
    four_well_reference,
    hidden_wells,
    hidden_wells_features,
    hidden_wells_potential,
    hidden_wells_reference,
)
from sklss.metrics import free_energy_profile, free_energy_rmse, implied_timescales


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # The dense linear algebra here is small; multi-threaded BLAS only adds contention
    # (tens of seconds on a busy machine).
    with threadpool_limits(limits=1):
        yield


def msm_timescales(dtrajs, n_states, lag, k):
    """Implied timescales (in frames) of a reversible Markov state model.

    Counts are symmetrised, the standard estimate for equilibrium data; unvisited states are
    dropped. ``T = diag(c)^-1 C`` has the eigenvalues of the symmetric
    ``diag(c)^-1/2 C diag(c)^-1/2``.
    """
    start = np.concatenate([d[:-lag] for d in dtrajs])
    end = np.concatenate([d[lag:] for d in dtrajs])
    C = np.bincount(start * n_states + end, minlength=n_states**2).reshape(n_states, n_states)
    C = C + C.T
    c = C.sum(axis=1)
    visited = c > 0
    C, c = C[visited][:, visited], c[visited]
    lam = np.linalg.eigvalsh(C / np.sqrt(np.outer(c, c)))[::-1]
    return -lag / np.log(lam[1 : k + 1])


# ----------------------------------------------------------------------------------------
# four_well: data shared by the statistical tests
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def four_well_ref():
    return four_well_reference()


@pytest.fixture(scope="module")
def four_well_long():
    # 1000 walkers x 20 000 steps = 2e7 steps, started from the stationary density, so
    # there is no burn-in; about 2 s.
    return four_well(20_000, n_trajectories=1000, random_state=1234)


def test_four_well_stationary_histogram_matches_exact_boltzmann_density(four_well_long):
    F, edges = free_energy_profile(four_well_long, bins=100, range=(-1.1, 1.05))
    centres = 0.5 * (edges[1:] + edges[:-1])
    F_exact = four_well_potential(centres) / _four_well.DEFAULT_KT
    # Five seeds gave 0.025-0.047 kT (statistics plus ~0.02 kT of time-step bias).
    assert free_energy_rmse(F_exact, F, max_free_energy=4.0) < 0.075


def test_four_well_msm_timescales_match_reference_within_5_percent(four_well_long, four_well_ref):
    edges = np.linspace(-1.1, 1.05, 151)
    dtrajs = [np.clip(np.digitize(x[:, 0], edges) - 1, 0, 149) for x in four_well_long]
    t_msm = msm_timescales(dtrajs, 150, lag=200, k=3)
    # Five seeds: relative errors of +0.9 +- 1.3 %, +0.5 +- 1.5 %, +0.1 +- 1.3 % (mean +- sd)
    # for the three slow processes; the 150-bin MSM at lag 200 is itself within 0.05 % of
    # the reference, and Euler-Maruyama lengthens the slowest timescale by ~0.8 %.
    np.testing.assert_allclose(t_msm, four_well_ref.timescales[:3], rtol=0.05)


# ----------------------------------------------------------------------------------------
# four_well: form of the output, randomness, arguments
# ----------------------------------------------------------------------------------------


def test_four_well_returns_one_float64_array_for_one_trajectory():
    X = four_well(1000, stride=10, random_state=0)
    assert isinstance(X, np.ndarray)
    assert X.shape == (100, 1)
    assert X.dtype == np.float64
    assert X.flags.c_contiguous


@pytest.mark.parametrize("n_trajectories", [3, _four_well._MIN_VECTOR_WALKERS])  # both routes
def test_four_well_returns_a_list_for_several_trajectories(n_trajectories):
    X = four_well(101, n_trajectories=n_trajectories, stride=2, random_state=0)
    assert isinstance(X, list) and len(X) == n_trajectories
    for x in X:
        assert x.shape == (50, 1) and x.dtype == np.float64 and x.flags.c_contiguous
    assert not np.allclose(X[0], X[1])


@pytest.mark.parametrize("n_trajectories", [1, _four_well._MIN_VECTOR_WALKERS])
def test_four_well_stride_saves_every_stride_th_step_of_the_same_chain(n_trajectories):
    full = four_well(600, n_trajectories=n_trajectories, x0=0.1, random_state=3)
    strided = four_well(600, n_trajectories=n_trajectories, stride=6, x0=0.1, random_state=3)
    if n_trajectories == 1:
        full, strided = [full], [strided]
    for f, s in zip(full, strided):
        assert s.shape == (100, 1)
        np.testing.assert_array_equal(s, f[::6])


def test_four_well_x0_is_the_first_frame():
    X = four_well(50, n_trajectories=2, x0=[-0.7, 0.3], random_state=0)
    assert X[0][0, 0] == -0.7 and X[1][0, 0] == 0.3
    assert four_well(50, x0=0.25, random_state=0)[0, 0] == 0.25


@pytest.mark.parametrize("n_trajectories", [1, _four_well._MIN_VECTOR_WALKERS])
def test_four_well_same_int_seed_gives_identical_data_other_seed_differs(n_trajectories):
    a = np.hstack(four_well(500, n_trajectories=n_trajectories, random_state=7))
    b = np.hstack(four_well(500, n_trajectories=n_trajectories, random_state=7))
    c = np.hstack(four_well(500, n_trajectories=n_trajectories, random_state=8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("random_state", [0, None, np.random.RandomState(0)])
def test_four_well_leaves_numpy_global_random_state_untouched(random_state):
    np.random.seed(12345)
    before = np.random.get_state()
    four_well(200, n_trajectories=2, random_state=random_state)
    after = np.random.get_state()
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


def test_four_well_advances_a_given_randomstate_or_generator():
    for rng in (np.random.RandomState(0), np.random.default_rng(0)):
        a = four_well(200, random_state=rng)
        b = four_well(200, random_state=rng)
        assert not np.allclose(a, b)
    np.testing.assert_array_equal(
        four_well(200, random_state=np.random.RandomState(5)),
        four_well(200, random_state=np.random.RandomState(5)),
    )


def test_four_well_is_euler_maruyama_step_by_step():
    # White box: with x0 given, the scalar route draws stride * n_frames normals at once.
    n, dt, kT, D, x0 = 300, 1e-3, 0.5, 0.25, -0.2
    X = four_well(n, x0=x0, random_state=11)[:, 0]
    xi = np.random.default_rng(11).standard_normal(n)
    x, expected = x0, [x0]
    for i in range(n - 1):
        h = 1e-6
        grad = (four_well_potential(x + h) - four_well_potential(x - h)) / (2 * h)
        x = x - D / kT * grad * dt + math.sqrt(2 * D * dt) * xi[i]
        expected.append(float(x))
    np.testing.assert_allclose(X, expected, rtol=0, atol=1e-7)


def test_four_well_scalar_and_vectorised_integrators_agree_step_for_step():
    a, sigma = 5e-4, math.sqrt(5e-4)
    scalar = _four_well._run_scalar(0.3, 500, 2, a, sigma, np.random.default_rng(4))
    walkers = _four_well._run_walkers(np.array([0.3]), 500, 2, a, sigma, np.random.default_rng(4))
    np.testing.assert_allclose(scalar, walkers[:, 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_steps": 0}, "n_steps"),
        ({"n_steps": 10.5}, "n_steps"),
        ({"n_trajectories": 0}, "n_trajectories"),
        ({"n_trajectories": True}, "n_trajectories"),
        ({"stride": 0}, "stride"),
        ({"stride": 1000}, "stride"),
        ({"dt": -1e-3}, "dt"),
        ({"dt": float("nan")}, "dt"),
        ({"dt": 0.05}, "dt"),  # so large that Euler-Maruyama is unstable
        ({"kT": 0.0}, "kT"),
        ({"diffusion": -1.0}, "diffusion"),
        ({"x0": [0.0, 0.1, 0.2]}, "x0"),
        ({"x0": 5.0}, "x0"),
        ({"x0": float("inf")}, "x0"),
        ({"random_state": "seed"}, "random_state"),
        ({"random_state": -1}, "random_state"),
    ],
)
def test_four_well_bad_argument_raises_value_error_naming_it(kwargs, name):
    args = {"n_steps": 100} | kwargs
    with pytest.raises(ValueError, match=f"'{name}'"):
        four_well(**args)


# ----------------------------------------------------------------------------------------
# four_well_reference
# ----------------------------------------------------------------------------------------


def test_four_well_reference_density_is_normalised_boltzmann(four_well_ref):
    ref = four_well_ref
    h = np.diff(ref.edges)
    np.testing.assert_allclose(h, h[0])
    np.testing.assert_allclose(ref.grid, 0.5 * (ref.edges[1:] + ref.edges[:-1]))
    assert ref.stationary_density.sum() * h[0] == pytest.approx(1.0)
    assert ref.free_energy.min() == 0.0
    u = four_well_potential(ref.grid) / _four_well.DEFAULT_KT
    np.testing.assert_allclose(ref.free_energy, u - u.min(), atol=1e-12)
    ratio = ref.stationary_density * np.exp(ref.free_energy)
    np.testing.assert_allclose(ratio, ratio[0], rtol=1e-10)
    # The domain reaches 30 kT above the minimum on both sides.
    assert min(ref.free_energy[0], ref.free_energy[-1]) > 25


def test_four_well_reference_timescales_are_known_values_and_scale_with_frames(four_well_ref):
    ref = four_well_ref
    assert ref.eigenvalues[0] == 0.0
    assert np.all(np.diff(ref.eigenvalues) < 0)
    # Slowest three in steps at the defaults (kT=0.5, D=0.25, dt=1e-3), converged in n_grid.
    np.testing.assert_allclose(ref.timescales[:3], [3336, 507.0, 260.4], rtol=2e-3)
    np.testing.assert_allclose(
        four_well_reference(stride=10, n_grid=300).timescales[:3],
        four_well_reference(stride=1, n_grid=300).timescales[:3] / 10,
    )
    fine = four_well_reference(n_grid=2000, n_timescales=3)
    np.testing.assert_allclose(ref.timescales[:3], fine.timescales, rtol=5e-4)
    # Doubling D halves every timescale.
    np.testing.assert_allclose(
        four_well_reference(diffusion=0.5, n_grid=300).timescales,
        four_well_reference(diffusion=0.25, n_grid=300).timescales / 2,
    )


def test_four_well_reference_transition_matrix_is_stochastic_stationary_and_markov():
    ref = four_well_reference(n_grid=300)
    P100, P200, P300 = (ref.transition_matrix(t) for t in (100, 200, 300))
    assert P100.shape == (300, 300)
    assert P100.min() >= 0
    np.testing.assert_allclose(P100.sum(axis=1), 1.0, atol=1e-12)
    p = ref.stationary_density / ref.stationary_density.sum()
    np.testing.assert_allclose(p @ P100, p, atol=1e-10)
    np.testing.assert_allclose(P100 @ P200, P300, atol=1e-8)
    # Its eigenvalues are exp(-lag / t_k).
    lam = np.sort(np.linalg.eigvals(P200).real)[::-1][1:4]
    np.testing.assert_allclose(-200 / np.log(lam), ref.timescales[:3], rtol=1e-6)
    with pytest.raises(ValueError, match="'lag_time'"):
        ref.transition_matrix(-1)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_grid": 5}, "n_grid"),
        ({"n_timescales": 0}, "n_timescales"),
        ({"n_grid": 20, "n_timescales": 20}, "n_timescales"),
        ({"stride": 0}, "stride"),
        ({"kT": -1}, "kT"),
    ],
)
def test_four_well_reference_bad_argument_raises_value_error_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        four_well_reference(**kwargs)


def test_four_well_potential_has_the_papers_four_minima():
    x = np.linspace(-1, 1, 20001)
    v = four_well_potential(x)
    minima = x[1:-1][(v[1:-1] < v[:-2]) & (v[1:-1] < v[2:])]
    np.testing.assert_allclose(minima, [-0.739, -0.224, 0.269, 0.673], atol=2e-3)
    assert four_well_potential(0.0) == pytest.approx(
        2 * (0.8 + 0.2 * math.exp(-20) + 0.5 * math.exp(-10))
    )


# ----------------------------------------------------------------------------------------
# hidden_wells: data shared by the statistical tests
# ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def hidden_ref():
    return hidden_wells_reference()


@pytest.fixture(scope="module")
def hidden_long():
    # 300 walkers x 3000 frames = 9e5 frames (about 2600 slowest relaxation times).
    return hidden_wells(
        3000, n_trajectories=300, n_features=20, random_state=2024, return_latent=True
    )


def test_hidden_wells_stationary_histogram_matches_exact_boltzmann_density(hidden_long):
    _, Z = hidden_long
    Z = np.concatenate(Z)
    edges = np.linspace(-2.4, 2.4, 25)
    hist, _, _ = np.histogram2d(Z[:, 0], Z[:, 1], bins=[edges, edges])
    # Exact probability of each bin, by integrating exp(-V) on an 8 x 8 sub-grid per bin.
    sub = np.linspace(-2.4, 2.4, 24 * 8 + 1)
    sub = 0.5 * (sub[1:] + sub[:-1])
    SX, SY = np.meshgrid(sub, sub, indexing="ij")
    w = np.exp(-hidden_wells_potential(np.stack([SX, SY], -1)))
    exact = w.reshape(24, 8, 24, 8).sum(axis=(1, 3))
    with np.errstate(divide="ignore"):
        F = -np.log(hist)
    F_exact = -np.log(exact)
    F_exact -= F_exact.min()
    # Six seeds gave 0.030-0.055 kT over the bins up to 4 kT.
    assert free_energy_rmse(F_exact.ravel(), F.ravel(), max_free_energy=4.0) < 0.1


def test_hidden_wells_msm_timescales_match_reference_within_7_percent(hidden_long, hidden_ref):
    _, Z = hidden_long
    edges = np.linspace(-2.5, 2.5, 41)
    dtrajs = [
        40 * np.clip(np.digitize(z[:, 0], edges) - 1, 0, 39)
        + np.clip(np.digitize(z[:, 1], edges) - 1, 0, 39)
        for z in Z
    ]
    t_msm = msm_timescales(dtrajs, 1600, lag=20, k=2)
    # Six seeds: relative errors of -1.5 +- 1.3 % and -0.9 +- 0.7 % (mean +- sd) for the
    # two slow timescales; 7 % leaves room for a seed-to-seed spread of up to 2 %.
    np.testing.assert_allclose(t_msm, hidden_ref.timescales[:2], rtol=0.07)


def test_hidden_wells_reference_eigenfunction_decays_at_its_timescale(hidden_long, hidden_ref):
    _, Z = hidden_long
    ref = hidden_ref
    lag = 20
    acf = []
    for k in (1, 2):
        psi = ref.eigenfunctions[k]
        num = den = 0.0
        for z in Z:
            ix = np.clip(np.digitize(z[:, 0], ref.edges_x) - 1, 0, len(ref.grid_x) - 1)
            iy = np.clip(np.digitize(z[:, 1], ref.edges_y) - 1, 0, len(ref.grid_y) - 1)
            f = psi[ix, iy]
            num += np.dot(f[:-lag], f[lag:])
            den += np.dot(f, f) * (len(f) - lag) / len(f)
        acf.append(num / den)
    # E[psi_k(z_0) psi_k(z_lag)] = exp(-lag / t_k) for the generator's eigenfunctions; six
    # seeds deviated by at most 0.003 (0.94 and 0.82 expected).
    np.testing.assert_allclose(acf, np.exp(-lag / ref.timescales[:2]), atol=0.01)


def test_hidden_wells_linear_tica_misses_the_slow_timescales(hidden_long, hidden_ref):
    X, _ = hidden_long
    t_tica = implied_timescales(X[:100], 20, n_components=2)
    # The features hide the slow processes from linear models (about 40 % and 55 % here).
    assert np.all(t_tica < 0.75 * hidden_ref.timescales[:2])


# ----------------------------------------------------------------------------------------
# hidden_wells: form of the output, map, randomness, arguments
# ----------------------------------------------------------------------------------------


def test_hidden_wells_returns_float64_arrays_and_latent_on_request():
    X = hidden_wells(100, n_features=12, random_state=0)
    assert isinstance(X, np.ndarray) and X.shape == (100, 12) and X.dtype == np.float64
    X, Z = hidden_wells(100, n_features=12, random_state=0, return_latent=True)
    assert Z.shape == (100, 2) and Z.dtype == np.float64
    np.testing.assert_array_equal(X, hidden_wells(100, n_features=12, random_state=0))


@pytest.mark.parametrize("n_trajectories", [3, _hidden_wells._MIN_VECTOR_WALKERS])  # both routes
def test_hidden_wells_returns_lists_for_several_trajectories(n_trajectories):
    X, Z = hidden_wells(40, n_trajectories=n_trajectories, random_state=0, return_latent=True)
    assert isinstance(X, list) and isinstance(Z, list)
    assert len(X) == len(Z) == n_trajectories
    for x, z in zip(X, Z):
        assert x.shape == (40, 20) and z.shape == (40, 2)
        assert x.dtype == z.dtype == np.float64 and x.flags.c_contiguous
    assert not np.allclose(Z[0], Z[1])


@pytest.mark.parametrize("n_trajectories", [1, _hidden_wells._MIN_VECTOR_WALKERS])
def test_hidden_wells_stride_saves_every_stride_th_step_of_the_same_chain(n_trajectories):
    kw = dict(n_trajectories=n_trajectories, x0=[-1.3, 0.0], noise=0.0, return_latent=True)
    _, full = hidden_wells(300, stride=1, random_state=5, **kw)
    _, strided = hidden_wells(100, stride=3, random_state=5, **kw)
    if n_trajectories == 1:
        full, strided = [full], [strided]
    for f, s in zip(full, strided):
        np.testing.assert_array_equal(s, f[::3])


def test_hidden_wells_features_are_the_fixed_map_of_the_latent_plus_noise():
    X0, Z = hidden_wells(2000, noise=0.0, random_state=1, return_latent=True)
    np.testing.assert_allclose(X0, hidden_wells_features(Z), atol=1e-12)
    X, Z2 = hidden_wells(2000, noise=0.1, random_state=1, return_latent=True)
    # The noise is drawn after the dynamics, so the latent path does not depend on it.
    np.testing.assert_array_equal(Z, Z2)
    residual = X - X0
    assert residual.std() == pytest.approx(0.1, rel=0.03)
    assert abs(residual.mean()) < 0.005


def test_hidden_wells_map_depends_on_map_seed_not_random_state():
    Z = np.random.default_rng(0).normal(size=(50, 2))
    np.testing.assert_array_equal(hidden_wells_features(Z), hidden_wells_features(Z, map_seed=0))
    assert not np.allclose(hidden_wells_features(Z), hidden_wells_features(Z, map_seed=1))
    _, Za = hidden_wells(300, noise=0.0, random_state=0, return_latent=True)
    Xb, Zb = hidden_wells(300, noise=0.0, random_state=1, return_latent=True)
    np.testing.assert_allclose(Xb, hidden_wells_features(Zb), atol=1e-12)
    assert not np.allclose(Za, Zb)
    F = hidden_wells_features([Z, Z[:10]], n_features=7)
    assert isinstance(F, list) and F[0].shape == (50, 7) and F[1].shape == (10, 7)


@pytest.mark.parametrize("n_features", [10, 20, 30])
def test_hidden_wells_map_is_injective_on_the_visited_region(n_features):
    # Latent points from the stationary density: the feature distance between two of them
    # is at least a fixed fraction of their latent distance (no two states are merged).
    Z = _hidden_wells._sample_stationary(1500, 1.0, np.random.default_rng(0))
    ratio = pdist(hidden_wells_features(Z, n_features=n_features)) / pdist(Z)
    assert ratio.min() > 0.2


@pytest.mark.parametrize("n_trajectories", [1, _hidden_wells._MIN_VECTOR_WALKERS])
def test_hidden_wells_same_int_seed_gives_identical_data_other_seed_differs(n_trajectories):
    a = np.hstack(hidden_wells(200, n_trajectories=n_trajectories, random_state=7))
    b = np.hstack(hidden_wells(200, n_trajectories=n_trajectories, random_state=7))
    c = np.hstack(hidden_wells(200, n_trajectories=n_trajectories, random_state=8))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


@pytest.mark.parametrize("random_state", [0, None, np.random.RandomState(0)])
def test_hidden_wells_leaves_numpy_global_random_state_untouched(random_state):
    np.random.seed(54321)
    before = np.random.get_state()
    hidden_wells(100, n_trajectories=2, random_state=random_state)
    after = np.random.get_state()
    assert before[0] == after[0] and before[2:] == after[2:]
    np.testing.assert_array_equal(before[1], after[1])


def test_hidden_wells_is_euler_maruyama_step_by_step():
    # White box: with x0 given, the scalar route draws (stride * n_frames, 2) normals.
    n, dt, x0 = 200, _hidden_wells.DEFAULT_DT, np.array([1.0, -0.5])
    _, Z = hidden_wells(n, stride=1, x0=x0, noise=0.0, random_state=3, return_latent=True)
    xi = np.random.default_rng(3).standard_normal((n, 2))
    z, expected, h = x0.copy(), [x0.copy()], 1e-6
    for i in range(n - 1):
        grad = np.array(
            [
                hidden_wells_potential(z + [h, 0]) - hidden_wells_potential(z - [h, 0]),
                hidden_wells_potential(z + [0, h]) - hidden_wells_potential(z - [0, h]),
            ]
        ) / (2 * h)
        z = z - grad * dt + math.sqrt(2 * dt) * xi[i]
        expected.append(z)
    np.testing.assert_allclose(Z, expected, rtol=0, atol=1e-7)


def test_hidden_wells_scalar_and_vectorised_integrators_agree_step_for_step():
    a, sigma, z0 = 4e-3, math.sqrt(8e-3), np.array([[0.5, 1.0]])
    scalar = _hidden_wells._run_scalar(z0[0], 300, 3, a, sigma, np.random.default_rng(9))
    walkers = _hidden_wells._run_walkers(z0, 300, 3, a, sigma, np.random.default_rng(9))
    np.testing.assert_allclose(scalar, walkers[:, 0], rtol=0, atol=1e-10)


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"n_frames": 0}, "n_frames"),
        ({"n_trajectories": -2}, "n_trajectories"),
        ({"n_features": 1}, "n_features"),
        ({"noise": -0.1}, "noise"),
        ({"noise": float("inf")}, "noise"),
        ({"stride": 0}, "stride"),
        ({"dt": 0.0}, "dt"),
        ({"dt": 0.2}, "dt"),  # unstable step
        ({"kT": float("nan")}, "kT"),
        ({"diffusion": 0}, "diffusion"),
        ({"map_seed": -1}, "map_seed"),
        ({"map_seed": 1.5}, "map_seed"),
        ({"x0": [0.0, 0.0, 0.0]}, "x0"),
        ({"x0": [10.0, 0.0]}, "x0"),
        ({"random_state": 1.5}, "random_state"),
        ({"return_latent": "yes"}, "return_latent"),
    ],
)
def test_hidden_wells_bad_argument_raises_value_error_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        hidden_wells(**({"n_frames": 10} | kwargs))


# ----------------------------------------------------------------------------------------
# hidden_wells_reference
# ----------------------------------------------------------------------------------------


def test_hidden_wells_reference_density_and_eigenfunctions_are_normalised(hidden_ref):
    ref = hidden_ref
    hx, hy = np.diff(ref.edges_x)[0], np.diff(ref.edges_y)[0]
    assert ref.stationary_density.shape == (150, 150)
    assert ref.stationary_density.sum() * hx * hy == pytest.approx(1.0)
    assert ref.free_energy.min() == 0.0
    p = (ref.stationary_density * hx * hy).ravel()
    psi = ref.eigenfunctions.reshape(len(ref.eigenfunctions), -1)
    np.testing.assert_allclose((psi * p) @ psi.T, np.eye(len(psi)), atol=1e-8)
    np.testing.assert_allclose(psi[0], 1.0, atol=1e-8)
    # The box reaches 20 kT above the minimum on every side.
    assert min(ref.free_energy[[0, -1]].min(), ref.free_energy[:, [0, -1]].min()) > 19


def test_hidden_wells_reference_has_two_slow_processes_in_frames(hidden_ref):
    t = hidden_ref.timescales
    assert hidden_ref.eigenvalues[0] == 0.0
    np.testing.assert_allclose(t[:3], [340.0, 98.9, 10.3], rtol=5e-3)
    assert t[0] / t[1] > 3 and t[1] / t[2] > 9
    np.testing.assert_allclose(
        hidden_wells_reference(stride=10, n_grid=60).timescales,
        hidden_wells_reference(stride=5, n_grid=60).timescales / 2,
    )
    np.testing.assert_allclose(hidden_wells_reference(n_grid=100).timescales[:2], t[:2], rtol=3e-3)


@pytest.mark.parametrize(
    "kwargs, name",
    [({"n_grid": 3}, "n_grid"), ({"n_timescales": 0}, "n_timescales"), ({"dt": -1}, "dt")],
)
def test_hidden_wells_reference_bad_argument_raises_value_error_naming_it(kwargs, name):
    with pytest.raises(ValueError, match=f"'{name}'"):
        hidden_wells_reference(**kwargs)


def test_hidden_wells_potential_has_three_wells_and_checks_its_input():
    for centre in _hidden_wells._CENTRES:
        g = centre + np.stack(np.meshgrid(*[np.linspace(-0.2, 0.2, 41)] * 2), -1)
        v = hidden_wells_potential(g)
        i = np.unravel_index(np.argmin(v), v.shape)
        assert 0 < i[0] < 40 and 0 < i[1] < 40  # a local minimum inside the patch
    with pytest.raises(ValueError, match="length 2"):
        hidden_wells_potential(np.zeros((4, 3)))


def test_public_names_are_exported():
    import sklss.datasets as ds

    assert set(ds.__all__) == {
        "alanine_dipeptide",
        "alanine_dipeptide_rare_event",
        "alanine_dipeptide_structure",
        "bead_chain",
        "bead_chain_configurations",
        "bond_lengths",
        "chain_fidelity",
        "end_to_end_distance",
        "radius_of_gyration",
        "four_well",
        "four_well_potential",
        "four_well_reference",
        "hidden_switches",
        "hidden_switches_features",
        "hidden_switches_latent",
        "hidden_switches_potential",
        "hidden_switches_reference",
        "hidden_wells",
        "hidden_wells_features",
        "hidden_wells_potential",
        "hidden_wells_reference",
    }


@pytest.mark.parametrize("make", ["four_well", "hidden_wells", "hidden_switches"])
def test_unstable_time_step_is_refused_with_the_largest_stable_one(make):
    import sklss.datasets as ds

    with pytest.raises(ValueError, match=r"'dt' parameter is too large.*use dt <= "):
        getattr(ds, make)(100, dt=0.5, random_state=0)
