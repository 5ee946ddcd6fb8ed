import math

import joblib
import numpy as np
import pytest
import torch
from conftest import ar1, exact_free_energy, markov_timescale
from scipy import sparse
from scipy.stats import kstest, norm
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold

from sklss import propagator as propagator_module
from sklss._mixture_sampler import MixtureSampler, gumbel_and_normal
from sklss._nn import NonFiniteLossError
from sklss._random import derive_seeds
from sklss.metrics import free_energy_profile, free_energy_rmse, js_divergence
from sklss.propagator import (
    MDNPropagator,
    _mixture_log_density,
)

# Small networks gain nothing from intra-op threads, and lose a lot on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small_mdn(**kw):
    params = dict(
        lag_time=1,
        n_kernels=3,
        hidden_layer_sizes=(32, 32),
        learning_rate=3e-3,
        batch_size=256,
        max_epochs=20,
        patience=4,
        random_state=0,
    )
    params.update(kw)
    return MDNPropagator(**params)


def tiny_mdn(**kw):
    params = dict(
        lag_time=1,
        n_kernels=2,
        hidden_layer_sizes=(8,),
        max_epochs=2,
        batch_size=64,
        random_state=0,
    )
    params.update(kw)
    return MDNPropagator(**params)


@pytest.fixture(scope="module")
def ar_data():
    # x_{t+1} = a x_t + N(0, 1): the transition density is Gaussian with known mean and variance.
    return ar1(20_000, [0.8, 0.5], random_state=0)


@pytest.fixture(scope="module")
def fitted(ar_data):
    return small_mdn().fit(ar_data)


@pytest.fixture(scope="module")
def tiny(ar_data):
    return tiny_mdn().fit(ar_data[:2000])


# --- scikit-learn's estimator checks -------------------------------------------------------

# --- known answers -------------------------------------------------------------------------


def test_conditional_mean_of_linear_gaussian_process_is_learned(fitted):
    grid = np.linspace(-1.5, 1.5, 7)
    X = np.stack([grid, grid[::-1]], axis=1)
    np.testing.assert_allclose(fitted.predict(X), X * [0.8, 0.5], atol=0.12)


def test_one_step_samples_have_the_known_mean_and_variance(fitted):
    X0 = np.tile([1.0, -1.0], (4000, 1))
    step = fitted.sample(X0, n_steps=2, random_state=0)[:, 1]
    np.testing.assert_allclose(step.mean(axis=0), [0.8, -0.5], atol=0.1)
    np.testing.assert_allclose(step.var(axis=0), [1.0, 1.0], atol=0.12)


def test_density_weights_follow_the_inverse_density_capped_with_mean_one():
    from sklss._training import DENSITY_WEIGHT_CAP, start_density_weights

    rng = np.random.default_rng(0)
    # Uniform densities 16000 and 1000 per unit length, and 5 frames far out (density ~ 0).
    dense, sparse_ = rng.uniform(0, 1, 16_000), rng.uniform(2, 3, 1000)
    far = 20.0 + 5 * np.arange(5)
    x = np.concatenate([dense, sparse_, far])[:, None]
    trajs = [x[:9000], x[9000:]]  # weights come back per trajectory, in order
    w = np.concatenate([t[:, 0] for t in start_density_weights(trajs, lambda f: f, 0.5, seed=0)])
    assert w.dtype == np.float32 and w.shape == (len(x),)
    assert w.mean() == pytest.approx(1.0, rel=1e-5)
    inner = slice(1000, 15_000)  # away from the edges of the dense block
    ratio = np.median(w[16_000 : 16_000 + 1000][100:-100]) / np.median(w[inner])
    assert ratio == pytest.approx(16**0.5, rel=0.15)  # (density ratio) ** exponent
    # the cap: no weight above DENSITY_WEIGHT_CAP times the median
    assert w.max() == pytest.approx(DENSITY_WEIGHT_CAP * np.median(w), rel=1e-4)
    w1 = np.concatenate([t[:, 0] for t in start_density_weights(trajs, lambda f: f, 1.0, seed=0)])
    ratio1 = np.median(w1[16_000:17_000][100:-100]) / np.median(w1[inner])
    assert ratio1 == pytest.approx(16.0, rel=0.25)


