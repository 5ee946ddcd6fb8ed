import warnings

import joblib
import numpy as np
import pytest
import torch
from conftest import ar1, flip_chain, small_srv
from scipy import sparse

from sklss import SRVTransformer


@pytest.fixture(scope="module")
def ou_data():
    return ar1(4000, [0.9, 0.2], random_state=0)


@pytest.fixture(scope="module")
def fitted(ou_data):
    return small_srv().fit(ou_data)


# --- known answers -------------------------------------------------------------------------


def test_leading_eigenvalue_of_linear_process_matches_its_autocorrelation():
    # For independent AR(1) processes with coefficients a_i, the leading transfer-operator
    # eigenvalue at lag tau is max(a_i)**tau, carried by the slow coordinate itself.
    x = ar1(20_000, [0.9, 0.3], random_state=1)
    srv = small_srv(lag_time=2, max_epochs=30).fit(x)
    assert srv.eigenvalues_[0] == pytest.approx(0.81, abs=0.03)
    assert srv.timescales_[0] == pytest.approx(-1 / np.log(0.9), rel=0.15)
    psi = srv.transform(x)[:, 0]
    assert abs(np.corrcoef(psi, x[:, 0])[0, 1]) > 0.98


def test_transform_is_whitened_and_ordered(ou_data):
    srv = small_srv(n_components=2, max_epochs=20).fit(ou_data)
    psi = srv.transform(ou_data)
    np.testing.assert_allclose(psi.mean(axis=0), 0, atol=0.05)
    np.testing.assert_allclose(np.cov(psi.T), np.eye(2), atol=0.05)
    assert srv.eigenvalues_[0] >= srv.eigenvalues_[1]
    assert np.all(np.diff(srv.timescales_) <= 0)


def test_sign_convention_makes_the_largest_magnitude_value_positive(fitted, ou_data):
    psi = fitted.transform(ou_data)
    idx = np.argmax(np.abs(psi), axis=0)
    assert np.all(psi[idx, np.arange(psi.shape[1])] > 0)


def test_auto_picks_the_number_of_components_at_the_largest_eigenvalue_gap():
    x = ar1(10_000, [0.95, 0.1, 0.1], random_state=2)
    srv = small_srv(n_components="auto", n_basis=3, max_epochs=20).fit(x)
    # Gaps between eigenvalues clipped from below at the noise floor, the floor itself last.
    clipped = np.append(np.maximum(srv.all_eigenvalues_, srv.noise_floor_), srv.noise_floor_)
    assert srv.n_components_ == int(np.argmax(clipped[:-1] - clipped[1:])) + 1
    assert srv.transform(x).shape == (10_000, srv.n_components_)
    assert srv.noise_floor_ == pytest.approx(3 * np.sqrt(3 / 9_999))


def test_row27_noise_eigenvalues_of_the_basis_give_nan_timescales():
    rng = np.random.default_rng(3)
    x = np.hstack([flip_chain(10_000, [0.05], random_state=3), rng.normal(size=(10_000, 2))])
    srv = small_srv(n_components=3, max_epochs=20).fit(x)
    assert srv.noise_floor_ == pytest.approx(3 * np.sqrt(3 / 9_999))
    assert srv.timescales_[0] == pytest.approx(-1 / np.log(0.9), rel=0.15)
    # The other two directions are noise: small eigenvalues (a sub-frame "timescale" under
    # the old rule), now no timescale at all.
    assert (np.abs(srv.eigenvalues_[1:]) <= srv.noise_floor_).all()
    assert np.isnan(srv.timescales_[1:]).all()


