"""Tests of CWGANDecoder: scikit-learn checks, fidelity on a toy molecule, bad input, seeding."""

import re

import joblib
import numpy as np
import pytest
import torch
from scipy import sparse
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV, KFold
from torch import nn

from sklss._nn import NonFiniteLossError
from sklss.datasets._bead_chain import (
    bead_chain,
    bead_chain_configurations,
    bond_lengths,
    chain_fidelity,
    end_to_end_distance,
    radius_of_gyration,
)
from sklss.decoder import CWGANDecoder, _Critic, _gradient_penalty

# A configuration small enough that one fit takes a fraction of a second.
FAST = dict(noise_dim=2, hidden_layer_sizes=(8,), n_critic=2, batch_size=16, max_epochs=2)


def fast_decoder(**params):
    return CWGANDecoder(**{**FAST, "random_state": 0, **params})


def toy_data(n=60, n_features=2, n_outputs=4, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    Y = np.hstack([X, -X])[:, :n_outputs] + 0.1 * rng.normal(size=(n, n_outputs))
    return X, Y


# --------------------------------------------------------------------------- sklearn checks

# Maps a check name to the reason it is expected to fail. Aim: empty.
# ------------------------------------------------------------- fidelity on the bead chain

# The CI version of the fidelity benchmark (benchmarks/bench_decoder_fidelity.py): an 8-bead
# chain, a smaller network (2 x 128 units, 16 noise dimensions), 8000 training frames and 100
# epochs, which fit in about 35 s on two cores. The targets are the full ones; over seeds 0-2
# this configuration measured bond-length spread within 4%, radius of gyration within 1% and
# an end-to-end JS divergence of 0.03 (noise floor 0.005). A control shows that the JS
# divergence is far below that of configurations that ignore the latent point (0.37).
N_BEADS = 8


@pytest.fixture(scope="module")
def chain():
    train = bead_chain(8000, n_beads=N_BEADS, random_state=0)
    latent = bead_chain(8000, n_beads=N_BEADS, random_state=1).latent
    real = bead_chain_configurations(latent, n_beads=N_BEADS, random_state=2)
    return train, latent, real


@pytest.fixture(scope="module")
def chain_decoder(chain):
    train, _, _ = chain
    decoder = CWGANDecoder(
        noise_dim=16,
        hidden_layer_sizes=(128, 128),
        generator_learning_rate=5e-4,
        critic_learning_rate=5e-4,
        batch_size=64,
        max_epochs=100,
        random_state=0,
    )
    return decoder.fit(train.latent, train.coordinates)


def test_bead_chain_has_its_known_bond_lengths_and_shape_switch():
    data = bead_chain(4000, n_beads=N_BEADS, random_state=3)
    bonds = bond_lengths(data.coordinates)
    assert bonds.mean() == pytest.approx(0.38, abs=1e-3)
    assert bonds.std() == pytest.approx(0.01, rel=0.05)
    # The closed hinge (latent < 0) brings the ends closer than the open one.
    z = data.latent[:, 0]
    e2e = end_to_end_distance(data.coordinates)
    assert e2e[z < -0.5].mean() < e2e[z > 0.5].mean() - 0.3
    # Translation is removed and every frame is rotated into one frame of reference.
    xyz = data.coordinates.reshape(len(z), -1, 3)
    np.testing.assert_allclose(xyz.mean(axis=1), 0.0, atol=1e-12)
    assert np.all(radius_of_gyration(data.coordinates) > 0.3)


def test_bead_chain_second_latent_coordinate_sets_the_dihedral_and_lists_come_per_trajectory():
    data = bead_chain(300, n_beads=12, n_latent=2, n_trajectories=2, random_state=0)
    assert isinstance(data.latent, list) and len(data.latent) == 2
    assert data.latent[0].shape == (300, 2) and data.coordinates[1].shape == (300, 36)
    z = np.array([[0.0, -3.0], [0.0, 3.0]]).repeat(2000, axis=0)
    _, angles = bead_chain_configurations(z, n_beads=12, random_state=0, return_angles=True)
    low, high = angles["dihedral"][:2000].mean(), angles["dihedral"][2000:].mean()
    assert high - low == pytest.approx(2 * 0.8 * np.tanh(3.0), abs=0.02)
    with pytest.raises(ValueError, match="n_latent"):
        bead_chain(10, n_latent=3)
    with pytest.raises(ValueError, match="n_beads"):
        bead_chain(10, n_beads=3)


@pytest.mark.slow
def test_generated_chains_match_bond_lengths_end_to_end_and_radius_of_gyration(
    chain, chain_decoder
):
    _, latent, real = chain
    generated = chain_decoder.sample(latent, random_state=0)
    report = chain_fidelity(latent, real, generated, n_latent_bins=6, n_distance_bins=20)
    assert report["bond_mean_error"] <= 0.005  # nm
    assert report["bond_sd_rel_error"] <= 0.20
    assert report["rg_mean_rel_error"] <= 0.05
    assert report["rg_sd_rel_error"] <= 0.05
    assert report["end_to_end_js"] <= 0.05
    # Control: real configurations paired with random latent points.
    shuffled = real[np.random.default_rng(0).permutation(len(real))]
    control = chain_fidelity(latent, real, shuffled, n_latent_bins=6, n_distance_bins=20)
    assert report["end_to_end_js"] < 0.3 * control["end_to_end_js"]


def test_score_ranks_a_trained_decoder_above_an_untrained_one(chain, chain_decoder):
    train, latent, real = chain
    barely = clone(chain_decoder).set_params(max_epochs=1).fit(train.latent, train.coordinates)
    trained_score = chain_decoder.score(latent, real)
    assert trained_score <= 0
    assert trained_score > barely.score(latent, real) + 0.05
    assert chain_decoder.score(latent, real) == trained_score


def test_predict_gives_a_central_configuration_for_each_latent_point(chain, chain_decoder):
    _, latent, real = chain
    predicted = end_to_end_distance(chain_decoder.predict(latent))
    real_e2e = end_to_end_distance(real)
    z = latent[:, 0]
    for lo, hi in [(-1.5, -1.0), (-0.25, 0.25), (1.0, 1.5)]:
        inside = (z > lo) & (z < hi)
        q10, q90 = np.quantile(real_e2e[inside], [0.1, 0.9])
        assert q10 < np.median(predicted[inside]) < q90


def test_decoder_round_trips_through_joblib(chain, chain_decoder, tmp_path):
    _, latent, _ = chain
    joblib.dump(chain_decoder, tmp_path / "decoder.joblib")
    loaded = joblib.load(tmp_path / "decoder.joblib")
    np.testing.assert_array_equal(
        loaded.sample(latent[:500], random_state=4), chain_decoder.sample(latent[:500], 4)
    )
    np.testing.assert_array_equal(loaded.predict(latent[:500]), chain_decoder.predict(latent[:500]))


# ------------------------------------------------------------------------- behaviour


def test_sample_is_reproducible_per_random_state_and_varies_across_draws():
    X, Y = toy_data()
    dec = fast_decoder().fit(X, Y)
    a = dec.sample(X, random_state=7)
    np.testing.assert_array_equal(a, dec.sample(X, random_state=7))
    assert not np.array_equal(a, dec.sample(X, random_state=8))
    assert not np.array_equal(dec.sample(X), dec.sample(X))
    assert a.shape == (len(X), 4)


def test_sample_gives_many_configurations_for_one_latent_point():
    X, Y = toy_data()
    dec = fast_decoder().fit(X, Y)
    draws = dec.sample(np.repeat(X[:1], 50, axis=0), random_state=0)
    assert np.all(draws.std(axis=0) > 0)


def test_predict_is_deterministic_and_independent_of_batching():
    X, Y = toy_data(n=100)
    dec = fast_decoder().fit(X, Y)
    full = dec.predict(X)
    np.testing.assert_array_equal(full, dec.predict(X))
    np.testing.assert_array_equal(full, np.vstack([dec.predict(X[:7]), dec.predict(X[7:])]))


def test_trajectory_lists_pair_frame_by_frame_and_keep_their_form():
    rng = np.random.default_rng(0)
    X = [rng.normal(size=(40, 2)), rng.normal(size=(25, 2))]
    Y = [np.hstack([x, x**2]) for x in X]
    dec = fast_decoder().fit(X, Y)
    out = dec.sample(X, random_state=0)
    assert isinstance(out, list) and [o.shape for o in out] == [(40, 4), (25, 4)]
    pred = dec.predict(X)
    assert isinstance(pred, list) and [p.shape for p in pred] == [(40, 4), (25, 4)]
    assert np.isfinite(dec.score(X, Y))


def test_one_dimensional_targets_give_one_dimensional_predictions():
    X, Y = toy_data()
    dec = fast_decoder().fit(X, Y[:, 0])
    assert dec.n_outputs_ == 1
    assert dec.predict(X).shape == (len(X),)
    assert dec.sample(X, random_state=0).shape == (len(X),)


def test_history_records_losses_and_held_out_wasserstein_every_epoch():
    X, Y = toy_data(n=200)
    dec = fast_decoder(max_epochs=3, validation_fraction=0.2).fit(X, Y)
    h = dec.history_
    assert h["epoch"] == [1, 2, 3]
    for key in ("generator_loss", "critic_loss", "train_wasserstein", "valid_wasserstein"):
        assert len(h[key]) == 3 and np.all(np.isfinite(h[key])), key
    assert dec.n_iter_ == 3
    no_valid = fast_decoder(max_epochs=2, validation_fraction=0.0).fit(X, Y)
    assert no_valid.history_["valid_wasserstein"] == [None, None]


def test_fit_and_sample_leave_the_global_random_state_alone():
    X, Y = toy_data()
    np_state = np.random.get_state()[1].copy()
    torch_state = torch.get_rng_state().clone()
    dec = fast_decoder().fit(X, Y)
    dec.sample(X, random_state=0)
    dec.score(X, Y)
    np.testing.assert_array_equal(np.random.get_state()[1], np_state)
    assert torch.equal(torch.get_rng_state(), torch_state)


def test_verbose_fit_prints_epochs_and_a_progress_bar(capsys):
    X, Y = toy_data()
    fast_decoder(verbose=1).fit(X, Y)
    captured = capsys.readouterr()
    text = captured.out + captured.err
    assert "critic_loss" in text and "train_wasserstein" in text
    assert "it/s" in text or "%|" in text


def test_grid_search_compares_decoders_by_score():
    X, Y = toy_data(n=200, n_features=1, n_outputs=2)
    search = GridSearchCV(fast_decoder(), {"n_critic": [1, 2]}, cv=KFold(2)).fit(X, Y)
    scores = search.cv_results_["mean_test_score"]
    assert np.all(np.isfinite(scores)) and np.all(scores <= 0)
    assert search.best_score_ == scores.max()
    assert search.best_estimator_.sample(X, random_state=0).shape == Y.shape


def test_methods_before_fit_raise_not_fitted():
    X, Y = toy_data()
    for call in (lambda d: d.predict(X), lambda d: d.sample(X), lambda d: d.score(X, Y)):
        with pytest.raises(NotFittedError):
            call(fast_decoder())


def test_decoding_network_folds_the_scaling_exactly():
    X, Y = toy_data(n=100)
    dec = fast_decoder().fit(X, Y)
    # predict() runs the folded network; unfold by hand: scale, generate, unscale.
    x = torch.as_tensor((X - dec._x_mean) / dec._x_scale)
    gen = dec.net_.average_.double()
    with torch.no_grad():
        scaled = gen(x, torch.zeros(len(X), dec.noise_dim, dtype=torch.float64)).numpy()
    dec.net_.average_.float()
    np.testing.assert_allclose(dec.predict(X), scaled @ dec._y_color + dec._y_mean, atol=1e-10)


# ---------------------------------------------------------------------- bad input and faults


def test_row1_nan_or_inf_in_fit_names_the_trajectory_and_frame():
    X, Y = toy_data()
    Xbad = X.copy()
    Xbad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"NaN.*frame 3"):
        fast_decoder().fit(Xbad, Y)
    Xs = [X[:30], X[30:].copy()]
    Ys = [Y[:30], Y[30:].copy()]
    Ys[1][2, 0] = np.inf
    with pytest.raises(ValueError, match=r"Y contains inf.*trajectory 1, frame 2"):
        fast_decoder().fit(Xs, Ys)
    Xs[1][5, 0] = -np.inf
    with pytest.raises(ValueError, match=r"X contains inf.*trajectory 1, frame 5"):
        fast_decoder().fit(Xs, [Y[:30], Y[30:]])


