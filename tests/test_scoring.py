"""Scores that cannot be fooled: missing and extra states, fixed observables, CK tests, one lag."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.model_selection import GridSearchCV

from sklss import MDNPropagator, SRVTransformer
from sklss.metrics import compare_distributions, free_energy_profile, free_energy_rmse
from sklss.model_selection import get_scorer
from sklss.simulator import LatentSpaceSimulator


def two_basin(n_trajectories, n_frames, random_state):
    """A 1-D process hopping between Gaussian basins at -1 and +1, 70 % / 30 % of the time.

    Within a basin the position is an AR(1) process around its centre (correlation 0.8,
    width 0.3); the basin switches with probabilities 0.003 (left to right) and 0.007 (right
    to left) per frame, so the stationary weights are 0.7 and 0.3. Returns the trajectories
    (each of shape (n_frames, 1)) and their basin labels (0 left, 1 right).
    """
    rng = np.random.default_rng(random_state)
    X, labels = [], []
    for _ in range(n_trajectories):
        s = np.empty(n_frames, dtype=int)
        x = np.empty(n_frames)
        s[0] = rng.random() < 0.3
        x[0] = 2 * s[0] - 1 + 0.3 * rng.normal()
        u, e, fresh = rng.random(n_frames), rng.normal(size=n_frames), rng.normal(size=n_frames)
        for t in range(1, n_frames):
            st = s[t - 1]
            if st == 0 and u[t] < 0.003:
                st = 1
            elif st == 1 and u[t] < 0.007:
                st = 0
            s[t] = st
            c = 2 * st - 1
            previous = x[t - 1] - c if s[t - 1] == st else 0.3 * fresh[t]
            x[t] = c + 0.8 * previous + 0.18 * e[t]
        X.append(x[:, None])
        labels.append(s)
    return X, labels


def left_stretches(X, labels, min_length=50):
    """The stretches of each trajectory spent in the left basin (at least min_length)."""
    out = []
    for x, s in zip(X, labels):
        change = np.flatnonzero(np.diff(np.r_[1, s, 1]) != 0)
        for a, b in zip(change[::2], change[1::2]):
            if b - a >= min_length:
                out.append(x[a:b])
    return out


@pytest.fixture(scope="module")
def basins():
    return two_basin(20, 5_000, 0), two_basin(10, 5_000, 1)[0]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_metric_scores_charge_a_missing_basin(seed):
    # Reference: 70/30 samples. A correct model: an independent 70/30 sample. A broken model:
    # the left basin only, which it reproduces perfectly.
    rng = np.random.default_rng(seed)

    def mixture(n, right):
        side = rng.random(n) < right
        return np.where(side, 1.0, -1.0) + 0.3 * rng.normal(size=n)

    ref = mixture(200_000, 0.3)
    correct = mixture(100_000, 0.3)
    broken = -1.0 + 0.3 * rng.normal(size=100_000)
    edges = np.linspace(ref.min(), ref.max(), 51)
    F_ref = free_energy_profile(ref, bins=edges)[0]
    for cap in (None, 4.0):
        good = free_energy_rmse(
            F_ref, free_energy_profile(correct, bins=edges)[0], max_free_energy=cap
        )
        bad = free_energy_rmse(
            F_ref, free_energy_profile(broken, bins=edges)[0], max_free_energy=cap
        )
        assert bad > 5 * good and bad > 1.0, (cap, good, bad)
    good, bad = compare_distributions(ref, correct), compare_distributions(ref, broken)
    assert bad["free_energy_rmse"] > 5 * good["free_energy_rmse"]
    assert bad["js_divergence"] > 20 * good["js_divergence"]
    assert bad["kl_divergence"] > 20 * good["kl_divergence"]
    assert bad["missing_mass"] == pytest.approx(0.3, abs=0.02)
    assert good["missing_mass"] < 0.001


def test_extra_mass_outside_the_reference_range_costs():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=100_000)
    inside = rng.normal(size=100_000)
    # 10 % of the model's mass far beyond anything the reference visits.
    leaky = np.concatenate([rng.normal(size=90_000), 20 + rng.normal(size=10_000)])
    good, bad = compare_distributions(ref, inside), compare_distributions(ref, leaky)
    assert bad["outside_mass"] == pytest.approx(0.1, abs=1e-9)
    assert bad["extra_mass"] >= 0.1 and good["extra_mass"] < 0.001
    assert bad["js_divergence"] > 10 * good["js_divergence"]
    assert bad["free_energy_rmse"] > good["free_energy_rmse"]
    # Two coordinates: a 2-D histogram on the same rules.
    two = compare_distributions(np.c_[ref, ref], np.c_[leaky, leaky], bins=20)
    assert two["outside_mass"] == pytest.approx(0.1, abs=1e-9)
    with pytest.raises(ValueError, match="x_ref has 1 coordinates but x_model has 2"):
        compare_distributions(ref, np.c_[ref, ref])
    with pytest.raises(ValueError, match="x_model contains NaN or inf at sample 3"):
        compare_distributions(ref, np.r_[0.0, 0.0, 0.0, np.nan])


def _passthrough_lss():
    mdn = MDNPropagator(n_kernels=4, hidden_layer_sizes=(32, 32), max_epochs=10)
    return LatentSpaceSimulator("passthrough", mdn, "passthrough", lag_time=5, random_state=0)


def test_simulator_that_misses_a_basin_ranks_below_a_correct_one(basins):
    (X, labels), X_test = basins
    correct = _passthrough_lss().fit(X)
    broken = _passthrough_lss().fit(left_stretches(X, labels))
    # The broken simulator never visits the right basin, even when started there.
    with pytest.warns(UserWarning, match="outside the range of the training data"):
        run = broken.sample(np.array([[1.0]]), 2_000, random_state=0).latent
    assert run[0, 1:].max() < 0.5
    # The default scorer, and every free-energy score, prefer the correct model by far.
    assert correct.score(X_test) > broken.score(X_test) + 1.0
    for scorer in ("free_energy_rmse", "js_divergence"):
        s_good = get_scorer(scorer)(correct, X_test)
        s_bad = get_scorer(scorer)(broken, X_test)
        assert s_good > s_bad and abs(s_bad) > 5 * abs(s_good), (scorer, s_good, s_bad)
    # rollout_error starts from held-out frames; the broken model, started in the basin it
    # never learned, leaves it for good.
    s_good = get_scorer("rollout_error")(correct, X_test)
    with pytest.warns(UserWarning, match="outside the range of the training data"):
        s_bad = get_scorer("rollout_error")(broken, X_test)
    assert s_good == -correct.propagator_.rollout_error(correct.transform(X_test))
    assert s_bad < s_good - 1.0, (s_good, s_bad)
    capped_good = correct.free_energy_rmse(X_test, max_free_energy=4)
    capped_bad = broken.free_energy_rmse(X_test, max_free_energy=4)
    assert capped_bad > 5 * capped_good
    good, bad = correct.compare(X_test), broken.compare(X_test)
    assert bad["missing_mass"] > 0.25 and good["missing_mass"] < 0.01
    assert bad["kl_divergence"] > 20 * good["kl_divergence"]


def test_one_lag_differing_component_lags_are_an_error(basins):
    (X, _), _ = basins
    lss = LatentSpaceSimulator(
        SRVTransformer(lag_time=3, n_components=1, max_epochs=1),
        MDNPropagator(lag_time=5, max_epochs=1),
        "passthrough",
    )
    with pytest.raises(ValueError, match=r"encoder's lag_time=3 differs.*propagator's lag_time=5"):
        lss.fit(X[:2])
    # Setting the simulator's lag sets both, and equal lags are fine.
    lss.set_params(lag_time=4, propagator__hidden_layer_sizes=(8,)).fit(X[:2])
    assert lss.encoder_.lag_time == lss.propagator_.lag_time == lss.lag_time_ == 4


def test_observable_is_fixed_and_user_observables_are_used(basins):
    (X, _), X_test = basins
    lss = _passthrough_lss().fit(X[:6])
    # The default observable is the (standardised, sign-fixed) TICA of the one feature.
    assert lss.observable_coef_.shape == (1, 1) and lss.observable_coef_[0, 0] > 0
    square = _passthrough_lss().set_params(observable=lambda x: x**2).fit(X[:6])
    shifted = _passthrough_lss().set_params(observable=lambda x: x**2 + 5).fit(X[:6])
    # A shift of the observable changes neither the histogram shape nor the score.
    assert square.compare(X_test)["js_divergence"] == pytest.approx(
        shifted.compare(X_test)["js_divergence"]
    )
    bad = _passthrough_lss().set_params(observable=lambda x: x[:-1]).fit(X[:6])
    with pytest.raises(ValueError, match="one finite row per frame"):
        bad.score(X_test)
    with pytest.raises(ValueError, match=r"coordinate must be an integer in \[0, 1\)"):
        lss.compare(X_test, coordinate=1)
    with pytest.raises(ValueError, match="space must be 'observable' or 'latent'"):
        lss.compare(X_test, space="features")


class FastModeEncoder(TransformerMixin, BaseEstimator):
    """An encoder that learns the fastest linear mode (the last TICA component) of X."""

    def __init__(self, lag_time=1):
        self.lag_time = lag_time

    def fit(self, X, y=None):
        from deeptime.decomposition import TICA

        model = TICA(lagtime=self.lag_time).fit(X).fetch_model()
        self.mean_ = model.mean_0
        self.coef_ = model.singular_vectors_left[:, -1:]
        return self

    def transform(self, X):
        if isinstance(X, list):
            return [(np.asarray(t) - self.mean_) @ self.coef_ for t in X]
        return (np.asarray(X) - self.mean_) @ self.coef_


@pytest.mark.slow
def test_grid_search_ranks_by_exact_timescale_error_and_the_fast_mode_does_not_win():
    # Hidden-coordinate toy (exact t1 = 340 frames). Candidates: two lag times x {a 1-D SRV,
    # an encoder that learns the fastest mode}. Each candidate's exact error is the relative
    # error of its simulator's own slowest relaxation time against the exact 340 frames.
    from sklss.datasets import hidden_wells, hidden_wells_reference

    X = hidden_wells(25_000, n_trajectories=4, n_features=10, random_state=0)
    X_test = hidden_wells(100_000, n_trajectories=4, n_features=10, random_state=1)
    exact = hidden_wells_reference().timescales[0]
    srv = SRVTransformer(
        n_components=1, hidden_layer_sizes=(32, 32), batch_size=4096, max_epochs=10
    )
    mdn = MDNPropagator(n_kernels=8, hidden_layer_sizes=(64, 64), max_epochs=15, patience=5)

    def own_coordinate_error(est, X, y=None):  # the old, self-referential timescale score
        its = est.implied_timescales(X, space="latent", n_blocks=1)
        return -abs(its["lss"][0] / its["md"][0] - 1)

    def exact_error(est, X, y=None):
        return -abs(est.implied_timescales(X, space="latent", n_blocks=1)["lss"][0] / exact - 1)

    search = GridSearchCV(
        LatentSpaceSimulator(srv, mdn, "passthrough", random_state=0),
        {"lag_time": [2, 20], "encoder": [srv, FastModeEncoder()]},
        cv=[(np.arange(4), np.arange(4, 8))],
        scoring={
            "new": get_scorer("timescale_error"),
            "old": own_coordinate_error,
            "exact": exact_error,
        },
        refit=False,
    ).fit(X + X_test)
    res = search.cv_results_
    new, old, err = res["mean_test_new"], res["mean_test_old"], -res["mean_test_exact"]
    fast = np.array([isinstance(p["encoder"], FastModeEncoder) for p in res["params"]])
    # Measured: new -0.27, -0.13 (SRV, lags 2, 20) and -1.00, -0.93 (fast mode); exact errors
    # 0.011, 0.028 and 0.99, 1.00 (with a float64 MDN likelihood: new -0.20, -0.12, exact
    # 0.03, 0.03); the old score gave the fast mode at lag 2 the best score. The two SRV
    # candidates are both within 3 % of the exact time, closer than one held-out run can
    # tell apart, so the score must pick one of them, not a particular one.
    assert new[~fast].min() > new[fast].max() + 0.5
    assert err[np.argmax(new)] < 0.1
    assert err[fast].min() > 0.5 and err[~fast].max() < 0.1
    # The self-referential score was fooled: a fast-mode simulator scored best.
    assert fast[np.argmax(old)]


@pytest.mark.slow
def test_ck_test_passes_for_the_four_well_simulator():
    from sklss.datasets import four_well

    X = four_well(100_000, n_trajectories=20, stride=10, random_state=0)
    X_test = four_well(20_000, n_trajectories=20, stride=10, random_state=1)
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(n_kernels=8, hidden_layer_sizes=(100, 100), max_epochs=30, patience=6),
        "passthrough",
        lag_time=10,
        random_state=0,
    ).fit(X)
    ck = lss.ck_test(X_test, n_states=4, k_max=5, n_samples=50, n_steps=800)
    assert ck.passed
    assert ck.md.shape == ck.model.shape == (6, 4)
    np.testing.assert_array_equal(ck.lag_times, [0, 10, 20, 30, 40, 50])
    assert ck.max_model_deviation < 0.06
    # The intervals are real intervals around the estimates.
    assert np.all(ck.md_lower[1:] <= ck.md[1:] + 1e-12) and np.all(ck.md[1:] <= ck.md_upper[1:])
    assert np.all(ck.md_upper[1:] - ck.md_lower[1:] > 0)


@pytest.mark.slow
def test_ck_test_fails_for_a_simulator_at_a_lag_too_short_to_be_markovian():
    # One coordinate of the two-dimensional hidden-wells dynamics is not Markovian at short
    # lags: the other coordinate carries memory. A simulator stepping one frame at a time
    # forgets it and relaxes too fast; one stepping 40 frames is close to Markovian.
    from sklss.datasets import hidden_wells

    _, Z = hidden_wells(20_000, n_trajectories=10, random_state=0, return_latent=True)
    _, Z_test = hidden_wells(20_000, n_trajectories=10, random_state=1, return_latent=True)
    X, X_test = [z[:, :1] for z in Z], [z[:, :1] for z in Z_test]
    results = {}
    for lag in (1, 40):
        mdn = MDNPropagator(n_kernels=8, hidden_layer_sizes=(64, 64), max_epochs=30, patience=6)
        lss = LatentSpaceSimulator("passthrough", mdn, "passthrough", lag_time=lag, random_state=0)
        results[lag] = lss.fit(X).ck_test(X_test, n_states=3, k_max=5, lag_time=40, n_samples=50)
    # Measured: largest deviation from MD 0.107 at lag 1 and 0.051 at lag 40.
    assert not results[1].passed and results[40].passed
    assert results[1].max_model_deviation > 1.5 * results[40].max_model_deviation
    with pytest.raises(ValueError, match="lag_time must be a positive multiple"):
        lss.ck_test(X_test, lag_time=30)


def test_row26_simulator_reports_wall_hits_once_and_stays_in_the_box(basins):
    import warnings

    (X, _), _ = basins
    lss = _passthrough_lss().fit(X[:4])
    lo, hi = lss.propagator_.data_min_[0], lss.propagator_.data_max_[0]
    inside = lss.sample(np.array([[-1.0], [1.0]]), 200, random_state=0)
    assert 0.0 <= inside.wall_hit_rate < 0.01
    # 300 start frames far outside the training data: two blocks, one warning for the run.
    starts = np.full((300, 1), 10 * hi)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = lss.sample(starts, 3, random_state=0)
    rates = [w for w in caught if "of the propagator's draws left the range" in str(w.message)]
    assert len(rates) == 1 and f"{run.wall_hit_rate:.2%}" in str(rates[0].message)
    assert run.wall_hit_rate > 0.01
    later = run.latent[:, 1:, 0]
    assert np.isfinite(later).all() and later.min() >= lo and later.max() <= hi
    # The same rate when the blocks run in parallel workers.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel = lss.sample(starts, 3, random_state=0, n_jobs=2)
    assert parallel.wall_hit_rate == run.wall_hit_rate
    np.testing.assert_array_equal(parallel.latent, run.latent)


def test_timescale_scores_on_too_short_held_out_data_warn_and_count_a_full_error(basins):
    (X, _), X_test = basins
    lss = _passthrough_lss().fit(X[:4])
    short = [t[:12] for t in X_test]  # two lag times: no relaxation time can be fitted
    with pytest.warns(UserWarning, match="could not be measured.*100 % timescale error"):
        assert get_scorer("timescale_error")(lss, short) == -1.0
    with pytest.warns(UserWarning, match="could not be measured.*100 % timescale error"):
        fidelity = lss.score(short)
    assert fidelity == pytest.approx(-(lss.free_energy_rmse(short) + 1.0))
