"""The shared layer under every estimator: seeds, the training skeleton and the VAC solver."""

import numpy as np
import pytest
import scipy.linalg
from conftest import small_srv

from sklss import _random, _training, _validation, encoder
from sklss._covariance import vac_decomposition, vac_eigenvalues
from sklss._nn import FiniteLossGuard
from sklss._training import build_net, count_pairs, standard_callbacks
from sklss.propagator import MDNPropagator


def test_derive_seeds_int_is_fixed_and_instances_advance():
    assert _random.derive_seeds(3, 4) == _random.derive_seeds(3, 4)
    assert _random.derive_seeds(3, 2) != _random.derive_seeds(4, 2)
    rs = np.random.RandomState(0)
    assert _random.derive_seeds(rs, 2) != _random.derive_seeds(rs, 2)
    gen = np.random.default_rng(0)
    first = _random.derive_seeds(gen, 3)
    assert first == _random.derive_seeds(np.random.default_rng(0), 3)
    assert all(0 <= s < 2**31 for s in first)
    assert _random.derive_seeds(None, 2) != _random.derive_seeds(None, 2)


@pytest.mark.parametrize("bad", [-1, 2**32, 1.5, "0", True])
def test_bad_random_state_is_named(bad):
    for call in (_random.seed_entropy, _random.check_rng):
        with pytest.raises(ValueError, match=r"The 'random_state' parameter must be None, an int"):
            call(bad)


def test_spawned_streams_do_not_depend_on_how_many_are_asked_for():
    short = _random.spawn_seeds(5, 2, 2)
    long = _random.spawn_seeds(5, 6, 2)
    assert long[:2] == short
    assert len({s for pair in long for s in pair}) == 12
    assert all(1 <= s < 2**31 - 1 for pair in long for s in pair)


def test_check_rng_streams():
    a = _random.check_rng(7).normal(size=3)
    np.testing.assert_array_equal(a, np.random.default_rng(7).normal(size=3))
    rs = np.random.RandomState(1)
    assert _random.check_rng(rs) is rs


def test_count_pairs_counts_from_lengths_and_names_the_skipped():
    trajs = [np.zeros((10, 1)), np.zeros((3, 1)), np.zeros((6, 1))]
    with pytest.warns(UserWarning, match=r"Trajectories \[1\] have at most lag_time=3"):
        assert count_pairs(trajs, 3) == 7 + 3
    with pytest.raises(ValueError, match="no trajectory is longer than lag_time=20"):
        count_pairs(trajs, 20)


def test_an_encoder_fit_builds_its_pairs_once_and_checks_the_lag_once(monkeypatch):
    calls = {"pairs": [], "stack": [], "lag": 0}
    split, stack, check = (
        _validation.train_valid_pairs,
        _validation.stack_pairs,
        _validation.check_lag_time,
    )

    def counted_split(*args, **kwargs):
        train, valid = split(*args, **kwargs)
        calls["pairs"].append((len(train), len(valid)))
        return train, valid

    def counted_stack(trajs, lag):
        calls["stack"].append(sum(len(t) for t in trajs))
        return stack(trajs, lag)

    def counted_check(lag):
        calls["lag"] += 1
        return check(lag)

    monkeypatch.setattr(_training, "train_valid_pairs", counted_split)
    monkeypatch.setattr(_validation, "stack_pairs", counted_stack)
    monkeypatch.setattr(encoder, "stack_pairs", counted_stack)
    monkeypatch.setattr(_validation, "check_lag_time", counted_check)
    X = [np.random.default_rng(i).normal(size=(300, 2)).cumsum(axis=0) for i in range(10)]
    small_srv(max_epochs=2, lag_time=2).fit(X)
    # One split into training and held-out pairs (one trajectory of ten), as row indices, and
    # the VAC pairs of the network outputs over all the data.
    assert calls["pairs"] == [(9 * 298, 298)]
    assert calls["stack"] == [10 * 300]
    assert calls["lag"] == 1


def test_standard_callbacks_put_the_guard_first_and_the_checkpoint_last(tmp_path):
    est = MDNPropagator(patience=9, verbose=2, checkpoint=str(tmp_path / "ck.sklss"))
    X = [np.zeros((5, 1))]
    names = [n for n, _ in standard_callbacks(est, "MDN", X, monitor="valid_loss")]
    assert names == ["guard", "early_stopping", "progress", "checkpoint"]
    callbacks = dict(standard_callbacks(est, "MDN", X, monitor="valid_loss", lr_plateau=True))
    assert list(callbacks)[:3] == ["guard", "lr_plateau", "early_stopping"]
    assert callbacks["lr_plateau"].kwargs["patience"] == 3
    assert callbacks["lr_plateau"].kwargs["factor"] == _training.LR_DECAY
    assert isinstance(callbacks["guard"], FiniteLossGuard)
    assert callbacks["guard"].component == "MDN"
    est.set_params(verbose=1, checkpoint=None)
    names = [n for n, _ in standard_callbacks(est, "MDN", X, monitor=None, extra=[("x", None)])]
    assert names == ["guard", "x"]


def test_build_net_caps_the_batch_and_takes_the_held_out_set():
    from sklss.propagator import _MDNNet, _MixtureDensityModule, _NegativeLogLikelihood

    est = MDNPropagator(batch_size=512, max_epochs=7, learning_rate=0.01)
    common = dict(
        callbacks=[],
        device="cpu",
        lr=0.01,
        valid_batch_size=99,
        module=_MixtureDensityModule,
        criterion=_NegativeLogLikelihood,
    )
    net = build_net(_MDNNet, est, n_train=100, valid=None, **common)
    assert net.batch_size == 100 and net.max_epochs == 7 and net.train_split is None
    assert net.iterator_valid__batch_size == 99
    valid = {"x0": np.zeros((4, 1), np.float32), "xt": np.zeros((4, 1), np.float32)}
    net = build_net(_MDNNet, est, n_train=10_000, valid=valid, **common)
    assert net.batch_size == 512 and net.train_split is not None


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_vac_solver_solves_the_generalised_eigenproblem(seed):
    rng = np.random.default_rng(seed)
    A = rng.normal(size=(5, 5))
    C00 = A @ A.T + 5 * np.eye(5)
    B = rng.normal(size=(5, 5))
    C0t = 0.5 * (B + B.T)
    lam, coef = vac_decomposition(C00, C0t, epsilon=1e-12)
    exact = scipy.linalg.eigh(C0t, C00, eigvals_only=True)[::-1]
    np.testing.assert_allclose(lam, exact, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(C0t @ coef, C00 @ coef * lam, atol=1e-10)
    np.testing.assert_allclose(coef.T @ C00 @ coef, np.eye(5), atol=1e-10)
    np.testing.assert_allclose(vac_eigenvalues(C00, C0t, epsilon=1e-12), exact, rtol=1e-10)
    s, left = vac_decomposition(C00, B, C00, reversible=False, epsilon=1e-12)
    W = scipy.linalg.inv(scipy.linalg.sqrtm(C00)).real
    np.testing.assert_allclose(s, np.linalg.svd(W @ B @ W, compute_uv=False), rtol=1e-8)
    np.testing.assert_allclose(left.T @ C00 @ left, np.eye(5), atol=1e-8)