@pytest.mark.parametrize("method", ["predict", "sample", "score"])
def test_row2_nan_at_predict_sample_or_score_is_an_error_not_nan_output(method):
    X, Y = toy_data()
    dec = fast_decoder().fit(X, Y)
    Xbad = X.copy()
    Xbad[4, 0] = np.nan
    args = (Xbad, Y) if method == "score" else (Xbad,)
    with pytest.raises(ValueError, match=r"NaN.*frame 4"):
        getattr(dec, method)(*args)
    if method == "score":
        Ybad = Y.copy()
        Ybad[6, 1] = np.inf
        with pytest.raises(ValueError, match=r"Y contains inf.*frame 6"):
            dec.score(X, Ybad)


@pytest.mark.parametrize("method", ["predict", "sample", "score"])
def test_row3_wrong_number_of_latent_features_after_fit(method):
    X, Y = toy_data(n_features=2)
    dec = fast_decoder().fit(X, Y)
    X3 = np.hstack([X, X[:, :1]])
    args = (X3, Y) if method == "score" else (X3,)
    msg = "X has 3 features, but CWGANDecoder is expecting 2 features"
    with pytest.raises(ValueError, match=msg):
        getattr(dec, method)(*args)


def test_row3_score_with_the_wrong_number_of_outputs():
    X, Y = toy_data(n_outputs=4)
    dec = fast_decoder().fit(X, Y)
    with pytest.raises(ValueError, match="Y has 3 outputs, but CWGANDecoder is expecting 4"):
        dec.score(X, Y[:, :3])