def test_density_weighting_keeps_the_exact_transition_density(ar_data):
    # Weights depend on the start frame only: the weighted likelihood is still maximised by
    # the true kernel, so the Gaussian AR(1) kernel is learned as without weights.
    weighted = small_mdn(density_weighting=0.5).fit(ar_data)
    grid = np.linspace(-2.0, 2.0, 9)
    X = np.stack([grid, grid[::-1]], axis=1)
    np.testing.assert_allclose(weighted.predict(X), X * [0.8, 0.5], atol=0.12)
    test = ar1(10_000, [0.8, 0.5], random_state=5)
    exact = -math.log(2 * math.pi) - 1.0
    assert weighted.score(test) == pytest.approx(exact, abs=0.05)
    # the weights were used: the weighted training loss differs from the plain fit's
    plain = small_mdn().fit(ar_data)
    assert abs(weighted.history_["train_nll"][0] - plain.history_["train_nll"][0]) > 0.05
    # the held-out loss stays the plain likelihood: at the best epochs, the two fits agree
    best = [min(m.history_["valid_nll"]) for m in (weighted, plain)]
    assert best[0] == pytest.approx(best[1], abs=0.02)


def test_sampling_shows_a_progress_bar_only_when_verbose(fitted, capsys):
    X0 = np.zeros((3, 2))
    quiet = fitted.sample(X0, n_steps=50, random_state=0)
    assert capsys.readouterr().err == ""
    loud = clone(fitted).set_params(verbose=1)
    loud.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    np.testing.assert_array_equal(loud.sample(X0, n_steps=50, random_state=0), quiet)
    err = capsys.readouterr().err
    assert "sampling" in err and "49/49" in err


def test_score_matches_the_exact_log_likelihood_on_held_out_data(fitted):
    test = ar1(10_000, [0.8, 0.5], random_state=5)
    exact = -math.log(2 * math.pi) - 1.0  # two unit-variance Gaussian coordinates
    assert fitted.score(test) == pytest.approx(exact, abs=0.05)
    shuffled = test[np.random.default_rng(0).permutation(len(test))]
    assert fitted.score(shuffled) < exact - 0.3


def test_score_samples_gives_one_log_density_per_lagged_pair(fitted, ar_data):
    assert fitted.score_samples(ar_data[:100]).shape == (99,)
    parts = fitted.score_samples([ar_data[:50], ar_data[50:80]])
    assert [p.shape for p in parts] == [(49,), (29,)]
    whole = fitted.score_samples(ar_data[:50])
    np.testing.assert_allclose(parts[0], whole)
    # Densities are in data units: scaling the data by c lowers the log density by 2 ln c.
    scaled = small_mdn(max_epochs=1).fit(3 * ar_data[:5000])
    base = small_mdn(max_epochs=1).fit(ar_data[:5000])
    np.testing.assert_allclose(
        scaled.score_samples(3 * ar_data[:50]),
        base.score_samples(ar_data[:50]) - 2 * math.log(3),
        atol=1e-4,
    )


def test_predict_returns_the_form_it_was_given(fitted, ar_data):
    parts = fitted.predict([ar_data[:30], ar_data[30:45]])
    assert isinstance(parts, list) and [p.shape for p in parts] == [(30, 2), (15, 2)]
    np.testing.assert_allclose(np.concatenate(parts), fitted.predict(ar_data[:45]))


def test_longer_lag_time_gives_the_composed_transition(ar_data):
    x = ar1(20_000, [0.8], random_state=3)
    mdn = small_mdn(lag_time=2, max_epochs=12).fit(x)
    grid = np.linspace(-1.5, 1.5, 7)[:, None]
    np.testing.assert_allclose(mdn.predict(grid), 0.64 * grid, atol=0.12)
    step = mdn.sample(np.full((4000, 1), 1.0), n_steps=2, random_state=1)[:, 1, 0]
    assert step.var() == pytest.approx(1 + 0.64, rel=0.1)


def test_history_records_losses_and_the_best_epoch_is_restored(fitted, ar_data):
    history = fitted.history_
    assert set(history) == {"epoch", "train_nll", "valid_nll"}
    assert len(history["epoch"]) == fitted.n_iter_
    assert all(np.isfinite(history["train_nll"])) and all(np.isfinite(history["valid_nll"]))
    # One trajectory: the held-out block is its last 10 % of frames.
    n_valid = round(0.1 * len(ar_data))
    held_out = -fitted.score(ar_data[-n_valid:])
    assert held_out == pytest.approx(min(history["valid_nll"]), abs=1e-4)


def test_grid_search_picks_the_number_of_kernels_of_a_bimodal_transition():
    rng = np.random.default_rng(0)
    x = np.zeros((4000, 1))
    for t in range(1, len(x)):
        x[t] = 0.3 * x[t - 1] + rng.choice([-1.0, 1.0]) + 0.1 * rng.normal()
    search = GridSearchCV(
        tiny_mdn(hidden_layer_sizes=(16,), max_epochs=15, learning_rate=1e-2),
        {"n_kernels": [1, 2]},
        cv=KFold(3),
    ).fit(x)
    assert search.best_params_ == {"n_kernels": 2}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > scores[0] + 0.5


# --- the sampler ---------------------------------------------------------------------------


