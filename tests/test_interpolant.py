import warnings

import numpy as np
import pytest
import torch
from conftest import ar1, exact_free_energy, markov_timescale, random_walks
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from sklss import InterpolantPropagator, LatentSpaceSimulator, MDNPropagator
from sklss import interpolant as interpolant_module
from sklss._nn import NonFiniteLossError
from sklss.io import load, save

# Small networks gain nothing from intra-op threads, and lose a lot on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def small(**kw):
    params = dict(
        lag_time=1,
        hidden_layer_sizes=(32, 32),
        learning_rate=3e-3,
        batch_size=256,
        max_epochs=15,
        patience=4,
        random_state=0,
    )
    params.update(kw)
    return InterpolantPropagator(**params)


def tiny(**kw):
    params = dict(lag_time=1, hidden_layer_sizes=(16,), max_epochs=5, batch_size=64, random_state=0)
    params.update(kw)
    return InterpolantPropagator(**params)


@pytest.fixture(scope="module")
def ar_data():
    # x_{t+1} = a x_t + N(0, 1): a Gaussian transition density with known mean and variance.
    return ar1(20_000, [0.8, 0.5], random_state=0)


@pytest.fixture(scope="module")
def fitted(ar_data):
    return small().fit(ar_data)


@pytest.fixture(scope="module")
def tiny_fitted(ar_data):
    return tiny().fit(ar_data[:2000])


def with_fitted_state(est, fitted):
    """A clone of ``est`` that carries the fitted attributes of ``fitted``."""
    copy = clone(est)
    copy.__dict__.update({k: v for k, v in fitted.__dict__.items() if k.endswith("_")})
    return copy


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
    # Both features are independent in the data, and stay so.
    assert abs(np.corrcoef(step.T)[0, 1]) < 0.05


def test_bridge_variance_follows_the_spread_of_the_transition_density(fitted):
    # The nearest-neighbour estimate of E[Var(x_{t+1} | x_t)] is 1 for both features.
    np.testing.assert_allclose(fitted.bridge_variance_, [1.0, 1.0], rtol=0.15)


def test_score_is_higher_for_the_dynamics_than_for_shuffled_frames(fitted):
    test = ar1(5000, [0.8, 0.5], random_state=5)
    shuffled = test[np.random.default_rng(0).permutation(len(test))]
    assert fitted.score(test) > fitted.score(shuffled) + 1.0
    assert fitted.score(test) == fitted.score(test)
    parts = fitted.score_samples([test[:50], test[50:80]])
    assert [p.shape for p in parts] == [(49,), (29,)]
    np.testing.assert_array_equal(parts[0], fitted.score_samples(test[:50]))


def test_rollout_error_is_lower_on_its_own_process_than_on_a_wider_one(fitted, ar_data):
    # The same process at twice the amplitude: its tails lie outside the box the simulated
    # trajectories keep to, and those bins count at the cap.
    own = fitted.rollout_error(ar_data, n_steps=500)
    with pytest.warns(UserWarning, match="outside the range of the training data"):
        wider = fitted.rollout_error(2.0 * ar_data, n_steps=500)
    assert wider > own + 1.0, (own, wider)
    assert fitted.rollout_error(ar_data, n_steps=500) == own


def test_history_records_the_losses(fitted):
    history = fitted.history_
    assert set(history) == {"epoch", "train_loss", "valid_loss"}
    assert len(history["epoch"]) == fitted.n_iter_
    assert all(np.isfinite(history["train_loss"])) and all(np.isfinite(history["valid_loss"]))


# --- sampling ------------------------------------------------------------------------------


