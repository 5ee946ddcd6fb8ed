"""Interruption, checkpoints and stress (RELIABILITY.md rows 10, 13, 20 and 21).

Ctrl-C is simulated by raising ``KeyboardInterrupt`` from the training step of epoch ``k``, as
the signal handler would in the middle of training; nothing else is replaced.
"""

import os
import signal
import subprocess
import sys
import textwrap
import warnings
import zipfile

import numpy as np
import pytest
import torch
from conftest import random_walks

from sklss import CWGANDecoder, MDNPropagator, SRVTransformer
from sklss._nn import NonFiniteLossError
from sklss.decoder import _CWGANNet
from sklss.encoder import _SRVNet
from sklss.io import InvalidModelFileError, _read_container
from sklss.propagator import _MDNNet

# Small networks gain nothing from intra-op threads, and lose a lot on a shared machine.
pytestmark = pytest.mark.usefixtures("one_torch_thread")


X = random_walks(n_trajs=2, n_frames=200)
Y = [np.hstack([x, np.sin(x)]) for x in X]


def encoder(**kw):
    params = dict(n_components=2, hidden_layer_sizes=(8,), max_epochs=6, batch_size=64)
    return SRVTransformer(lag_time=2, **{**params, "patience": 3, "random_state": 0, **kw})


def propagator(**kw):
    # A large step, so that the loss stalls and the learning-rate schedule acts mid-run.
    params = dict(n_kernels=2, hidden_layer_sizes=(8,), max_epochs=6, batch_size=32)
    params.update(learning_rate=0.03, patience=3, random_state=0)
    return MDNPropagator(lag_time=2, **{**params, **kw})


def decoder(**kw):
    params = dict(hidden_layer_sizes=(8,), n_critic=2, max_epochs=6, batch_size=16)
    return CWGANDecoder(noise_dim=2, **{**params, "random_state": 0, **kw})


ESTIMATORS = {
    "encoder": (encoder, _SRVNet, (X,)),
    "propagator": (propagator, _MDNNet, (X,)),
    "decoder": (decoder, _CWGANNet, (X, Y)),
}


def weights(est):
    """Every tensor of every module of the fitted network, in order."""
    net = est.net_
    return [t.clone() for m in net._modules for t in getattr(net, m + "_").state_dict().values()]


def same_weights(a, b):
    wa, wb = weights(a), weights(b)
    return len(wa) == len(wb) and all(torch.equal(u, v) for u, v in zip(wa, wb))


def outputs(est, data):
    if isinstance(est, SRVTransformer):
        return [est.transform(X[0]), est.eigenvalues_]
    if isinstance(est, MDNPropagator):
        return [est.predict(X[0]), est.sample(X[0][:3], 20, random_state=1)]
    return [est.predict(X[0]), est.sample(X[0], random_state=1)]


class StepSpy:
    """Counts training steps, and raises KeyboardInterrupt at step ``batch`` of ``epoch``."""

    def __init__(self, monkeypatch, net_class, epoch=None, batch=0):
        self.calls = 0
        self.epoch, self.batch = epoch, batch
        original = net_class.train_step

        def train_step(net, batch_data, **kwargs):
            self.calls += 1
            # skorch opens the current batch's record before the step.
            done = len(net.history[-1]["batches"]) - 1 if net.history else 0
            if len(net.history) == self.epoch and done == self.batch:
                raise KeyboardInterrupt
            return original(net, batch_data, **kwargs)

        monkeypatch.setattr(net_class, "train_step", train_step)