@pytest.mark.parametrize(
    "X, Y, match",
    [
        (np.zeros(10), np.zeros((10, 2)), "Expected 2D array"),
        (np.zeros((0, 2)), np.zeros((0, 2)), "0 sample"),
        (np.zeros((10, 0)), np.zeros((10, 2)), "0 feature"),
        (np.ones((10, 2)), np.zeros((10, 0)), "0 feature"),
        (np.ones((10, 2)), np.zeros((10, 2, 2)), "Y must be 1-D or 2-D|dim 3"),
        (np.ones((10, 2)), None, "requires y to be passed"),
    ],
)
def test_row4_one_dimensional_empty_or_featureless_input_is_rejected(X, Y, match):
    with pytest.raises(ValueError, match=match):
        fast_decoder().fit(X, Y)


def test_row5_numeric_dtypes_and_memmaps_are_accepted_and_float32_is_preserved(tmp_path):
    X, Y = toy_data()
    path = tmp_path / "x.npy"
    np.save(path, X.astype(np.float32))
    memmap = np.load(path, mmap_mode="r")
    for Xi in (X, X.astype(np.float32), np.round(X * 10).astype(np.int64), memmap):
        dec = fast_decoder().fit(Xi, Y)
        assert np.isfinite(dec.sample(Xi, random_state=0)).all()
    dec = fast_decoder().fit(X.astype(np.float32), Y.astype(np.float32))
    assert dec.predict(X.astype(np.float32)).dtype == np.float32
    assert dec.sample(X.astype(np.float32), random_state=0).dtype == np.float32
    assert dec.predict(X).dtype == np.float64
    assert dec.sample(X, random_state=0).dtype == np.float64
    assert dec.predict(np.round(X).astype(np.int32)).dtype == np.float64