def reference_steps(module, lo, hi, x0, gumbel, normal):
    """A plain torch sampler with the same draws and reject-and-stay walls: the fast sampler
    must match it. Returns the visited states and the number of rejected draws."""
    x = torch.as_tensor(x0, dtype=torch.float32)
    rows = torch.arange(len(x))
    visited, hits = [], 0
    with torch.no_grad():
        for t, (g, z) in enumerate(zip(gumbel, normal)):
            log_w, mu, sigma = module.mixture(x)
            k = (log_w + torch.as_tensor(g)).argmax(dim=1)
            step = (mu[rows, k] + sigma[rows, k] * torch.as_tensor(z)).numpy()
            outside = ~((step >= lo) & (step <= hi)).all(axis=1)
            current = x.numpy()
            if t == 0:
                # Only a start outside the box is clipped into it instead of kept.
                start_outside = ~((current >= lo) & (current <= hi)).all(axis=1)
                current = np.where(start_outside[:, None], np.clip(step, lo, hi), current)
            hits += int(outside.sum())
            x = torch.as_tensor(np.where(outside[:, None], current, step))
            visited.append(x.numpy().copy())
    return np.stack(visited), hits


@pytest.mark.parametrize("activation", ["relu", "tanh", "leaky_relu", "gelu"])
@pytest.mark.parametrize("n_starts", [1, 5])
def test_fast_sampler_matches_a_plain_torch_sampler_on_the_same_draws(activation, n_starts):
    x = ar1(1000, [0.9, 0.3], random_state=1)
    mdn = tiny_mdn(n_kernels=4, hidden_layer_sizes=(16, 16), activation=activation).fit(x)
    module = mdn.net_.module_
    lo = ((mdn.data_min_ - mdn.mean_) / mdn.scale_).astype(np.float32)
    hi = ((mdn.data_max_ - mdn.mean_) / mdn.scale_).astype(np.float32)
    gumbel, normal = gumbel_and_normal(np.random.default_rng(0), 60, n_starts, 4, 2)
    normal *= 3  # wide steps, so that the walls are hit too
    x0 = ((x[:n_starts] - mdn.mean_) / mdn.scale_).astype(np.float32)
    x0[0] = hi + 1  # one start outside the box: its first rejected draw is clipped into it
    state = x0.copy()
    sampler = MixtureSampler(module, lo, hi)
    fast = sampler.run(state, gumbel, normal)
    expected, hits = reference_steps(module, lo, hi, x0, gumbel, normal)
    np.testing.assert_allclose(fast, expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_array_equal(state, fast[-1])
    assert sampler.n_wall_hits == hits
    assert 0.05 * fast.shape[0] * n_starts < hits < 0.9 * fast.shape[0] * n_starts
    assert np.all((fast >= lo) & (fast <= hi))


def test_one_step_samples_follow_the_learned_mixture_exactly():
    x = ar1(3000, [0.7], random_state=2)
    mdn = tiny_mdn(n_kernels=3, hidden_layer_sizes=(16,), max_epochs=3).fit(x)
    x0 = np.array([[0.4]])
    samples = mdn.sample(np.repeat(x0, 20_000, axis=0), n_steps=2, random_state=3)[:, 1, 0]
    with torch.no_grad():
        scaled = torch.as_tensor((x0 - mdn.mean_) / mdn.scale_, dtype=torch.float32)
        log_w, mu, sigma = mdn.net_.module_.mixture(scaled)
    w = log_w.exp().numpy()[0]
    mu = mu.numpy()[0, :, 0] * mdn.scale_[0] + mdn.mean_[0]
    sigma = sigma.numpy()[0, :, 0] * mdn.scale_[0]

    def mixture_cdf(v):
        # The walls of the box lie many widths away from this start: no draw is rejected.
        return (w * norm.cdf((np.asarray(v)[..., None] - mu) / sigma)).sum(-1)

    assert samples.min() > mdn.data_min_[0] and samples.max() < mdn.data_max_[0]
    assert mdn.wall_hit_rate_ == 0.0
    result = kstest(samples, mixture_cdf)
    assert result.pvalue > 1e-3


def test_a_draw_outside_the_box_keeps_the_whole_row_and_is_counted(fitted):
    # A narrow box, about the middle half of each feature: many draws leave it.
    narrow = clone(fitted)
    narrow.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    narrow.data_min_, narrow.data_max_ = np.array([-0.7, -0.7]), np.array([0.7, 0.7])
    X0 = np.zeros((50, 2))
    with pytest.warns(UserWarning, match=r"\d+\.\d\d% of the draws left the range"):
        traj, hits, draws = narrow.sample(X0, 400, random_state=0, return_wall_hits=True)
    assert draws == 50 * 399
    assert narrow.wall_hit_rate_ == hits / draws
    assert 0.3 < narrow.wall_hit_rate_ < 0.9
    assert np.all(traj >= -0.7) and np.all(traj <= 0.7)
    # A continuous draw repeats its predecessor only when it was rejected, and then every
    # feature of the row repeats. The first step repeats X0 up to the float32 rounding of
    # the sampler's state.
    same = np.diff(traj[:, 1:], axis=1) == 0
    first = np.all(np.abs(traj[:, 1] - traj[:, 0]) < 1e-6, axis=1)
    assert np.count_nonzero(same.all(axis=2)) + np.count_nonzero(first) == hits
    assert not np.any(same.any(axis=2) & ~same.all(axis=2))
    with pytest.warns(UserWarning, match="of the draws left the range"):
        plain = narrow.sample(X0, 400, random_state=0)
    np.testing.assert_array_equal(plain, traj)


def test_wall_hits_are_rare_inside_the_training_data_and_no_warning_is_given(fitted, ar_data):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        traj, hits, draws = fitted.sample(ar_data[:20], 2000, random_state=0, return_wall_hits=True)
    assert draws == 20 * 1999 and hits == round(fitted.wall_hit_rate_ * draws)
    # 20,000 training frames per feature: a draw leaves the range with a probability of
    # order 1e-4.
    assert fitted.wall_hit_rate_ < 2e-3
    assert fitted.sample(ar_data[:3], 1, random_state=0).shape == (3, 1, 2)
    assert fitted.wall_hit_rate_ == 0.0


def test_samples_stay_in_the_training_range_without_piling_up_at_the_walls():
    # i.i.d. uniform data: the learned density spills over both walls of [0, 1].
    x = np.random.default_rng(0).uniform(size=(5000, 1))
    mdn = tiny_mdn(n_kernels=2, hidden_layer_sizes=(16,), max_epochs=5).fit(x)
    # Gaussian kernels fitted to a uniform density leak a few per cent over its edges.
    with pytest.warns(UserWarning, match=r"[1-9]\.\d\d% of the draws left the range"):
        traj = mdn.sample(x[:4], n_steps=20_000, random_state=0)
    lo, hi = mdn.data_min_[0], mdn.data_max_[0]
    assert traj.min() >= lo and traj.max() <= hi
    # Clipping would put a point mass on each wall; reject-and-stay puts none there.
    assert np.mean((traj == lo) | (traj == hi)) < 1e-4
    hist, _ = np.histogram(traj[:, 1:], bins=50, range=(lo, hi), density=True)
    assert hist[0] < 3 * np.median(hist) and hist[-1] < 3 * np.median(hist)


@pytest.mark.parametrize("n_starts", [1, 3])
def test_start_frames_outside_the_training_range_warn_and_later_frames_are_inside(tiny, n_starts):
    X0 = np.repeat(tiny.data_max_[None, :] + 2.0, n_starts, axis=0)
    X0[1:] = 0.0  # the others start inside
    with pytest.warns(UserWarning, match="Start frames \\[0\\] lie outside"):
        traj = tiny.sample(X0, n_steps=50, random_state=0)
    np.testing.assert_array_equal(traj[:, 0], X0)
    assert np.all(np.isfinite(traj))
    assert np.all(traj[:, 1:] <= tiny.data_max_) and np.all(traj[:, 1:] >= tiny.data_min_)
    # The trajectory leaves its start: it is not held outside by rejected draws.
    assert len(np.unique(traj[0, 1:, 0])) > 10


def test_sample_shape_start_frame_and_dtype(tiny, ar_data):
    X0 = ar_data[:3]
    traj = tiny.sample(X0, n_steps=40, random_state=0)
    assert traj.shape == (3, 40, 2) and traj.dtype == np.float64
    np.testing.assert_array_equal(traj[:, 0], X0)
    traj32 = tiny.sample(X0.astype(np.float32), n_steps=40, random_state=0)
    assert traj32.dtype == np.float32
    np.testing.assert_allclose(traj32, traj, rtol=1e-5, atol=1e-5)
    assert tiny.sample(X0, n_steps=1).shape == (3, 1, 2)
    assert np.all(np.isfinite(traj))


def test_sample_is_reproducible_and_random_state_matters(tiny, ar_data):
    X0 = ar_data[:2]
    a = tiny.sample(X0, 200, random_state=7)
    b = tiny.sample(X0, 200, random_state=7)
    c = tiny.sample(X0, 200, random_state=8)
    assert a.tobytes() == b.tobytes()
    assert not np.allclose(a[:, 1:], c[:, 1:])
    assert not np.allclose(tiny.sample(X0, 50)[:, 1:], tiny.sample(X0, 50)[:, 1:])
    single = tiny.sample(X0[:1], 200, random_state=7)
    assert single.tobytes() == tiny.sample(X0[:1], 200, random_state=7).tobytes()


def test_sample_writes_in_chunks_to_a_memmap(tiny, ar_data, tmp_path, monkeypatch):
    monkeypatch.setattr(propagator_module, "_NOISE_CHUNK", 97)  # many chunks
    X0 = ar_data[:3]
    expected = tiny.sample(X0, 500, random_state=3)
    out = np.lib.format.open_memmap(
        tmp_path / "traj.npy", mode="w+", dtype=np.float64, shape=(3, 500, 2)
    )
    result = tiny.sample(X0, 500, random_state=3, out=out)
    assert result is out
    np.testing.assert_array_equal(np.load(tmp_path / "traj.npy"), expected)
    # Chunks continue the chain: consecutive frames stay one step apart across boundaries.
    steps = np.abs(np.diff(expected, axis=1)).max()
    assert steps < 10 * np.abs(np.diff(ar_data[:2000], axis=0)).max()
    with pytest.raises(ValueError, match="out must be a float array of shape"):
        tiny.sample(X0, 10, out=np.empty((3, 9, 2)))


def test_sample_rejects_bad_n_steps(tiny, ar_data):
    for bad in (0, -1, 2.5, "10", True):
        with pytest.raises(ValueError, match="'n_steps'"):
            tiny.sample(ar_data[:1], bad)
    with pytest.raises(ValueError, match="X0 must be one 2-D array of start frames"):
        tiny.sample([ar_data[:2], ar_data[2:4]], 5)


def test_joblib_round_trip_keeps_predictions_and_samples(tiny, ar_data, tmp_path):
    joblib.dump(tiny, tmp_path / "mdn.joblib")
    loaded = joblib.load(tmp_path / "mdn.joblib")
    np.testing.assert_array_equal(loaded.predict(ar_data[:20]), tiny.predict(ar_data[:20]))
    np.testing.assert_array_equal(
        loaded.sample(ar_data[:2], 30, random_state=0), tiny.sample(ar_data[:2], 30, random_state=0)
    )


# --- bad input and faults (RELIABILITY.md) -------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_fit_names_trajectory_and_frame(ar_data, bad):
    broken = ar_data[:300].copy()
    broken[5, 1] = bad
    with pytest.raises(ValueError, match="trajectory 1, frame 5"):
        tiny_mdn().fit([ar_data[:300], broken])


def test_nan_at_predict_score_and_sample_is_an_error_never_nan_output(tiny, ar_data):
    broken = ar_data[:50].copy()
    broken[7, 0] = np.nan
    for method in (tiny.predict, tiny.score, tiny.score_samples):
        with pytest.raises(ValueError, match="frame 7"):
            method(broken)
    with pytest.raises(ValueError, match="NaN"):
        tiny.sample(broken[5:9], 10)
    with pytest.raises(ValueError, match="inf"):
        tiny.sample(np.array([[np.inf, 0.0]]), 10)


def test_far_out_inputs_give_errors_not_nan(tiny):
    huge = np.array([[1e300, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="too far outside the training data"):
        tiny.predict(huge)
    with pytest.raises(ValueError, match="too far outside the training data"):
        tiny.sample(huge, 5)


def test_wrong_number_of_features_is_reported(tiny):
    X = np.zeros((20, 3))
    msg = "X has 3 features, but MDNPropagator is expecting 2 features"
    for method in (tiny.predict, tiny.score, tiny.score_samples):
        with pytest.raises(ValueError, match=msg):
            method(X)
    with pytest.raises(ValueError, match=msg):
        tiny.sample(np.zeros((1, 3)), 10)


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(20), "Expected 2D array"),
        (np.zeros((0, 2)), "0 sample"),
        (np.zeros((20, 0)), "0 feature"),
    ],
)
def test_one_dimensional_empty_and_featureless_input_is_rejected(X, match):
    with pytest.raises(ValueError, match=match):
        tiny_mdn().fit(X)