@pytest.mark.parametrize("batch", [0, 1], ids=["epoch-start", "mid-epoch"])
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_row20_ctrl_c_in_fit_keeps_the_best_weights_and_the_history(name, batch, monkeypatch):
    make, net_class, data = ESTIMATORS[name]
    reference = make(max_epochs=2).fit(*data)
    StepSpy(monkeypatch, net_class, epoch=3, batch=batch)
    with pytest.warns(UserWarning, match="Training interrupted after 2 complete epochs") as rec:
        est = make().fit(*data)
    assert est.net_.interrupted_
    assert est.n_iter_ == 2 and est.history_ == reference.history_
    if name == "decoder":
        # No early stopping: the decoder keeps its latest weights, including the updates of
        # the interrupted epoch.
        assert "the weights reached so far" in str(rec[0].message)
        assert same_weights(est, reference) == (batch == 0)
    else:
        assert "best epoch so far" in str(rec[0].message)
        assert same_weights(est, reference)
    for a, b in zip(outputs(est, data), outputs(reference, data)):
        assert np.isfinite(a).all()
        if name != "decoder" or batch == 0:
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_row20_fit_resumed_from_a_checkpoint_matches_an_uninterrupted_fit(
    name, tmp_path, monkeypatch
):
    make, net_class, data = ESTIMATORS[name]
    reference = make().fit(*data)
    path = tmp_path / f"{name}.ckpt"
    with monkeypatch.context() as patch:
        StepSpy(patch, net_class, epoch=3)
        with pytest.warns(UserWarning, match="interrupted after 2 complete epochs"):
            make(checkpoint=path).fit(*data)
    spy = StepSpy(monkeypatch, net_class)
    resumed = make(checkpoint=str(path)).fit(*data)
    assert dict(resumed.net_.callbacks_)["checkpoint"].resumed_from_ == 2
    steps_per_epoch = reference.net_.history[0]["train_batch_count"]
    assert spy.calls == (reference.n_iter_ - 2) * steps_per_epoch
    assert same_weights(resumed, reference)
    assert resumed.history_ == reference.history_
    strip = [{k: v for k, v in row.items() if k != "dur"} for row in reference.net_.history]
    assert [{k: v for k, v in row.items() if k != "dur"} for row in resumed.net_.history] == strip
    for a, b in zip(outputs(resumed, data), outputs(reference, data)):
        np.testing.assert_array_equal(a, b)
    if name == "propagator":
        # The learning rate was cut after the resumption point: the schedule was restored.
        rates = [row["event_lr"] for row in reference.net_.history]
        assert rates[1] == rates[0] and min(rates[2:]) < rates[0]
    if name == "decoder":
        assert resumed.net_.average_steps_ == reference.net_.average_steps_


def test_raising_max_epochs_extends_a_finished_fit(tmp_path):
    path = tmp_path / "decoder.ckpt"
    decoder(max_epochs=3, checkpoint=path).fit(X, Y)
    extended = decoder(max_epochs=5, checkpoint=path).fit(X, Y)
    assert dict(extended.net_.callbacks_)["checkpoint"].resumed_from_ == 3
    assert same_weights(extended, decoder(max_epochs=5).fit(X, Y))


def test_refitting_with_a_finished_checkpoint_returns_the_same_model(tmp_path):
    path = tmp_path / "propagator.ckpt"
    first = propagator(max_epochs=12, patience=1, checkpoint=path).fit(X)
    # Early stopping ended the fit: the epoch that triggered it was not checkpointed.
    assert first.n_iter_ < 12
    again = propagator(max_epochs=12, patience=1, checkpoint=path).fit(X)
    assert dict(again.net_.callbacks_)["checkpoint"].resumed_from_ == first.n_iter_ - 1
    assert same_weights(again, first)
    np.testing.assert_array_equal(again.predict(X[1]), first.predict(X[1]))


@pytest.mark.parametrize("change", ["parameters", "data"], ids=["other-parameters", "other-data"])
def test_a_checkpoint_of_another_fit_is_replaced_with_a_warning(change, tmp_path):
    path = tmp_path / "propagator.ckpt"
    propagator(max_epochs=2, checkpoint=path).fit(X)
    before = path.read_bytes()
    other_data = random_walks(n_trajs=2, n_frames=200, seed=5)
    params, data = ({"learning_rate": 0.01}, X) if change == "parameters" else ({}, other_data)
    with pytest.warns(UserWarning, match="other parameters or other data; training starts afresh"):
        est = propagator(max_epochs=2, checkpoint=path, **params).fit(data)
    assert dict(est.net_.callbacks_)["checkpoint"].resumed_from_ is None
    assert same_weights(est, propagator(max_epochs=2, **params).fit(data))
    assert path.read_bytes() != before