def test_row5_object_complex_and_sparse_input_get_clear_errors():
    X, Y = toy_data()
    with pytest.raises(ValueError, match="could not convert string to float"):
        fast_decoder().fit(np.array([["a", "b"]] * 10, dtype=object), Y[:10])
    with pytest.raises(ValueError, match="Complex data not supported"):
        fast_decoder().fit(X + 1j, Y)
    with pytest.raises(ValueError, match="Complex data not supported in Y"):
        fast_decoder().fit(X, Y + 1j)
    with pytest.raises(TypeError, match="Sparse data was passed for X"):
        fast_decoder().fit(sparse.csr_matrix(X), Y)
    with pytest.raises(TypeError, match="Sparse data was passed for Y"):
        fast_decoder().fit(X, sparse.csr_matrix(Y))


def test_row13_diverging_training_stops_with_a_named_error_and_no_model():
    X, Y = toy_data(n=200)
    dec = fast_decoder(generator_learning_rate=1e30, critic_learning_rate=1e30, max_epochs=20)
    with pytest.raises(NonFiniteLossError, match=r"CWGANDecoder.*epoch \d+"):
        dec.fit(X, Y)
    assert not hasattr(dec, "net_")


def test_row15_gradient_penalty_is_finite_where_the_critic_gradient_vanishes():
    torch.manual_seed(0)
    critic = _Critic(n_outputs=4, n_conditions=2, hidden_layer_sizes=(8,), activation="swish")
    for p in critic.parameters():
        nn.init.zeros_(p)
    real, fake, x = torch.randn(16, 4), torch.randn(16, 4), torch.randn(16, 2)
    penalty = _gradient_penalty(critic, real, fake, x)
    penalty.backward()
    assert penalty.item() == pytest.approx(1.0, abs=1e-5)
    grads = [p.grad for p in critic.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)
    # Without the epsilon inside the square root the same penalty has NaN gradients.
    critic.zero_grad()
    _gradient_penalty(critic, real, fake, x, epsilon=0.0).backward()
    assert any(torch.isnan(p.grad).any() for p in critic.parameters() if p.grad is not None)