def test_one_dimensional_start_frames_are_rejected(tiny):
    with pytest.raises(ValueError, match="Expected 2D array"):
        tiny.sample(np.zeros(2), 10)


def test_numeric_kinds_are_accepted_and_float32_is_preserved(ar_data, tmp_path):
    ints = np.round(10 * ar_data[:500]).astype(np.int64)
    tiny_mdn().fit(ints)
    path = tmp_path / "x.npy"
    np.save(path, ar_data[:500])
    memmap = np.load(path, mmap_mode="r")
    mdn = tiny_mdn().fit(memmap)
    mdn32 = tiny_mdn().fit(ar_data[:500].astype(np.float32))
    assert mdn32.predict(ar_data[:10].astype(np.float32)).dtype == np.float32
    assert mdn32.predict(ar_data[:10]).dtype == np.float64
    assert mdn.predict(memmap[:10]).dtype == np.float64
    assert mdn.sample(ar_data[:2].astype(np.float32), 5).dtype == np.float32
    assert mdn.predict(ints[:10]).dtype == np.float64


def test_object_complex_and_sparse_input_is_rejected(ar_data):
    strings = np.array([["a", "b"]] * 20, dtype=object)
    with pytest.raises((ValueError, TypeError)):
        tiny_mdn().fit(strings)
    with pytest.raises(ValueError, match="Complex data not supported"):
        tiny_mdn().fit(ar_data[:50] + 1j)
    with pytest.raises(TypeError, match="Sparse data was passed"):
        tiny_mdn().fit(sparse.csr_matrix(ar_data[:50]))