def test_sample_shape_start_frame_and_dtype(tiny_fitted, ar_data):
    X0 = ar_data[:3]
    traj = tiny_fitted.sample(X0, n_steps=40, random_state=0)
    assert traj.shape == (3, 40, 2) and traj.dtype == np.float64
    np.testing.assert_array_equal(traj[:, 0], X0)
    traj32 = tiny_fitted.sample(X0.astype(np.float32), n_steps=40, random_state=0)
    assert traj32.dtype == np.float32
    np.testing.assert_allclose(traj32, traj, rtol=1e-5, atol=1e-5)
    assert tiny_fitted.sample(X0, n_steps=1).shape == (3, 1, 2)
    assert np.all(np.isfinite(traj))


def test_sample_is_reproducible_and_random_state_matters(tiny_fitted, ar_data):
    X0 = ar_data[:2]
    a = tiny_fitted.sample(X0, 100, random_state=7)
    b = tiny_fitted.sample(X0, 100, random_state=7)
    c = tiny_fitted.sample(X0, 100, random_state=8)
    assert a.tobytes() == b.tobytes()
    assert not np.allclose(a[:, 1:], c[:, 1:])
    assert not np.allclose(tiny_fitted.sample(X0, 20)[:, 1:], tiny_fitted.sample(X0, 20)[:, 1:])


def test_sample_writes_in_chunks_to_a_memmap(tiny_fitted, ar_data, tmp_path, monkeypatch):
    monkeypatch.setattr(interpolant_module, "NOISE_CHUNK", 97)  # many chunks
    X0 = ar_data[:3]
    expected = tiny_fitted.sample(X0, 300, random_state=3)
    out = np.lib.format.open_memmap(
        tmp_path / "traj.npy", mode="w+", dtype=np.float64, shape=(3, 300, 2)
    )
    result = tiny_fitted.sample(X0, 300, random_state=3, out=out)
    assert result is out
    np.testing.assert_array_equal(np.load(tmp_path / "traj.npy"), expected)
    # Chunks continue the chain: consecutive frames stay one step apart across boundaries.
    steps = np.abs(np.diff(expected, axis=1)).max()
    assert steps < 10 * np.abs(np.diff(ar_data[:2000], axis=0)).max()
    with pytest.raises(ValueError, match="out must be a float array of shape"):
        tiny_fitted.sample(X0, 10, out=np.empty((3, 9, 2)))


def test_more_integration_steps_cost_more_and_change_the_draws(tiny_fitted, ar_data):
    fine = with_fitted_state(tiny_fitted, tiny_fitted).set_params(n_integration_steps=40)
    a = tiny_fitted.sample(ar_data[:2], 50, random_state=0)
    b = fine.sample(ar_data[:2], 50, random_state=0)
    assert a.shape == b.shape and not np.allclose(a[:, 1:], b[:, 1:])
    bad = with_fitted_state(tiny_fitted, tiny_fitted).set_params(n_integration_steps=1)
    with pytest.raises(ValueError, match="'n_integration_steps'"):
        bad.sample(ar_data[:2], 5)


# --- walls ---------------------------------------------------------------------------------


def test_a_draw_outside_the_box_keeps_the_whole_row_and_is_counted(fitted):
    narrow = with_fitted_state(fitted, fitted)
    narrow.data_min_, narrow.data_max_ = np.array([-0.7, -0.7]), np.array([0.7, 0.7])
    X0 = np.zeros((50, 2))
    with pytest.warns(UserWarning, match=r"\d+\.\d\d% of the draws left the range"):
        traj, hits, draws = narrow.sample(X0, 200, random_state=0, return_wall_hits=True)
    assert draws == 50 * 199
    assert narrow.wall_hit_rate_ == hits / draws
    assert 0.3 < narrow.wall_hit_rate_ < 0.9
    assert np.all(traj >= -0.7) and np.all(traj <= 0.7)
    same = np.diff(traj[:, 1:], axis=1) == 0
    first = np.all(np.abs(traj[:, 1] - traj[:, 0]) < 1e-6, axis=1)
    assert np.count_nonzero(same.all(axis=2)) + np.count_nonzero(first) == hits
    assert not np.any(same.any(axis=2) & ~same.all(axis=2))