def test_a_damaged_checkpoint_is_replaced_with_a_warning(tmp_path):
    path = tmp_path / "propagator.ckpt"
    propagator(max_epochs=2, checkpoint=path).fit(X)
    blob = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as zf:
        tensors = zf.read("tensors.safetensors")
    # A bit flipped inside the tensors, which the manifest's checksum covers.
    blob[blob.index(tensors) + len(tensors) - 5] ^= 0xFF
    path.write_bytes(bytes(blob))
    damaged = r"ckpt cannot be read \(tensors.safetensors is damaged.*starts afresh"
    with pytest.warns(UserWarning, match=damaged):
        est = propagator(max_epochs=2, checkpoint=path).fit(X)
    assert dict(est.net_.callbacks_)["checkpoint"].resumed_from_ is None
    assert same_weights(est, propagator(max_epochs=2).fit(X))
    _read_container(path, "checkpoint")  # a valid checkpoint again


@pytest.mark.parametrize("content", ["pickle", "saved-model", "text"])
def test_a_file_that_is_not_a_checkpoint_is_never_overwritten(content, tmp_path):
    path = tmp_path / "precious"
    if content == "saved-model":
        from sklss.io import save

        save(propagator(), path)
    else:
        path.write_bytes(b"\x80\x04payload." if content == "pickle" else b"notes\n")
    before = path.read_bytes()
    with pytest.raises(ValueError, match="exists and is not an sklss training checkpoint"):
        propagator(max_epochs=2, checkpoint=path).fit(X)
    assert path.read_bytes() == before


def test_checkpoint_in_a_missing_directory_is_refused_before_training(tmp_path):
    with pytest.raises(ValueError, match="'checkpoint' parameter of MDNPropagator.*existing"):
        propagator(checkpoint=tmp_path / "missing" / "ck").fit(X)
    with pytest.raises(ValueError, match="'checkpoint' parameter of SRVTransformer"):
        encoder(checkpoint=tmp_path).fit(X)
    with pytest.raises(ValueError, match="'checkpoint' parameter of CWGANDecoder must be"):
        decoder(checkpoint=3).fit(X, Y)


_KILLED_WRITER = textwrap.dedent(
    """
    import sys, time
    from sklss.io import _atomic_write

    path, source = sys.argv[1], sys.argv[2]
    data = open(source, "rb").read()

    def write_slowly(f):
        f.write(data[: len(data) // 2])
        f.flush()
        print("half written", flush=True)
        time.sleep(120)
        f.write(data[len(data) // 2 :])

    _atomic_write(path, write_slowly)
    """
)