def test_auto_ignores_the_negative_tail_and_negative_eigenvalues_have_no_timescale():
    # A fast positive process (eigenvalue 0.25) and an alternating one (-0.95): VAMP-2 squares
    # eigenvalues, so the SRV learns the alternating chain and the product of the two
    # (about -0.24) as well. Largest raw gap: between the two negative ones.
    rng = np.random.default_rng(4)
    x = flip_chain(10_000, [0.375, 0.975], random_state=4) + 0.05 * rng.normal(size=(10_000, 2))
    auto = small_srv(n_components="auto", n_basis=3, max_epochs=20).fit(x)
    lam = auto.all_eigenvalues_
    assert lam[0] == pytest.approx(0.25, abs=0.05) and lam[-1] < -0.85
    old_rule = int(np.argmax(lam[:-1] - lam[1:])) + 1
    assert old_rule >= 2  # the old rule kept a negative eigenvalue
    assert auto.n_components_ == 1
    assert auto.timescales_[0] == pytest.approx(-1 / np.log(0.25), rel=0.15)
    every = small_srv(n_components=3, n_basis=3, max_epochs=20).fit(x)
    np.testing.assert_allclose(every.eigenvalues_, lam)
    assert np.isfinite(every.timescales_[0]) and np.isnan(every.timescales_[1:]).all()


def test_auto_rule_on_given_spectra():
    from sklss.encoder import _components_at_largest_gap

    # Two resolved eigenvalues, then noise and a big negative tail.
    assert _components_at_largest_gap([0.9, 0.85, 0.01, -0.9], 0.05) == 2
    assert _components_at_largest_gap([0.3, 0.0, -0.9], 0.05) == 1
    assert _components_at_largest_gap([0.9, 0.3, 0.25], 0.05) == 1
    with pytest.warns(UserWarning, match="No eigenvalue of the learned basis is above"):
        assert _components_at_largest_gap([0.02, -0.5], 0.05) == 1


def test_score_of_held_out_data_beats_a_meaningless_fit(fitted):
    test = ar1(4000, [0.9, 0.2], random_state=99)
    score = fitted.score(test)
    assert 1.0 < score <= 2.0 + 1e-9
    assert score == pytest.approx(1 + 0.9**2, abs=0.08)
    shuffled = test[np.random.default_rng(0).permutation(len(test))]
    assert fitted.score(shuffled) < 1.05


def test_history_records_train_and_validation_vamp2(fitted):
    h = fitted.history_
    assert len(h["epoch"]) == len(h["train_vamp2"]) == len(h["valid_vamp2"]) == fitted.n_iter_
    assert all(1.0 <= v <= 2.0 + 1e-6 for v in h["valid_vamp2"])
    # Training must improve the held-out score over the first epoch.
    assert max(h["valid_vamp2"]) > h["valid_vamp2"][0]


def test_early_stopping_restores_the_best_epoch(ou_data):
    srv = small_srv(max_epochs=60, patience=3).fit(ou_data)
    valid = srv.history_["valid_vamp2"]
    assert len(valid) < 60
    best = int(np.argmax(valid))
    assert len(valid) - 1 - best >= 3
    # The restored weights reproduce the best validation score, not the last one.
    srv2 = small_srv(max_epochs=best + 1, patience=100).fit(ou_data)
    np.testing.assert_allclose(srv.eigenvalues_, srv2.eigenvalues_, rtol=1e-6)


# --- data forms ----------------------------------------------------------------------------


def test_list_in_list_out_and_array_in_array_out(fitted, ou_data):
    trajs = [ou_data[:1000], ou_data[1000:2500]]
    out = fitted.transform(trajs)
    assert isinstance(out, list) and [o.shape for o in out] == [(1000, 1), (1500, 1)]
    np.testing.assert_allclose(out[1], fitted.transform(ou_data[1000:2500]))