def test_wall_hits_are_rare_inside_the_training_data(fitted, ar_data):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _, hits, draws = fitted.sample(ar_data[:20], 500, random_state=0, return_wall_hits=True)
    assert draws == 20 * 499 and fitted.wall_hit_rate_ < 2e-3


@pytest.mark.parametrize("n_starts", [1, 3])
def test_start_frames_outside_the_box_warn_and_later_frames_are_inside(tiny_fitted, n_starts):
    X0 = np.repeat(tiny_fitted.data_max_[None, :] + 2.0, n_starts, axis=0)
    X0[1:] = 0.0
    with pytest.warns(UserWarning, match="Start frames \\[0\\] lie outside"):
        traj = tiny_fitted.sample(X0, n_steps=50, random_state=0)
    np.testing.assert_array_equal(traj[:, 0], X0)
    assert np.all(np.isfinite(traj))
    assert np.all(traj[:, 1:] <= tiny_fitted.data_max_)
    assert np.all(traj[:, 1:] >= tiny_fitted.data_min_)
    assert len(np.unique(traj[0, 1:, 0])) > 10


def test_constant_features_are_held_at_their_value(ar_data):
    x = np.column_stack([ar_data[:1000, 0], np.full(1000, 3.0)])
    with pytest.warns(UserWarning, match=r"Features \[1\] are constant"):
        prop = tiny().fit(x)
    traj = prop.sample(x[:2], 200, random_state=0)
    np.testing.assert_array_equal(traj[:, :, 1], 3.0)
    assert prop.wall_hit_rate_ < 0.01
    assert len(np.unique(traj[:, :, 0])) > 300


# --- bad input and faults (RELIABILITY.md) -------------------------------------------------


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_nan_or_inf_in_fit_names_trajectory_and_frame(ar_data, bad):
    broken = ar_data[:300].copy()
    broken[5, 1] = bad
    with pytest.raises(ValueError, match="trajectory 1, frame 5"):
        tiny().fit([ar_data[:300], broken])


def test_nan_at_predict_score_and_sample_is_an_error_never_nan_output(tiny_fitted, ar_data):
    broken = ar_data[:50].copy()
    broken[7, 0] = np.nan
    for method in (tiny_fitted.predict, tiny_fitted.score, tiny_fitted.score_samples):
        with pytest.raises(ValueError, match="frame 7"):
            method(broken)
    with pytest.raises(ValueError, match="NaN"):
        tiny_fitted.sample(broken[5:9], 10)
    with pytest.raises(ValueError, match="inf"):
        tiny_fitted.sample(np.array([[np.inf, 0.0]]), 10)
    huge = np.array([[1e300, 0.0], [0.0, 0.0]])
    with pytest.raises(ValueError, match="too far outside the training data"):
        tiny_fitted.sample(huge, 5)


def test_wrong_number_of_features_and_bad_shapes_are_reported(tiny_fitted):
    msg = "X has 3 features, but InterpolantPropagator is expecting 2 features"
    for method in (tiny_fitted.predict, tiny_fitted.score):
        with pytest.raises(ValueError, match=msg):
            method(np.zeros((20, 3)))
    with pytest.raises(ValueError, match=msg):
        tiny_fitted.sample(np.zeros((1, 3)), 10)
    with pytest.raises(ValueError, match="Expected 2D array"):
        tiny_fitted.sample(np.zeros(2), 10)
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError, match="'n_steps'"):
            tiny_fitted.sample(np.zeros((1, 2)), bad)


def test_every_trajectory_too_short_is_an_error_and_short_ones_are_skipped(ar_data):
    with pytest.raises(ValueError, match=r"longest trajectory has 4 frames.*lag_time=5"):
        tiny(lag_time=5).fit([ar_data[:4], ar_data[4:7]])
    with pytest.warns(UserWarning, match=r"Trajectories \[1\] have at most lag_time=3"):
        tiny(lag_time=3).fit([ar_data[:400], ar_data[400:402]])


