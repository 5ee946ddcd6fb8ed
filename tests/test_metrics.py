import numpy as np
import pytest
from conftest import ar1

from sklss.metrics import (
    free_energy_profile,
    free_energy_rmse,
    implied_timescales,
    js_divergence,
    timescales_from_eigenvalues,
    vamp2_score,
)


@pytest.mark.parametrize("lag", [1, 3])
def test_vamp2_of_ar1_matches_squared_autocorrelation(lag):
    a = 0.8
    x = ar1(200_000, [a], random_state=1)
    # For a linear Gaussian process the one singular value at lag tau is a**tau.
    assert vamp2_score(x, lag) == pytest.approx(1 + a ** (2 * lag), abs=0.01)


def test_vamp2_counts_each_independent_process():
    a = np.array([0.9, 0.5])
    x = ar1(200_000, a, random_state=2)
    assert vamp2_score(x, 2) == pytest.approx(1 + np.sum(a**4), abs=0.01)
    assert vamp2_score(x, 2, n_components=1) == pytest.approx(1 + 0.9**4, abs=0.01)


def test_vamp2_is_larger_for_the_slow_coordinate_than_for_noise():
    rng = np.random.default_rng(0)
    slow = ar1(20_000, [0.95], random_state=3)
    noise = rng.normal(size=(20_000, 1))
    assert vamp2_score(slow, 1) > 1.8
    assert vamp2_score(noise, 1) < 1.01


def test_implied_timescales_of_ar1_processes():
    a = np.array([0.98, 0.9])
    x = ar1(300_000, a, random_state=4)
    ts = implied_timescales(x, 5)
    expected = -1 / np.log(a)
    np.testing.assert_allclose(ts, expected, rtol=0.08)
    # In physical units, dt scales every timescale.
    np.testing.assert_allclose(implied_timescales(x, 5, dt=0.5), 0.5 * ts)


def test_timescales_from_eigenvalues_edge_cases():
    ts = timescales_from_eigenvalues([np.exp(-1 / 10), 1.0, 0.0, -0.5], lag_time=2)
    np.testing.assert_allclose(ts[0], 20.0)
    assert np.isinf(ts[1])
    # An eigenvalue of zero or below has no relaxation timescale (RELIABILITY row 27).
    assert np.isnan(ts[2]) and np.isnan(ts[3])


def test_free_energy_profile_of_gaussian_is_parabola():
    rng = np.random.default_rng(0)
    x = rng.normal(size=2_000_000)
    F, edges = free_energy_profile(x, bins=40, range=(-2, 2))
    centres = 0.5 * (edges[1:] + edges[:-1])
    assert free_energy_rmse(F, 0.5 * centres**2) < 0.02
    assert F.min() == 0.0


def test_free_energy_rmse_ignores_additive_constant_but_charges_empty_bins():
    F = np.array([0.0, 1.0, 2.0, 3.0])
    G = np.array([5.0, 6.0, 7.0, 8.0])
    assert free_energy_rmse(F, G) == pytest.approx(0.0)
    assert free_energy_rmse(F, G + np.array([0, 0, 0.3, 0])) == pytest.approx(
        np.std([0, 0, 0.3, 0]), rel=1e-12
    )
    # A bin the model never visits counts at the cap (here the largest finite value, 4 kT);
    # bins at or above the cap in both profiles do not count.
    F2 = np.array([0.0, 1.0, 0.5, 4.0])
    G2 = np.array([0.0, 1.0, np.inf, 4.0])
    assert free_energy_rmse(F2, G2) == pytest.approx(np.sqrt((4.0 - 0.5) ** 2 / 3))
    # ... and so does an extra state the reference never visits.
    assert free_energy_rmse(G2, F2) == pytest.approx(np.sqrt((4.0 - 0.5) ** 2 / 3))
    # An explicit cap: the missing bin costs 2 - 0.5 kT.
    assert free_energy_rmse(F2, G2, max_free_energy=2.0) == pytest.approx(np.sqrt(1.5**2 / 3))
    with pytest.raises(ValueError, match="no populated bin"):
        free_energy_rmse([np.inf, np.inf], [1.0, np.inf])


def test_free_energy_rmse_restricts_to_low_free_energy_bins():
    F = np.array([0.0, 1.0, 5.0])
    G = np.array([0.0, 1.0, 9.0])
    assert free_energy_rmse(F, G, max_free_energy=4) == pytest.approx(0.0)
    assert free_energy_rmse(F, G) > 1.0


def test_js_divergence_bounds():
    p = np.array([1.0, 2.0, 3.0])
    assert js_divergence(p, 2 * p) == pytest.approx(0.0)
    assert js_divergence([1, 0], [0, 1]) == pytest.approx(1.0)
    assert 0 < js_divergence([1, 1], [1, 3]) < 1
    with pytest.raises(ValueError, match="same shape"):
        js_divergence([1, 2], [1, 2, 3])


def test_metrics_reject_nan_with_location():
    x = np.zeros((10, 1))
    x[4] = np.nan
    with pytest.raises(ValueError, match="trajectory 0, frame 4"):
        vamp2_score(x, 1)