def test_short_trajectories_are_skipped_with_a_warning(ar_data):
    trajs = [ar_data[:400], ar_data[400:402], ar_data[500:900], ar_data[950:951]]
    with pytest.warns(UserWarning, match=r"Trajectories \[1, 3\] have at most lag_time=3"):
        mdn = tiny_mdn(lag_time=3).fit(trajs)
    assert np.isfinite(mdn.score(ar_data[:100]))


def test_every_trajectory_too_short_is_an_error_with_lag_and_longest_length(ar_data):
    with pytest.raises(ValueError, match=r"longest trajectory has 4 frames.*lag_time=5"):
        tiny_mdn(lag_time=5).fit([ar_data[:4], ar_data[4:7]])
    with pytest.raises(ValueError, match="n_samples=1"):
        tiny_mdn().fit(ar_data[:1])


@pytest.mark.parametrize(
    "params, name",
    [
        ({"lag_time": 0}, "lag_time"),
        ({"lag_time": -2}, "lag_time"),
        ({"lag_time": 1.5}, "lag_time"),
        ({"lag_time": "1"}, "lag_time"),
        ({"n_kernels": 0}, "n_kernels"),
        ({"sigma_floor": 0.0}, "sigma_floor"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"hidden_layer_sizes": (16, -1)}, "hidden_layer_sizes"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"activation": "cube"}, "activation"),
        ({"device": "tpu"}, "device"),
        ({"batch_size": 0}, "batch_size"),
        ({"reversible": "yes"}, "reversible"),
        ({"density_weighting": -0.1}, "density_weighting"),
        ({"density_weighting": 1.5}, "density_weighting"),
        ({"n_init": 0}, "n_init"),
        ({"n_init": 2.0}, "n_init"),
    ],
)
def test_bad_parameters_are_errors_that_name_the_parameter(ar_data, params, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        tiny_mdn(**params).fit(ar_data[:100])


def test_ragged_feature_counts_name_the_trajectory_and_shapes(ar_data):
    with pytest.raises(ValueError, match=r"trajectory 0 has shape \(50, 2\).*trajectory 1 has"):
        tiny_mdn().fit([ar_data[:50], ar_data[:50, :1]])


def test_constant_features(ar_data):
    with pytest.raises(ValueError, match="Every feature of X is constant"):
        tiny_mdn().fit(np.ones((100, 2)))
    x = np.column_stack([ar_data[:1000, 0], np.full(1000, 3.0)])
    with pytest.warns(UserWarning, match=r"Features \[1\] are constant"):
        mdn = tiny_mdn().fit(x)
    traj = mdn.sample(x[:2], 200, random_state=0)
    np.testing.assert_array_equal(traj[:, :, 1], 3.0)
    # The zero-width box of the constant feature rejects nothing: the other one moves.
    assert mdn.wall_hit_rate_ < 0.01
    assert len(np.unique(traj[:, :, 0])) > 300
    single = mdn.sample(x[:1], 200, random_state=0)
    np.testing.assert_array_equal(single[:, :, 1], 3.0)
    assert mdn.wall_hit_rate_ < 0.01 and len(np.unique(single[0, :, 0])) > 150


def test_training_divergence_is_a_named_error_not_a_nan_model(ar_data):
    mdn = tiny_mdn(learning_rate=1e30, max_epochs=5)
    with pytest.raises(NonFiniteLossError, match=r"MDNPropagator: .* at epoch \d+"):
        mdn.fit(ar_data[:2000])
    with pytest.raises(NotFittedError):
        mdn.predict(ar_data[:10])


def test_likelihood_stays_finite_for_many_kernels_tiny_widths_and_outliers():
    n, C, m = 64, 200, 3
    log_w = torch.log_softmax(torch.randn(n, C) * 30, dim=1)
    mu = torch.randn(n, C, m, requires_grad=True)
    sigma = torch.full((n, C, m), 1e-3, requires_grad=True)
    targets = torch.randn(n, m) * 1e6
    logp = _mixture_log_density(log_w, mu, sigma, targets)
    assert torch.isfinite(logp).all()
    (-logp.mean()).backward()
    assert torch.isfinite(mu.grad).all() and torch.isfinite(sigma.grad).all()


def test_fit_with_many_kernels_and_an_outlier_keeps_finite_losses(ar_data):
    x = ar_data[:1500].copy()
    x[700] = [40.0, -40.0]  # one wild frame, far beyond the others
    mdn = tiny_mdn(n_kernels=64, max_epochs=3).fit(x)
    assert all(np.isfinite(mdn.history_["train_nll"]))
    pairs = np.array([[0.0, 0.0], [1e4, -1e4]])
    assert np.all(np.isfinite(mdn.score_samples(pairs)))
    assert mdn.net_.module_.sigma_floor == 1e-3


def test_same_random_state_gives_bitwise_identical_fits(ar_data):
    a = tiny_mdn(random_state=3).fit(ar_data[:1500])
    b = tiny_mdn(random_state=3).fit(ar_data[:1500])
    c = tiny_mdn(random_state=4).fit(ar_data[:1500])
    for (name, pa), pb in zip(
        a.net_.module_.state_dict().items(), b.net_.module_.state_dict().values()
    ):
        assert torch.equal(pa, pb), name
    assert not all(
        torch.equal(pa, pc)
        for pa, pc in zip(
            a.net_.module_.state_dict().values(), c.net_.module_.state_dict().values()
        )
    )
    assert a.predict(ar_data[:20]).tobytes() == b.predict(ar_data[:20]).tobytes()
    assert (
        a.sample(ar_data[:2], 50, random_state=0).tobytes()
        == b.sample(ar_data[:2], 50, random_state=0).tobytes()
    )


def state_bytes(mdn):
    return b"".join(p.numpy().tobytes() for p in mdn.net_.module_.state_dict().values())


# --- n_init: the best of several fits by rollout_error ---------------------------------------


def test_n_init_keeps_the_fit_with_the_lowest_rollout_error(ar_data):
    X = ar_data[:3000]
    kept = tiny_mdn(random_state=5, n_init=3).fit(X)
    assert kept.init_errors_.shape == (3,) and np.isfinite(kept.init_errors_).all()
    assert len(set(kept.init_errors_)) == 3  # different fits, so there was a choice
    assert kept.best_init_ == int(np.argmin(kept.init_errors_))
    # All fits are rated with one seed drawn after theirs; recomputing the kept fit's error
    # with it gives the minimum.
    rollout_seed = derive_seeds(5, 4)[3]
    assert kept.rollout_error(X, random_state=rollout_seed) == kept.init_errors_.min()
    # The first fit is the one n_init=1 gives with the same int random_state.
    first = tiny_mdn(random_state=5).fit(X)
    assert first.init_errors_ is None and first.best_init_ == 0
    assert first.rollout_error(X, random_state=rollout_seed) == kept.init_errors_[0]
    assert (state_bytes(kept) == state_bytes(first)) == (kept.best_init_ == 0)


def test_n_init_copies_the_whole_fitted_state_of_the_fit_kept(ar_data, monkeypatch):
    X = ar_data[:3000]
    seeds = derive_seeds(5, 4)
    planned = {5: 0.9, seeds[1]: 0.7, seeds[2]: 0.2}
    monkeypatch.setattr(
        MDNPropagator, "rollout_error", lambda self, X, **kw: planned[self.random_state]
    )
    kept = tiny_mdn(random_state=5, n_init=3).fit(X)
    assert kept.best_init_ == 2 and kept.init_errors_.tolist() == [0.9, 0.7, 0.2]
    alone = tiny_mdn(random_state=seeds[2]).fit(X)
    assert state_bytes(kept) == state_bytes(alone)
    assert kept.history_ == alone.history_ and kept.n_iter_ == alone.n_iter_
    np.testing.assert_array_equal(kept.data_max_, alone.data_max_)
    # The parameters are the caller's, not the kept fit's.
    assert kept.random_state == 5 and kept.n_init == 3


def test_n_init_gives_each_fit_its_own_checkpoint_and_resumes_from_them(ar_data, tmp_path, capsys):
    X = ar_data[:3000]
    path = tmp_path / "mdn.sklss"
    first = tiny_mdn(random_state=1, n_init=2, checkpoint=path).fit(X)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mdn.init0.sklss", "mdn.init1.sklss"]
    capsys.readouterr()
    again = tiny_mdn(random_state=1, n_init=2, checkpoint=str(path), verbose=1).fit(X)
    out = capsys.readouterr().out
    for i in range(2):
        assert f"Resuming from {tmp_path / f'mdn.init{i}.sklss'}" in out
        assert f"init {i + 1}/2: " in out
    assert state_bytes(again) == state_bytes(first)
    assert again.init_errors_.tolist() == first.init_errors_.tolist()


def test_a_model_pickled_before_n_init_existed_loads_as_a_single_fit(tiny, tmp_path, ar_data):
    old = clone(tiny)
    old.__dict__.update(tiny.__dict__)
    for name in ("n_init", "init_errors_", "best_init_"):
        del old.__dict__[name]
    joblib.dump(old, tmp_path / "old.joblib")
    loaded = joblib.load(tmp_path / "old.joblib")
    assert loaded.get_params()["n_init"] == 1
    assert loaded.init_errors_ is None and loaded.best_init_ == 0
    assert clone(loaded).n_init == 1
    np.testing.assert_array_equal(loaded.predict(ar_data[:5]), tiny.predict(ar_data[:5]))


def test_n_init_without_a_random_state_still_rates_every_fit(ar_data):
    kept = tiny_mdn(random_state=None, n_init=2).fit(ar_data[:2000])
    assert kept.init_errors_.shape == (2,) and np.isfinite(kept.init_errors_).all()
    assert kept.sample(ar_data[:2], 20, random_state=0).shape == (2, 20, 2)


def test_fit_does_not_depend_on_the_torch_thread_setting(ar_data):
    # joblib workers run with one thread each; the parent process may have more.
    fits = []
    for threads in (1, 2):
        torch.set_num_threads(threads)
        fits.append(tiny_mdn(hidden_layer_sizes=(32, 32), max_epochs=3).fit(ar_data[:4000]))
    torch.set_num_threads(1)
    assert torch.get_num_threads() == 1
    a, b = (f.net_.module_.state_dict() for f in fits)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_global_random_state_is_untouched(ar_data):
    np.random.seed(0)
    torch.manual_seed(0)
    before = np.random.random(), torch.rand(1).item()
    np.random.seed(0)
    torch.manual_seed(0)
    mdn = tiny_mdn().fit(ar_data[:500])
    mdn.sample(ar_data[:2], 10, random_state=1)
    assert (np.random.random(), torch.rand(1).item()) == before


def test_not_fitted_raises(ar_data):
    for method in ("predict", "score", "score_samples"):
        with pytest.raises(NotFittedError):
            getattr(tiny_mdn(), method)(ar_data[:10])
    with pytest.raises(NotFittedError):
        tiny_mdn().sample(ar_data[:1], 10)


# --- the paper's section 3.1, small and seeded ---------------------------------------------


@pytest.mark.slow
def test_four_well_reproduction_stationary_density_timescale_and_transitions():
    from sklss.datasets import four_well, four_well_reference

    stride, lag = 10, 10  # frames every 10 steps; lag 100 steps as in the paper
    x = four_well(2_000_000, stride=stride, random_state=0)
    ref = four_well_reference(stride=stride)
    mdn = MDNPropagator(
        lag_time=lag,
        n_kernels=8,
        hidden_layer_sizes=(100, 100),
        max_epochs=30,
        patience=6,
        random_state=0,
    ).fit(x)
    # A synthetic trajectory with as many frames as the training data, one lag time apart.
    syn = mdn.sample(x[:1], len(x), random_state=1)[0, :, 0]

    edges = np.linspace(-1.1, 1.1, 51)
    F_exact = exact_free_energy(ref, edges)
    F_syn, _ = free_energy_profile(syn, bins=edges)
    assert free_energy_rmse(F_exact, F_syn, max_free_energy=4.0) <= 0.2

    t1 = markov_timescale(syn, edges) * lag
    assert t1 == pytest.approx(ref.timescales[0], rel=0.15)

    # Transition density on 100 bins: one step from starts spread over each populated bin,
    # against the exact one; weighted by the stationary probability of the start bin.
    td_edges = np.linspace(-1.1, 1.1, 101)
    share = (
        np.clip(
            np.minimum(ref.edges[1:, None], td_edges[None, 1:])
            - np.maximum(ref.edges[:-1, None], td_edges[None, :-1]),
            0,
            None,
        )
        / np.diff(ref.edges)[:, None]
    )
    pi = ref.stationary_density * np.diff(ref.edges)
    T_exact = share.T @ (pi[:, None] * ref.transition_matrix(lag)) @ share
    p_bins = T_exact.sum(axis=1)
    rows = np.flatnonzero(-np.log(p_bins / p_bins.max()) <= 4.0)
    rng = np.random.default_rng(2)
    starts = td_edges[rows, None] + np.diff(td_edges)[rows, None] * rng.random((len(rows), 2000))
    starts = np.clip(starts, mdn.data_min_[0], mdn.data_max_[0])
    ends = mdn.sample(starts.reshape(-1, 1), n_steps=2, random_state=3)[:, 1, 0].reshape(
        starts.shape
    )
    js = np.array(
        [js_divergence(np.histogram(e, td_edges)[0], T_exact[r]) for r, e in zip(rows, ends)]
    )
    weighted_js = np.sum(js * p_bins[rows]) / p_bins[rows].sum()
    assert weighted_js < 0.03