def test_row21_a_process_killed_while_writing_a_checkpoint_leaves_the_previous_one(tmp_path):
    path = tmp_path / "propagator.ckpt"
    propagator(max_epochs=2, checkpoint=path).fit(X)
    previous = path.read_bytes()
    newer = tmp_path / "newer.ckpt"
    propagator(max_epochs=4, checkpoint=newer).fit(X)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    writer = subprocess.Popen(
        [sys.executable, "-c", _KILLED_WRITER, str(path), str(newer)],
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert writer.stdout.readline().strip() == "half written"
        os.kill(writer.pid, signal.SIGKILL)
    finally:
        writer.wait(timeout=60)
    assert writer.returncode == -signal.SIGKILL
    assert path.read_bytes() == previous
    # The half-written data sit in a temporary file beside it, which would not load.
    (partial,) = [p for p in tmp_path.iterdir() if p.name.startswith(".propagator.ckpt.")]
    assert 0 < partial.stat().st_size < newer.stat().st_size
    with pytest.raises(InvalidModelFileError):
        _read_container(partial, "checkpoint")
    resumed = propagator(max_epochs=4, checkpoint=path).fit(X)
    assert dict(resumed.net_.callbacks_)["checkpoint"].resumed_from_ == 2
    assert same_weights(resumed, propagator(max_epochs=4).fit(X))


def test_row21_a_failed_checkpoint_write_keeps_the_previous_one_and_training_goes_on(
    tmp_path, monkeypatch
):
    path = tmp_path / "encoder.ckpt"
    encoder(max_epochs=2, checkpoint=path).fit(X)
    previous = path.read_bytes()

    def disk_full(fd):
        raise OSError(28, "No space left on device")

    with monkeypatch.context() as patch:
        patch.setattr(os, "fsync", disk_full)
        with pytest.warns(UserWarning, match="could not be written.*No space left on device"):
            est = encoder(max_epochs=4, checkpoint=path).fit(X)
    assert same_weights(est, encoder(max_epochs=4).fit(X))
    assert path.read_bytes() == previous
    assert [p.name for p in tmp_path.iterdir()] == ["encoder.ckpt"]
    again = encoder(max_epochs=2, checkpoint=path).fit(X)
    assert dict(again.net_.callbacks_)["checkpoint"].resumed_from_ == 2


# --- stress: seeds x degenerate inputs x batch sizes -----------------------------------------


def _degenerate_inputs():
    base = random_walks(n_trajs=2, n_frames=80, n_features=2, seed=3)
    return {
        "duplicated-features": [np.hstack([x, x[:, :1]]) for x in base],
        "rank-deficient": [np.hstack([x, x[:, :1] - 2.0 * x[:, 1:]]) for x in base],
        "constant-feature": [np.hstack([x, np.full((len(x), 1), 7.0)]) for x in base],
        "duplicated-frames": [np.repeat(x, 2, axis=0) for x in base],
        "tiny-and-huge-scales": [x * np.array([1e-9, 1e9]) for x in base],
    }


def _stress_case(kind, inputs, batch_size, seed):
    """Fit and use one estimator; return (non-finite outputs, named error or None)."""
    y = [np.hstack([x[:, :1] ** 2, x[:, :1]]) for x in inputs]
    common = dict(hidden_layer_sizes=(4,), max_epochs=2, random_state=seed)
    try:
        if kind == "encoder":
            est = SRVTransformer(lag_time=1, n_components=1, n_basis=2, **common)
            est.set_params(batch_size=max(batch_size, 3)).fit(inputs)
            produced = [est.transform(inputs[0]), est.score(inputs), est.eigenvalues_]
        elif kind == "propagator":
            est = MDNPropagator(lag_time=1, n_kernels=3, batch_size=batch_size, **common)
            est.fit(inputs)
            start = inputs[0][:2]
            produced = [est.predict(inputs[0]), est.score(inputs), est.sample(start, 30, 0)]
        else:
            est = CWGANDecoder(noise_dim=2, n_critic=2, batch_size=batch_size, **common)
            est.fit(inputs, y)
            produced = [est.predict(inputs[0]), est.sample(inputs[0], 0), est.score(inputs, y)]
    except (ValueError, NonFiniteLossError) as err:
        assert len(str(err)) > 20, f"an error without a useful message: {err!r}"
        return 0, type(err).__name__
    return sum(not np.isfinite(np.asarray(p)).all() for p in produced), None


@pytest.mark.parametrize("kind", ["encoder", "propagator", "decoder"])
def test_row10_stress_degenerate_inputs_never_give_silent_non_finite_output(kind):
    cases = non_finite = 0
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # rank deficiency and constant features are reported
        for name, inputs in _degenerate_inputs().items():
            for batch_size in (2, 17, 4096):
                for seed in (0, 1):
                    bad, error = _stress_case(kind, inputs, batch_size, seed)
                    cases += 1
                    non_finite += bad
                    if error:
                        errors.append((name, batch_size, seed, error))
    print(f"\n{kind}: {cases} stress cases, {non_finite} with non-finite output, errors: {errors}")
    assert cases == len(_degenerate_inputs()) * 3 * 2
    # Every degenerate input is regularised, not refused: each case fits and gives finite
    # outputs. An error here (even a well-worded one) is a regression.
    assert errors == []
    assert non_finite == 0