def test_transform_of_unseen_frames_does_not_depend_on_batch(fitted, ou_data):
    full = fitted.transform(ou_data)
    single = np.concatenate([fitted.transform(ou_data[i : i + 1]) for i in range(50)])
    np.testing.assert_allclose(full[:50], single, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_transform_preserves_float_dtype(fitted, ou_data, dtype):
    assert fitted.transform(ou_data.astype(dtype)).dtype == dtype


def test_integer_and_memmap_inputs_are_accepted(tmp_path, ou_data):
    ints = np.round(ou_data * 10).astype(np.int64)
    srv = small_srv(max_epochs=2).fit(ints)
    assert srv.transform(ints).dtype == np.float64
    path = tmp_path / "x.npy"
    np.save(path, ou_data)
    mm = np.load(path, mmap_mode="r")
    np.testing.assert_array_equal(
        small_srv(max_epochs=2).fit(mm).transform(mm)[:5],
        small_srv(max_epochs=2).fit(ou_data).transform(ou_data)[:5],
    )


# --- bad input (RELIABILITY.md rows 1-12) --------------------------------------------------


def test_row1_nan_in_fit_names_trajectory_and_frame(ou_data):
    trajs = [ou_data[:100].copy(), ou_data[100:300].copy()]
    trajs[1][17, 0] = np.nan
    with pytest.raises(ValueError, match="NaN.*trajectory 1, frame 17"):
        small_srv().fit(trajs)


@pytest.mark.parametrize("method", ["transform", "score"])
def test_row2_nan_or_inf_after_fit_is_an_error_not_nan_output(fitted, ou_data, method):
    x = ou_data[:100].copy()
    x[5, 1] = np.inf
    with pytest.raises(ValueError, match="inf.*frame 5, feature 1"):
        getattr(fitted, method)(x)


def test_row3_wrong_feature_count(fitted):
    with pytest.raises(ValueError, match="X has 3 features, but SRVTransformer is expecting 2"):
        fitted.transform(np.zeros((10, 3)))


@pytest.mark.parametrize(
    "X, match",
    [
        (np.zeros(10), "Expected 2D array"),
        (np.zeros((0, 2)), "0 sample"),
        (np.zeros((10, 0)), "0 feature"),
    ],
)
def test_row4_one_dimensional_empty_and_featureless_input(X, match):
    with pytest.raises(ValueError, match=match):
        small_srv().fit(X)


def test_row5_object_complex_and_sparse_inputs_are_refused(ou_data):
    with pytest.raises(ValueError, match="[Cc]omplex"):
        small_srv().fit(ou_data + 1j)
    with pytest.raises(TypeError, match="[Ss]parse"):
        small_srv().fit(sparse.csr_matrix(ou_data))
    obj = np.array([["a", "b"]] * 10, dtype=object)
    with pytest.raises(ValueError):
        small_srv().fit(obj)


def test_row6_short_trajectories_warn_with_indices_and_fit_goes_on(ou_data):
    trajs = [ou_data[:2000], ou_data[2000:2003], ou_data[2003:]]
    with pytest.warns(UserWarning, match=r"Trajectories \[1\].*lag_time=5"):
        srv = small_srv(lag_time=5, max_epochs=3).fit(trajs)
    assert srv.transform(trajs[1]).shape == (3, 1)


def test_row7_every_trajectory_too_short_and_single_sample():
    message = r"longest trajectory has 8 frames; no trajectory is longer than lag_time=10"
    with pytest.raises(ValueError, match=message):
        small_srv(lag_time=10).fit([np.ones((8, 1)), np.arange(5.0)[:, None]])
    with pytest.raises(ValueError, match="n_samples=1"):
        small_srv().fit(np.ones((1, 2)))


@pytest.mark.parametrize(
    "params, name",
    [
        ({"lag_time": 0}, "lag_time"),
        ({"lag_time": 2.5}, "lag_time"),
        ({"n_components": 0}, "n_components"),
        ({"n_components": "many"}, "n_components"),
        ({"learning_rate": -1.0}, "learning_rate"),
        ({"hidden_layer_sizes": (10, -3)}, "hidden_layer_sizes"),
        ({"validation_fraction": 1.0}, "validation_fraction"),
    ],
)
def test_row8_bad_parameters_name_the_parameter(params, name, ou_data):
    with pytest.raises(ValueError, match=name):
        small_srv(**params).fit(ou_data)


def test_row8_too_many_components_for_the_data():
    with pytest.raises(ValueError, match="n_components=20.*too large for 9 lagged pairs"):
        small_srv(n_components=20, batch_size=64).fit(np.random.default_rng(0).normal(size=(10, 2)))


def test_row9_ragged_feature_counts(ou_data):
    with pytest.raises(ValueError, match=r"trajectory 1 has shape \(10, 1\)"):
        small_srv().fit([ou_data[:100], ou_data[:10, :1]])


def test_row10_constant_and_duplicated_features_give_finite_results(ou_data):
    x = np.column_stack([ou_data, ou_data[:, 0], np.full(len(ou_data), 3.0)])
    with pytest.warns(UserWarning, match=r"Features \[3\] are constant"):
        srv = small_srv(n_components=2, max_epochs=5).fit(x)
    psi = srv.transform(x)
    assert np.isfinite(psi).all() and np.isfinite(srv.eigenvalues_).all()
    assert np.isfinite(srv.score(x))


def test_row11_every_feature_constant_is_an_error():
    with pytest.raises(ValueError, match="no variance"):
        small_srv().fit(np.full((100, 3), 2.0))


def test_row12_batch_smaller_than_the_basis_is_rejected_before_training(ou_data):
    with pytest.raises(ValueError, match="batch_size=3 is too small.*at least n_basis \\+ 1 = 5"):
        small_srv(n_components=2, n_basis=4, batch_size=3).fit(ou_data)


# --- reproducibility (row 23) and persistence ----------------------------------------------


def test_row23_same_random_state_gives_bitwise_identical_models(ou_data):
    a = small_srv(max_epochs=5, random_state=7).fit(ou_data)
    b = small_srv(max_epochs=5, random_state=7).fit(ou_data)
    c = small_srv(max_epochs=5, random_state=8).fit(ou_data)
    for pa, pb in zip(a.net_.module_.parameters(), b.net_.module_.parameters()):
        assert torch.equal(pa, pb)
    np.testing.assert_array_equal(a.transform(ou_data), b.transform(ou_data))
    assert not np.array_equal(a.transform(ou_data), c.transform(ou_data))


def test_fit_leaves_the_callers_global_random_state_alone(ou_data):
    np.random.seed(123)
    torch.manual_seed(123)
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    small_srv(max_epochs=2, random_state=0).fit(ou_data)
    small_srv(max_epochs=2, random_state=None).fit(ou_data)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_joblib_round_trip_gives_identical_transform(fitted, ou_data, tmp_path):
    path = tmp_path / "srv.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    np.testing.assert_array_equal(loaded.transform(ou_data), fitted.transform(ou_data))
    assert loaded.score(ou_data) == fitted.score(ou_data)


def test_unfitted_transform_raises_not_fitted():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        small_srv().transform(np.zeros((5, 2)))


def test_verbose_zero_prints_nothing(ou_data, capsys):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        small_srv(max_epochs=2, verbose=0).fit(ou_data)
    assert capsys.readouterr().out == ""
    small_srv(max_epochs=2, verbose=1).fit(ou_data)
    assert "valid_loss" in capsys.readouterr().out


# --- fidelity on toy systems with exact answers ---------------------------------------------


@pytest.mark.slow
def test_four_well_leading_timescales_within_10_percent_of_exact():
    from sklss.datasets import four_well, four_well_reference

    # 10^7 Brownian steps saved every 100 steps: t1 is about 33 frames. At this length a
    # fine-binned MSM on the same data agrees with the exact t1 to within about 6 %.
    stride = 100
    X = four_well(500_000, n_trajectories=20, stride=stride, random_state=0)
    srv = SRVTransformer(
        lag_time=3, n_components=3, batch_size=1024, max_epochs=30, random_state=0
    ).fit(X)
    ref = four_well_reference(stride=stride).timescales
    np.testing.assert_allclose(srv.timescales_[:2], ref[:2], rtol=0.10)


@pytest.mark.slow
def test_hidden_coordinate_toy_timescales_within_10_percent_of_exact():
    from sklss.datasets import hidden_wells, hidden_wells_reference

    X = hidden_wells(25_000, n_trajectories=4, n_features=20, random_state=0)
    srv = SRVTransformer(
        lag_time=5, n_components=2, batch_size=4096, max_epochs=20, random_state=0
    ).fit(X)
    ref = hidden_wells_reference().timescales
    np.testing.assert_allclose(srv.timescales_, ref[:2], rtol=0.10)
    # Linear VAC (TICA) on the same features misses the hidden slow process by far more.
    from sklss.metrics import implied_timescales

    linear = implied_timescales(X, 5, n_components=2)
    assert abs(linear[0] / ref[0] - 1) > 0.10 or abs(linear[1] / ref[1] - 1) > 0.10