@pytest.mark.parametrize(
    "params, name",
    [
        ({"lag_time": 0}, "lag_time"),
        ({"n_integration_steps": 1}, "n_integration_steps"),
        ({"n_integration_steps": 2.5}, "n_integration_steps"),
        ({"noise_scale": 0.0}, "noise_scale"),
        ({"noise_scale": -1.0}, "noise_scale"),
        ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
        ({"activation": "cube"}, "activation"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
        ({"device": "tpu"}, "device"),
        ({"reversible": "yes"}, "reversible"),
    ],
)
def test_bad_parameters_are_errors_that_name_the_parameter(ar_data, params, name):
    with pytest.raises(ValueError, match=f"'{name}' parameter"):
        tiny(**params).fit(ar_data[:100])


def test_every_feature_constant_is_an_error():
    with pytest.raises(ValueError, match="Every feature of X is constant"):
        tiny().fit(np.ones((100, 2)))


def test_training_divergence_is_a_named_error_not_a_nan_model(ar_data):
    prop = tiny(learning_rate=1e30, max_epochs=5)
    with pytest.raises(NonFiniteLossError, match=r"InterpolantPropagator: .* at epoch \d+"):
        prop.fit(ar_data[:2000])
    with pytest.raises(NotFittedError):
        prop.predict(ar_data[:10])


def test_not_fitted_raises(ar_data):
    for method in ("predict", "score", "score_samples"):
        with pytest.raises(NotFittedError):
            getattr(tiny(), method)(ar_data[:10])
    with pytest.raises(NotFittedError):
        tiny().sample(ar_data[:1], 10)


def test_same_random_state_gives_bitwise_identical_fits_and_samples(ar_data):
    a = tiny(random_state=3).fit(ar_data[:1500])
    b = tiny(random_state=3).fit(ar_data[:1500])
    c = tiny(random_state=4).fit(ar_data[:1500])
    sa, sb, sc = (p.net_.module_.state_dict() for p in (a, b, c))
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)
    assert a.score(ar_data[:100]) == b.score(ar_data[:100])
    assert (
        a.sample(ar_data[:2], 30, random_state=0).tobytes()
        == b.sample(ar_data[:2], 30, random_state=0).tobytes()
    )


def test_global_random_state_is_untouched(ar_data):
    np.random.seed(0)
    torch.manual_seed(0)
    before = np.random.random(), torch.rand(1).item()
    np.random.seed(0)
    torch.manual_seed(0)
    tiny().fit(ar_data[:500]).sample(ar_data[:2], 10, random_state=1)
    assert (np.random.random(), torch.rand(1).item()) == before


# --- persistence and checkpoints -----------------------------------------------------------


def test_safe_model_file_round_trip_gives_identical_samples(tiny_fitted, ar_data, tmp_path):
    save(tiny_fitted, tmp_path / "interpolant.sklss")
    loaded = load(tmp_path / "interpolant.sklss")
    assert type(loaded) is InterpolantPropagator
    assert loaded.get_params() == tiny_fitted.get_params()
    np.testing.assert_array_equal(loaded.bridge_variance_, tiny_fitted.bridge_variance_)
    for method in ("predict", "score_samples"):
        np.testing.assert_array_equal(
            getattr(loaded, method)(ar_data[:40]), getattr(tiny_fitted, method)(ar_data[:40])
        )
    np.testing.assert_array_equal(
        loaded.sample(ar_data[:3], 40, random_state=2),
        tiny_fitted.sample(ar_data[:3], 40, random_state=2),
    )


