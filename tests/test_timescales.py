"""Honest implied timescales: the noise floor, the non-reversible estimator, held-out
timescales with bootstrap error bars, and timescales against the lag time."""

import numpy as np
import pytest
from conftest import ar1, flip_chain
from conftest import small_srv as shared_small_srv
from sklearn.exceptions import NotFittedError

from sklss import SRVTransformer
from sklss._covariance import (
    covariances_from_moments,
    koopman_matrix,
    lagged_covariances,
    lagged_moments,
)
from sklss._validation import lagged_pairs
from sklss.metrics import (
    eigenvalue_noise_floor,
    implied_timescales,
    implied_timescales_vs_lag,
    timescales_from_eigenvalues,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")

T_SLOW = -1 / np.log(0.9)  # timescale of an AR(1) process with coefficient 0.9, in frames


def var1(n_frames, A, random_state=0, burn_in=1000):
    """Vector AR(1) process x_{t+1} = A x_t + N(0, I) after a burn-in."""
    rng = np.random.default_rng(random_state)
    A = np.asarray(A, dtype=np.float64)
    noise = rng.normal(size=(n_frames + burn_in, len(A)))
    x = np.zeros_like(noise)
    for t in range(1, len(x)):
        x[t] = A @ x[t - 1] + noise[t]
    return x[burn_in:]


def chain_and_noise(n_frames, random_state, n_noise=2):
    """A slow two-state chain (eigenvalue 0.9) beside white-noise features."""
    rng = np.random.default_rng(random_state + 10_000)
    chain = flip_chain(n_frames, [0.05], random_state)
    return np.hstack([chain, rng.normal(size=(n_frames, n_noise))])


def small_srv(**kw):
    return shared_small_srv(**{"lag_time": 2, **kw})


@pytest.fixture(scope="module")
def ar_srv():
    """An SRV whose one eigenfunction is (close to) the slow AR(1) coordinate itself."""
    return small_srv().fit(ar1(8000, [0.9], random_state=0))


# --- the noise floor -----------------------------------------------------------------------


def test_row27_eigenvalues_at_or_below_the_floor_or_not_positive_give_nan():
    lam = [0.9, 0.05, 0.04, 0.0, -0.3, 1.0, 1.2]
    ts = timescales_from_eigenvalues(lam, lag_time=2, noise_floor=0.05)
    np.testing.assert_allclose(ts[0], -2 / np.log(0.9))
    assert np.isnan(ts[1:5]).all()  # at the floor, below it, zero, negative
    assert np.isinf(ts[5:]).all()
    # Without a floor only non-positive eigenvalues lose their timescale.
    ts0 = timescales_from_eigenvalues(lam, lag_time=2)
    np.testing.assert_allclose(ts0[1:3], -2 / np.log([0.05, 0.04]))
    assert np.isnan(ts0[3:5]).all()
    # One floor per eigenvalue; a scalar in, a scalar out.
    per = timescales_from_eigenvalues([0.5, 0.5], 1, noise_floor=[0.4, 0.6])
    assert np.isfinite(per[0]) and np.isnan(per[1])
    assert np.ndim(timescales_from_eigenvalues(0.5, 1)) == 0
    with pytest.raises(ValueError, match="noise_floor must be non-negative"):
        timescales_from_eigenvalues([0.5], 1, noise_floor=-0.1)


def test_complex_eigenvalues_give_the_timescale_of_their_modulus():
    lam = np.array([0.6 + 0.6j, 0.6 - 0.6j, -0.5 + 0j, 0.3 + 0j, 0.02 + 0.02j])
    ts = timescales_from_eigenvalues(lam, lag_time=3, noise_floor=0.05)
    np.testing.assert_allclose(ts[:2], -3 / np.log(np.sqrt(0.72)))
    assert np.isnan(ts[2])  # real and negative, even inside a complex array
    np.testing.assert_allclose(ts[3], -3 / np.log(0.3))
    assert np.isnan(ts[4])  # modulus 0.028, below the floor


def test_default_floor_is_above_every_noise_eigenvalue_of_white_noise():
    rng = np.random.default_rng(0)
    n, d = 20_000, 5
    floor = eigenvalue_noise_floor(n - 1, d)
    assert floor == pytest.approx(3 * np.sqrt(d / (n - 1)))
    largest = []
    for _ in range(20):
        x = rng.normal(size=(n, d))
        X0, Xt = x[:-1], x[1:]
        for reversible in (True, False):
            C00, C0t, Ctt, _, _ = lagged_covariances(X0, Xt, reversible=reversible)
            K, _, _ = koopman_matrix(C00, C0t, C00)
            largest.append(np.abs(np.linalg.eigvals(K)).max())
        # Every timescale of pure noise is NaN; without the floor half are finite numbers.
        assert np.isnan(implied_timescales(x, 1)).all()
        assert np.isnan(implied_timescales(x, 1, reversible=False)).all()
        assert np.isfinite(implied_timescales(x, 1, noise_floor=0)).sum() >= 1
    assert max(largest) < floor
    # ... and the floor is not wastefully high: within a factor 3 of the largest.
    assert max(largest) > floor / 3


def test_implied_timescales_keep_the_slow_process_and_drop_the_noise():
    rng = np.random.default_rng(1)
    x = np.hstack([ar1(50_000, [0.9], random_state=1), rng.normal(size=(50_000, 2))])
    ts = implied_timescales(x, 1)
    assert ts[0] == pytest.approx(T_SLOW, rel=0.05)
    assert np.isnan(ts[1:]).all()
    # An explicit floor of 0 keeps positive noise eigenvalues: meaningless sub-frame numbers.
    ts0 = implied_timescales(x, 1, noise_floor=0)
    assert ts0[0] == ts[0]
    assert (ts0[1:][np.isfinite(ts0[1:])] < 0.5).all()


def test_lagged_moments_reproduce_the_covariances_of_the_pairs():
    x = ar1(3000, [0.9, 0.5, -0.3], random_state=2) + [1.0, -2.0, 0.5]
    X0, Xt = lagged_pairs([x], 3)
    halves = [lagged_moments(X0[:1000], Xt[:1000]), lagged_moments(X0[1000:], Xt[1000:])]
    summed = {key: halves[0][key] + halves[1][key] for key in halves[0]}
    for reversible in (True, False):
        expected = lagged_covariances(X0, Xt, reversible=reversible)[:3]
        got = covariances_from_moments(summed, reversible=reversible)
        for a, b in zip(got, expected, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-12)


# --- the non-reversible estimator ----------------------------------------------------------


@pytest.mark.parametrize("lag", [1, 3])
def test_nonreversible_timescales_are_eigenvalues_not_singular_values(lag):
    # A non-normal propagator: eigenvalues 0.9 and 0.5, singular values different.
    A = np.array([[0.9, 0.4], [0.0, 0.5]])
    x = var1(200_000, A, random_state=3)
    exact = -lag / np.log(np.linalg.eigvals(np.linalg.matrix_power(A, lag)))
    exact = np.sort(exact)[::-1]  # = -1 / ln(0.9), -1 / ln(0.5) at every lag
    np.testing.assert_allclose(exact, [T_SLOW, -1 / np.log(0.5)])
    new = implied_timescales(x, lag, reversible=False)
    np.testing.assert_allclose(new, exact, rtol=0.03)
    # The old formula: singular values of C00^-1/2 C0t Ctt^-1/2. They overestimate the
    # slow timescale by far more than the tolerance (about 60 % at lag 1, 44 % at lag 3).
    X0, Xt = lagged_pairs([x], lag)
    C00, C0t, Ctt, _, _ = lagged_covariances(X0, Xt)
    K, _, _ = koopman_matrix(C00, C0t, Ctt)
    old = -lag / np.log(np.linalg.svd(K, compute_uv=False))
    assert old[0] > 1.3 * exact[0]


def test_rotating_process_has_a_complex_pair_with_the_timescale_of_its_modulus():
    angle = 0.6
    A = 0.9 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    x = var1(100_000, A, random_state=4)
    for lag in (1, 2):
        np.testing.assert_allclose(implied_timescales(x, lag, reversible=False), T_SLOW, rtol=0.03)
    # The reversible estimate cannot see a rotation: it decays three times faster.
    assert implied_timescales(x, 1)[0] < 0.5 * T_SLOW


# --- held-out timescales of the SRV, with bootstrap error bars -----------------------------


def test_heldout_bootstrap_error_matches_the_spread_over_independent_test_sets(ar_srv):
    ts, se, covered = [], [], []
    for k in range(30):
        test = [ar1(400, [0.9], random_state=1000 + 20 * k + i) for i in range(20)]
        r = ar_srv.implied_timescales(test, n_bootstrap=200, random_state=k)
        assert r.n_units == 20 and r.lag_time == 2 and r.n_pairs == 20 * 398
        ts.append(r.timescales[0])
        se.append(r.std_error[0])
        covered.append(r.lower[0] <= T_SLOW <= r.upper[0])
    # Bootstrap over trajectories: its standard error is the real spread (measured 0.46 vs
    # 0.52), and the 95 % interval covers the exact value most of the time (27 of 30).
    assert 0.6 < np.mean(se) / np.std(ts, ddof=1) < 1.6
    assert np.mean(covered) >= 0.75
    assert np.mean(ts) == pytest.approx(T_SLOW, rel=0.05)


def test_heldout_single_trajectory_uses_contiguous_blocks(ar_srv):
    ts, se = [], []
    for k in range(15):
        r = ar_srv.implied_timescales(ar1(8000, [0.9], random_state=5000 + k), random_state=k)
        assert r.n_units == 10 and r.n_pairs == 7998
        assert r.lower[0] < r.timescales[0] < r.upper[0]
        ts.append(r.timescales[0])
        se.append(r.std_error[0])
    assert 0.5 < np.mean(se) / np.std(ts, ddof=1) < 1.7
    # With more blocks, the same data give an error of the same size.
    data = ar1(8000, [0.9], random_state=5000)
    more = ar_srv.implied_timescales(data, n_blocks=20, random_state=0)
    assert more.n_units == 20
    assert 0.5 < more.std_error[0] / se[0] < 2.0


def test_heldout_timescales_are_deterministic_and_validated(ar_srv):
    test = ar1(3000, [0.9], random_state=7)
    a = ar_srv.implied_timescales(test)
    b = ar_srv.implied_timescales(test)
    np.testing.assert_array_equal(a.std_error, b.std_error)
    c = ar_srv.implied_timescales(test, random_state=1)
    assert c.std_error[0] != a.std_error[0]
    np.testing.assert_array_equal(c.timescales, a.timescales)  # the point estimate is fixed
    none = ar_srv.implied_timescales(test, n_bootstrap=0)
    assert np.isnan(none.std_error).all() and np.isnan(none.lower).all()
    np.testing.assert_array_equal(none.timescales, a.timescales)
    for bad, match in [
        (dict(n_bootstrap=-1), "n_bootstrap"),
        (dict(n_blocks=1), "n_blocks"),
        (dict(confidence=1.5), "confidence"),
        (dict(noise_floor="high"), "noise_floor"),
        (dict(lag_time=0), "lag_time"),
    ]:
        with pytest.raises(ValueError, match=match):
            ar_srv.implied_timescales(test, **bad)
    test[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        ar_srv.implied_timescales(test)
    with pytest.raises(NotFittedError):
        SRVTransformer().implied_timescales(test)


def test_row27_heldout_noise_components_have_no_timescale_and_no_error_bar():
    srv = small_srv(lag_time=1, n_components=3).fit(chain_and_noise(8000, 0))
    r = srv.implied_timescales(chain_and_noise(8000, 1), random_state=0)
    assert r.timescales[0] == pytest.approx(T_SLOW, rel=0.15)
    for key in ("timescales", "std_error", "lower", "upper"):
        assert np.isnan(r[key][1:]).all(), key
    # The noise eigenvalues are there, small, and at or below their floor.
    assert (np.abs(r.eigenvalues[1:]) <= r.noise_floor[1:]).all()
    assert (r.noise_floor >= eigenvalue_noise_floor(r.n_pairs, 3) - 1e-15).all()


def test_heldout_nonreversible_model_finds_the_complex_pair_of_a_rotation():
    angle = 0.6
    A = 0.9 * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    srv = small_srv(lag_time=1, n_components=2, reversible=False).fit(var1(8000, A, 5))
    r = srv.implied_timescales(var1(8000, A, 6))
    lam = r.eigenvalues
    assert np.iscomplexobj(lam) and lam[0] == pytest.approx(np.conj(lam[1]))
    assert abs(lam[0]) == pytest.approx(0.9, abs=0.02)
    assert abs(np.angle(lam[0])) == pytest.approx(angle, abs=0.05)
    np.testing.assert_allclose(r.timescales, T_SLOW, rtol=0.1)
    assert (r.lower <= T_SLOW).all() and (T_SLOW <= r.upper).all()


# --- timescales against the lag time -------------------------------------------------------


def test_vs_lag_of_one_fitted_model_is_flat_for_an_accurate_eigenfunction(ar_srv):
    test = [ar1(1000, [0.9], random_state=300 + i) for i in range(20)]
    res = implied_timescales_vs_lag(ar_srv, test, [1, 2, 4, 8], random_state=0)
    assert res.estimators is None
    np.testing.assert_array_equal(res.lag_times, [1, 2, 4, 8])
    assert res.timescales.shape == res.std_error.shape == res.lower.shape == (4, 1)
    # lambda(k tau) = lambda(tau)^k for a true eigenfunction: the same timescale at each lag.
    assert (np.abs(res.timescales[:, 0] - T_SLOW) < 4 * res.std_error[:, 0]).all()
    np.testing.assert_allclose(res.eigenvalues[:, 0], 0.9**res.lag_times, atol=0.03)


def test_vs_lag_refits_a_clone_per_lag_and_feeds_the_plot():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sklss import plotting

    train = chain_and_noise(5000, 10, n_noise=1)
    test = [chain_and_noise(500, 20 + i, n_noise=1) for i in range(10)]
    template = small_srv(lag_time=1, n_components=2, max_epochs=10)
    res = implied_timescales_vs_lag(template, test, [1, 3], X_train=train, random_state=0)
    assert [e.lag_time for e in res.estimators] == [1, 3]
    assert template.lag_time == 1 and not hasattr(template, "n_components_")
    assert res.timescales.shape == (2, 2)
    np.testing.assert_allclose(res.timescales[:, 0], T_SLOW, rtol=0.2)
    assert np.isnan(res.timescales[:, 1]).all()  # the second component is noise
    fig, ax = plt.subplots()
    plotting.implied_timescales(res.lag_times, res.timescales, res.std_error, ax=ax)
    assert np.ma.getmaskarray(ax.lines[1].get_ydata()).all()
    np.testing.assert_allclose(ax.lines[0].get_ydata(), res.timescales[:, 0])
    plt.close(fig)


def test_vs_lag_refuses_estimators_without_heldout_timescales_and_bad_lags(ar_srv):
    from sklearn.decomposition import PCA

    x = ar1(500, [0.9], random_state=0)
    with pytest.raises(TypeError, match="PCA has no implied_timescales"):
        implied_timescales_vs_lag(PCA(), x, [1])
    with pytest.raises(ValueError, match="lag_time"):
        implied_timescales_vs_lag(ar_srv, x, [1, 2.5])
    with pytest.raises(ValueError, match="empty"):
        implied_timescales_vs_lag(ar_srv, x, [])