def test_autocorrelation_of_ar1_is_geometric():
    from sklss.metrics import autocorrelation

    a = 0.9
    x = ar1(200_000, [a], random_state=5)
    acf = autocorrelation(x, 10)[:, 0]
    np.testing.assert_allclose(acf, a ** np.arange(11), atol=0.02)
    assert acf[0] == pytest.approx(1.0)


def test_autocorrelation_never_correlates_across_trajectories():
    from sklss.metrics import autocorrelation

    rng = np.random.default_rng(0)
    trajs = [rng.normal(size=(1000, 1)) for _ in range(20)]
    acf = autocorrelation(trajs, 3)[:, 0]
    np.testing.assert_allclose(acf[1:], 0, atol=0.03)


def test_autocorrelation_timescales_of_ar1_with_block_errors():
    from sklss.metrics import autocorrelation_timescales

    a = np.array([0.98, 0.8])
    x = ar1(400_000, a, random_state=6)
    ts, se = autocorrelation_timescales(x, dt=2.0)
    expected = -2.0 / np.log(a)
    np.testing.assert_allclose(ts, expected, rtol=0.05)
    assert np.all(se > 0) and np.all(se < 0.1 * ts)
    # The block error should be of the same order as the actual error.
    assert np.all(np.abs(ts - expected) < 5 * se + 0.01 * expected)


def test_block_average_standard_error():
    from sklss.metrics import block_average

    mean, se = block_average([1.0, 2.0, 3.0, 4.0, 5.0])
    assert mean == pytest.approx(3.0)
    assert se == pytest.approx(np.std([1, 2, 3, 4, 5], ddof=1) / np.sqrt(5))
    with pytest.raises(ValueError, match="two blocks"):
        block_average([1.0])


def test_implied_timescales_methods_agree_on_ar1():
    x = ar1(300_000, [0.95], random_state=7)
    vac = implied_timescales(x, 2)
    acf = implied_timescales(x, 2, method="autocorrelation")
    np.testing.assert_allclose(vac, acf, rtol=0.05)
    with pytest.raises(ValueError, match="method"):
        implied_timescales(x, 2, method="magic")


def test_markov_timescales_of_a_two_state_chain():
    from sklss.metrics import markov_timescales

    rng = np.random.default_rng(0)
    p = 0.02  # switching probability per frame: eigenvalue 1 - 2p
    flips = rng.random(200_000) < p
    x = (np.cumsum(flips) % 2).astype(float)
    ts = markov_timescales(x, [-0.5, 0.5, 1.5], 1)
    assert ts[0] == pytest.approx(-1 / np.log(1 - 2 * p), rel=0.05)
    # A list of trajectories pools the counts; dt converts frames to time.
    ts_list = markov_timescales([x[:100_000], x[100_000:]], [-0.5, 0.5, 1.5], 1, dt=2.0)
    assert ts_list[0] == pytest.approx(2 * ts[0], rel=0.02)


# --- excursions into a rare state ------------------------------------------------------------


def test_excursions_follow_core_set_boundaries():
    from sklss.metrics import excursion_statistics

    # in at 1, recrosses the gap without leaving, out at 5; in again at 7 and still in.
    phi = np.array([-2.0, 0.5, 0.1, -0.5, 1.0, -1.5, -2.0, 1.2, 1.3])
    s = excursion_statistics(phi, enter=(0.3, 2.0), leave=(-np.inf, -1.0), dt=2.0)
    assert s.n_entries == 2 and s.n_censored == 1
    np.testing.assert_array_equal(s.stays, [8.0])
    assert s.mean_stay == 8.0 and np.isnan(s.mean_stay_std_error)
    assert s.inside_fraction == 6 / 9
    assert s.entries_per_time == 2 / 18
    # A trajectory that starts inside: its first stay is neither an entry nor a stay.
    s = excursion_statistics([phi[1:], phi], enter=(0.3, 2.0), leave=(-np.inf, -1.0))
    assert s.n_entries == 1 + 2 and s.n_censored == 2
    np.testing.assert_array_equal(s.stays, [4.0])


def test_excursions_of_a_two_state_chain_have_the_exact_rate_and_stay():
    from sklss.metrics import excursion_statistics

    rng = np.random.default_rng(0)
    p_in, p_out, n = 0.002, 0.05, 400_000  # entry and exit probabilities per frame
    state = np.empty(n, dtype=bool)
    state[0] = False
    u = rng.random(n)
    for t in range(1, n):
        state[t] = (u[t] >= p_out) if state[t - 1] else (u[t] < p_in)
    x = np.where(state, 1.0, -2.0) + 0.1 * rng.normal(size=n)
    s = excursion_statistics(x, enter=(0.3, 2.0), leave=(-np.inf, -1.0))
    pi_in = p_in / (p_in + p_out)
    exact_rate = (1 - pi_in) * p_in  # entries per frame
    assert abs(s.entries_per_time / exact_rate - 1) < 0.08
    assert abs(s.mean_stay - 1 / p_out) < 3 * s.mean_stay_std_error
    assert abs(s.inside_fraction / pi_in - 1) < 0.1


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(enter=(0.0, 2.0), leave=(-1.0, 0.5)), "must not overlap"),
        (dict(enter=(2.0, 0.0), leave=(-3.0, -1.0)), r"\(low, high\) intervals"),
        (dict(enter=(0.3, 2.0), leave=(-3.0, -1.0), dt=0.0), "dt must be positive"),
    ],
)
def test_excursion_arguments_are_checked(kwargs, match):
    from sklss.metrics import excursion_statistics

    with pytest.raises(ValueError, match=match):
        excursion_statistics(np.zeros(5), **kwargs)