def test_fit_resumed_from_a_checkpoint_matches_an_uninterrupted_fit(ar_data, tmp_path):
    path = tmp_path / "interpolant.ckpt"
    x = ar_data[:3000]
    tiny(max_epochs=2, checkpoint=path).fit(x)
    resumed = tiny(max_epochs=4, checkpoint=str(path)).fit(x)
    assert dict(resumed.net_.callbacks_)["checkpoint"].resumed_from_ == 2
    straight = tiny(max_epochs=4).fit(x)
    for name in ("module_", "trainee_"):
        a = getattr(resumed.net_, name).state_dict()
        b = getattr(straight.net_, name).state_dict()
        assert all(torch.equal(a[k], b[k]) for k in a), name
    assert resumed.history_ == straight.history_
    np.testing.assert_array_equal(
        resumed.sample(x[:2], 20, random_state=0), straight.sample(x[:2], 20, random_state=0)
    )


# --- in the composite ----------------------------------------------------------------------


def test_the_simulator_takes_it_as_its_propagator_and_reports_wall_hits():
    X = random_walks(n_trajs=4, n_frames=400, n_features=2)
    lss = LatentSpaceSimulator(
        "passthrough", tiny(max_epochs=3), "passthrough", lag_time=2, random_state=0
    ).fit(X)
    assert isinstance(lss.propagator_, InterpolantPropagator)
    assert lss.propagator_.lag_time == 2
    run = lss.sample(np.stack([x[0] for x in X]), 30, random_state=0)
    assert run.latent.shape == (4, 30, 2) and np.isfinite(run.latent).all()
    assert run.wall_hit_rate is not None and 0 <= run.wall_hit_rate < 0.2


def test_grid_search_over_both_propagators_in_the_simulator():
    from sklss.datasets import four_well

    X = four_well(200_000, n_trajectories=4, stride=10, random_state=0)
    mdn = MDNPropagator(n_kernels=4, hidden_layer_sizes=(16,), max_epochs=3, batch_size=256)
    bridge = InterpolantPropagator(hidden_layer_sizes=(16,), max_epochs=3, batch_size=256)
    search = GridSearchCV(
        LatentSpaceSimulator("passthrough", mdn, "passthrough", lag_time=10, random_state=0),
        {"propagator": [mdn, bridge]},
        cv=[(np.arange(3), np.arange(3, 4))],
        refit=True,
    ).fit(X)
    scores = search.cv_results_["mean_test_score"]
    assert len(scores) == 2 and np.all(np.isfinite(scores))
    kinds = [type(p["propagator"]).__name__ for p in search.cv_results_["params"]]
    assert kinds == ["MDNPropagator", "InterpolantPropagator"]
    # The candidates were cloned, never fitted in place.
    assert not hasattr(bridge, "net_") and not hasattr(mdn, "net_")
    assert hasattr(search.best_estimator_.propagator_, "net_")


# --- the paper's section 3.1, small and seeded ---------------------------------------------


@pytest.mark.slow
def test_four_well_free_energy_and_timescale_match_the_exact_ones():
    from sklss.datasets import four_well, four_well_reference
    from sklss.metrics import free_energy_profile, free_energy_rmse

    stride, lag = 10, 10  # frames every 10 steps; lag 100 steps as in the paper
    x = four_well(2_000_000, stride=stride, random_state=0)
    ref = four_well_reference(stride=stride)
    prop = InterpolantPropagator(
        lag_time=lag, max_epochs=25, patience=10, random_state=0, n_integration_steps=10
    ).fit(x)
    # 100 synthetic trajectories of 2000 steps from frames spread over the data: as many
    # frames as the training data, each one lag time after the last.
    syn = prop.sample(x[:: len(x) // 100][:100], 2000, random_state=1)[:, :, 0]
    edges = np.linspace(-1.1, 1.1, 51)
    F_syn, _ = free_energy_profile(syn.ravel(), bins=edges)
    # Measured: 0.13 kT, and t1 3 % below the exact 334 frames.
    assert free_energy_rmse(exact_free_energy(ref, edges), F_syn, max_free_energy=4.0) <= 0.2
    t1 = markov_timescale(list(syn[:, :, None]), edges) * lag
    assert t1 == pytest.approx(ref.timescales[0], rel=0.15)
    assert prop.wall_hit_rate_ < 1e-3