def test_row15_gradient_penalty_takes_the_norm_over_all_configuration_coordinates():
    # A linear critic has the same input gradient w everywhere: the penalty is (|w| - 1)^2.
    critic = _Critic(n_outputs=4, n_conditions=1, hidden_layer_sizes=(), activation="relu")
    with torch.no_grad():
        critic.mlp[0].weight.copy_(torch.tensor([[1.0, 1.0, 1.0, 1.0, 5.0]]))  # |w_y| = 2
    real, fake, x = torch.randn(8, 4), torch.randn(8, 4), torch.randn(8, 1)
    assert _gradient_penalty(critic, real, fake, x).item() == pytest.approx(1.0, abs=1e-5)


def test_row15_critic_has_no_batch_norm_and_both_networks_see_the_latent_point():
    X, Y = toy_data()
    dec = fast_decoder().fit(X, Y)
    net = dec.net_
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in net.critic_.modules())
    assert net.critic_.mlp[0].in_features == dec.n_outputs_ + dec.n_features_in_
    assert net.module_.mlp[0].in_features == dec.n_features_in_ + dec.noise_dim


def test_row16_target_frames_must_match_latent_frames_per_trajectory():
    X, Y = toy_data(n=100)
    with pytest.raises(ValueError, match="X has 100 frames but Y has 99"):
        fast_decoder().fit(X, Y[:99])
    Xs, Ys = [X[:50], X[50:]], [Y[:50], Y[50:99]]
    with pytest.raises(
        ValueError, match=re.escape("in trajectory 1: X has 50 frames but Y has 49")
    ):
        fast_decoder().fit(Xs, Ys)
    with pytest.raises(ValueError, match="must be a list of 2 trajectories too"):
        fast_decoder().fit(Xs, Y)
    with pytest.raises(ValueError, match="X has 2 trajectories but Y has 1"):
        fast_decoder().fit(Xs, [Y[:50]])


def test_row23_same_random_state_gives_bitwise_identical_weights_and_samples():
    X, Y = toy_data(n=120)
    a = fast_decoder(random_state=3, max_epochs=3).fit(X, Y)
    b = fast_decoder(random_state=3, max_epochs=3).fit(X, Y)
    c = fast_decoder(random_state=4, max_epochs=3).fit(X, Y)
    for name in ("module_", "critic_", "average_"):
        sa = getattr(a.net_, name).state_dict()
        sb = getattr(b.net_, name).state_dict()
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
    sc = c.net_.module_.state_dict()
    assert not all(torch.equal(a.net_.module_.state_dict()[k], sc[k]) for k in sc)
    np.testing.assert_array_equal(a.sample(X, random_state=0), b.sample(X, random_state=0))
    assert a.history_ == b.history_


@pytest.mark.parametrize(
    "params, match",
    [
        ({"noise_dim": 0}, "noise_dim"),
        ({"n_critic": 0}, "n_critic"),
        ({"gradient_penalty": -1.0}, "gradient_penalty"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"activation": "cubic"}, "activation"),
        ({"device": "tpu"}, "device"),
        ({"hidden_layer_sizes": (8, 0)}, "hidden_layer_sizes"),
    ],
)
def test_invalid_parameters_are_named_at_fit(params, match):
    X, Y = toy_data()
    with pytest.raises(ValueError, match=match):
        fast_decoder(**params).fit(X, Y)