def test_excursions_name_the_bad_trajectory():
    from sklss.metrics import excursion_statistics

    with pytest.raises(ValueError, match="trajectory 1 of x contains NaN or inf at frame 2"):
        excursion_statistics([np.zeros(4), np.array([0, 1, np.nan])], (0.3, 2), (-3, -1))
    with pytest.raises(ValueError, match=r"x must be one coordinate per frame; got shape \(3, 2\)"):
        excursion_statistics(np.zeros((3, 2)), (0.3, 2), (-3, -1))


def _tetrahedral_frames(noise, n_frames, seed):
    """A chiral centre (atom 1) with three bonded neighbours, jittered."""
    base = np.array([[0.0, 0, 0], [0.15, 0, 0], [0.2, 0.14, 0], [0.2, -0.07, 0.12]])
    rng = np.random.default_rng(seed)
    return base + noise * rng.standard_normal((n_frames, 4, 3))


BONDS = [(0, 1), (1, 2), (1, 3)]


def test_geometry_fidelity_of_an_identical_ensemble():
    from sklss.metrics import geometry_fidelity

    md = _tetrahedral_frames(0.004, 20_000, 0)
    same = _tetrahedral_frames(0.004, 20_000, 1)
    g = geometry_fidelity(md, same, bonds=BONDS)
    np.testing.assert_allclose(g.bond_spread_ratio, 1.0, atol=0.03)
    np.testing.assert_allclose(g.angle_spread_ratio, 1.0, atol=0.03)
    assert np.abs(g.bond_mean_error).max() < 2e-4
    assert np.abs(g.angle_mean_error).max() < 0.2
    assert g.stereocentres == [1] and g.chirality_kept == 1.0
    assert g.bond_outlier_fraction < 1e-3
    assert len(g.angle_names) == 3 and g.bond_names[0] == "atom0 atom1"


def test_geometry_fidelity_sees_blurred_bonds_and_mirror_images():
    from sklss.metrics import geometry_fidelity

    md = _tetrahedral_frames(0.004, 5_000, 0)
    blurred = _tetrahedral_frames(0.012, 5_000, 1)
    g = geometry_fidelity(md, blurred, bonds=BONDS)
    assert np.all(g.bond_spread_ratio > 2.5) and np.all(g.angle_spread_ratio > 2.0)
    assert g.bond_outlier_fraction > 0.05
    # A mirror image has the same bonds and angles and the other handedness.
    mirror = md * np.array([1.0, 1.0, -1.0])
    half = np.concatenate([md[:2_500], mirror[2_500:]])
    m = geometry_fidelity(md, half, bonds=BONDS)
    np.testing.assert_allclose(m.bond_spread_ratio, 1.0, atol=1e-9)
    assert m.chirality_kept == pytest.approx(0.5)


def test_geometry_fidelity_on_alanine_finds_only_the_c_alpha_stereocentre():
    md = pytest.importorskip("mdtraj")
    from sklss.datasets import alanine_dipeptide_structure
    from sklss.metrics import geometry_fidelity

    heavy = alanine_dipeptide_structure().atom_slice(
        alanine_dipeptide_structure().topology.select("element != H")
    )
    rng = np.random.default_rng(0)
    frames = heavy.xyz + 0.003 * rng.standard_normal((400, heavy.n_atoms, 3))
    traj = md.Trajectory(frames.astype(np.float32), heavy.topology)
    g = geometry_fidelity(traj, [traj[:200], traj[200:]])
    ca = heavy.topology.select("name CA")[0]
    assert g.stereocentres == [ca]
    assert len(g.bond_names) == 9 and len(g.angle_names) == 11
    # C-alpha has three heavy neighbours (N, C, CB): three bonds and three angles at it.
    assert sum("ALA2-CA" in n.split() for n in g.bond_names) == 3
    assert sum(n.split()[1] == "ALA2-CA" for n in g.angle_names) == 3


def test_geometry_fidelity_errors_name_the_problem():
    from sklss.metrics import geometry_fidelity

    md = _tetrahedral_frames(0.004, 50, 0)
    with pytest.raises(ValueError, match="bonds are needed"):
        geometry_fidelity(md, md)
    with pytest.raises(ValueError, match="3 atoms per frame"):
        geometry_fidelity(md, md[:, :3], bonds=BONDS)
    bad = md.copy()
    bad[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="generated: trajectory 0 contains NaN"):
        geometry_fidelity(md, bad, bonds=BONDS)
    with pytest.raises(ValueError, match=r"atom indices in \[0, 4\)"):
        geometry_fidelity(md, md, bonds=[(0, 7)])
