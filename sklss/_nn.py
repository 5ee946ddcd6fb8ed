"""Torch pieces every estimator shares: the MLP builder, torch seeding, devices, skorch nets."""

import contextlib
import functools
import warnings
from collections.abc import Mapping
from numbers import Integral

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import Callback, EarlyStopping
from skorch.dataset import unpack_data
from torch import nn

from ._frames import Rows, chunk_rows

ACTIVATIONS = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "swish": nn.SiLU,
    "silu": nn.SiLU,
    "elu": nn.ELU,
    "gelu": nn.GELU,
    "sigmoid": nn.Sigmoid,
    "softplus": nn.Softplus,
    "leaky_relu": nn.LeakyReLU,
}


def make_mlp(n_in, hidden_layer_sizes, n_out, *, activation="relu", batch_norm=False):
    """A multilayer perceptron ``n_in -> hidden... -> n_out`` with a linear output layer.

    Parameters
    ----------
    n_in, n_out : int
        Input and output widths.
    hidden_layer_sizes : sequence of int
        Widths of the hidden layers.
    activation : str
        One of ``ACTIVATIONS`` ("relu", "tanh", "swish", ...).
    batch_norm : bool
        Batch normalisation after each hidden linear layer, before its activation.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}.")
    layers = []
    width = n_in
    for size in hidden_layer_sizes:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(ACTIVATIONS[activation]())
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


@contextlib.contextmanager
def torch_seed(seed, device="cpu"):
    """Seed torch inside the block and restore the caller's torch RNG state afterwards."""
    devices = []
    if torch.device(device).type == "cuda" and torch.cuda.is_available():
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


@contextlib.contextmanager
def no_tf32():
    """Full float32 matmuls (TF32 off) inside the block, as covariance estimates need."""
    old_matmul = torch.backends.cuda.matmul.allow_tf32
    old_cudnn = torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32 = old_matmul
        torch.backends.cudnn.allow_tf32 = old_cudnn


def resolve_device(device):
    """Map ``"auto"`` to CUDA when available; check that an explicit CUDA device exists."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} was requested but CUDA is not available.")
    return str(device)


class TensorBatchLoader:
    """A fast replacement for ``DataLoader`` over in-memory arrays or gathered rows.

    ``DataLoader`` collates one sample at a time, which dominates the cost of small networks.
    This loader slices whole batches out of tensors. When shuffling, the permutation comes from
    torch's global RNG, which sklss seeds inside ``fit``; every batch has at least
    ``batch_size`` rows (the remainder is spread over the others), because covariance and
    batch-norm estimates degrade on tiny trailing batches.

    It takes a skorch ``Dataset`` whose ``X`` is an array or a dict of arrays, and ``y=None``.
    An entry may be :class:`sklss._frames.Rows` instead (trajectory data larger than memory):
    the rows of each batch are then gathered and scaled when it is drawn, with the same
    permutation, so the batches are the ones the arrays would give. Without shuffling (a
    held-out set), a batch of such rows larger than ``sklss._frames.chunk_rows`` of the widest
    input comes as a :class:`ChunkedBatch`, which the nets evaluate piece by piece.

    With a ``device`` other than the CPU, arrays in memory are copied to it once and every
    batch is sliced there (no copy from the host per batch); the permutation is still drawn
    on the CPU, so the batches are the same as on the CPU. Gathered rows are moved per batch.
    """

    def __init__(self, dataset, batch_size=128, shuffle=False, device=None, **kwargs):
        X = dataset.X
        self._keys = list(X) if isinstance(X, Mapping) else None
        columns = [X[k] for k in self._keys] if self._keys else [X]
        self._device = None if device is None or torch.device(device).type == "cpu" else device
        self._columns = [
            c if isinstance(c, Rows) else torch.as_tensor(c, device=self._device) for c in columns
        ]
        widths = [c.shape[1] for c in columns if isinstance(c, Rows)]
        self._piece_rows = chunk_rows(max(widths)) if widths else None
        self._n = len(columns[0])
        self.batch_size = int(batch_size)
        self.shuffle = shuffle

    def __len__(self):
        return (
            max(1, self._n // self.batch_size) if self.shuffle else -(-self._n // self.batch_size)
        )

    def __iter__(self):
        if self.shuffle:
            order = torch.randperm(self._n)
            chunks = torch.tensor_split(order, len(self))
        else:
            chunks = [slice(i, i + self.batch_size) for i in range(0, self._n, self.batch_size)]
        for idx in chunks:
            yield self._batch(idx), None

    def _batch(self, idx):
        if self._piece_rows and isinstance(idx, slice):
            start, stop, _ = idx.indices(self._n)
            if stop - start > self._piece_rows:
                return ChunkedBatch(self, start, stop, self._piece_rows)
        parts = [self._take(c, idx) for c in self._columns]
        return dict(zip(self._keys, parts)) if self._keys else parts[0]

    def _take(self, column, idx):
        if isinstance(column, Rows):
            return torch.from_numpy(column[idx])
        if self._device is not None and isinstance(idx, torch.Tensor):
            idx = idx.to(self._device)
        return column[idx]


class ChunkedBatch:
    """One batch of gathered rows too large to hold at once, drawn in consecutive pieces.

    Iterating gives the batches of its rows ``start..stop-1`` in pieces of ``step`` rows,
    each gathered when reached.
    """

    def __init__(self, loader, start, stop, step):
        self._loader = loader
        self.start, self.stop, self._step = start, stop, step

    def __len__(self):
        return self.stop - self.start

    def __iter__(self):
        for start in range(self.start, self.stop, self._step):
            yield self._loader._batch(slice(start, min(start + self._step, self.stop)))


def _stacked_outputs(outputs):
    """The outputs of a module on consecutive pieces of a batch, as if on the whole batch."""
    if isinstance(outputs[0], tuple):
        return tuple(torch.cat(parts) for parts in zip(*outputs))
    return torch.cat(outputs)


class NonFiniteLossError(FloatingPointError):
    """Training produced a NaN or inf loss."""


class FiniteLossGuard(Callback):
    """Stop training with a named error as soon as an epoch's training loss is not finite."""

    def __init__(self, component="model"):
        self.component = component

    def on_epoch_end(self, net, **kwargs):
        loss = net.history[-1].get("train_loss", 0.0)
        if not np.isfinite(loss):
            epoch = len(net.history)
            raise NonFiniteLossError(
                f"{self.component}: training loss became {loss} at epoch {epoch}. "
                "Lower the learning rate, scale the inputs, or raise the regularisation."
            )


class SklssNet(NeuralNet):
    """The skorch net that sklss estimators train with (a private ``net_`` attribute).

    Subclasses customise ``get_loss``. Data arrive as a dict of arrays, which skorch passes to
    ``module.forward(**X)``; there is no target (``y=None``). A ``KeyboardInterrupt`` stops
    training with a warning; skorch then runs ``on_train_end``, so early stopping restores the
    best weights so far and the history is kept.

    ``max_epochs`` counts the epochs already in the history: a fit that a checkpoint restored
    to epoch ``k`` runs the remaining ``max_epochs - k``.
    """

    interrupted_ = False

    def validation_step(self, batch, **fit_params):
        """skorch's step; a :class:`ChunkedBatch` is evaluated piece by piece.

        The outputs of its pieces are stacked and the loss is taken on them all, so a loss
        that is not a mean over rows (the SRV's VAMP-2) comes out as on the whole batch.
        """
        Xi, yi = unpack_data(batch)
        if not isinstance(Xi, ChunkedBatch):
            return super().validation_step(batch, **fit_params)
        self._set_training(False)
        with torch.no_grad():
            # map drops each piece once it is evaluated, so one piece is held at a time.
            infer = functools.partial(self.infer, **fit_params)
            y_pred = _stacked_outputs(list(map(infer, Xi)))
            loss = self.get_loss(y_pred, yi, X=Xi, training=False)
        return {"loss": loss, "y_pred": y_pred}

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        self.interrupted_ = False
        if epochs is None:
            epochs = max(0, self.max_epochs - len(self.history))
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except KeyboardInterrupt:
            # skorch's EarlyStopping also stops training with a KeyboardInterrupt.
            if not _early_stopping_triggered(self):
                self.interrupted_ = True
                warnings.warn(
                    f"Training interrupted after {len(completed_epochs(self.history))} complete "
                    f"epochs; keeping {_kept_weights(self)}.",
                    UserWarning,
                    stacklevel=2,
                )
            raise


def _early_stopping_triggered(net):
    for _, cb in getattr(net, "callbacks_", []):
        if isinstance(cb, EarlyStopping) and getattr(cb, "misses_", 0) >= cb.patience:
            return True
    return False


def _kept_weights(net):
    """What an interrupted fit keeps: the best epoch's weights under early stopping."""
    for _, cb in getattr(net, "callbacks_", []):
        weights = getattr(cb, "best_model_weights_", None)
        if isinstance(cb, EarlyStopping) and cb.load_best and weights is not None:
            return f"the weights of the best epoch so far ({cb.best_epoch_})"
    return "the weights reached so far"


def completed_epochs(history):
    """The rows of a skorch history whose training pass ran to the end.

    skorch records ``train_batch_count`` once an epoch's last training batch is done; an
    epoch that a Ctrl-C cut short before that has no count.
    """
    return [row for row in history if "train_batch_count" in row]


def history_to_dict(history, columns):
    """Turn a skorch ``History`` into a dict of per-epoch lists, renaming ``columns``.

    ``columns`` maps skorch keys (``"train_loss"``) to ``(name, sign)``; the value is
    multiplied by ``sign``, so a negated loss becomes a score. An epoch whose training pass
    a Ctrl-C cut short is left out.
    """
    rows = completed_epochs(history)
    out = {"epoch": [int(row["epoch"]) for row in rows]}
    for key, (name, sign) in columns.items():
        out[name] = [float(sign * row[key]) if key in row else None for row in rows]
    return out


def check_hidden_layer_sizes(hidden_layer_sizes):
    """Return ``hidden_layer_sizes`` as a tuple of positive ints, or raise a ValueError."""
    sizes = tuple(np.atleast_1d(hidden_layer_sizes).tolist())
    if not sizes or not all(
        isinstance(s, Integral) and not isinstance(s, bool) and s > 0 for s in sizes
    ):
        raise ValueError(
            "The 'hidden_layer_sizes' parameter must contain positive integers; "
            f"got {hidden_layer_sizes!r}."
        )
    return sizes


@contextlib.contextmanager
def fixed_torch_threads(n_threads=1):
    """Run torch with ``n_threads`` intra-op CPU threads inside the block, then restore.

    Parallel reductions split their sums by thread, so the same seed gives bitwise different
    weights under different thread counts, for example in joblib workers (which get one
    thread each) and in the parent process. A fixed count inside ``fit`` makes training
    reproducible in both. Small networks lose little: their matrices are too small to gain
    much from threads.
    """
    previous = torch.get_num_threads()
    torch.set_num_threads(n_threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def best_epoch_stopping(monitor, patience):
    """Early stopping on ``monitor`` that restores the weights of the best epoch.

    The threshold is absolute: skorch's default relative threshold misjudges improvement once
    a loss (a negative VAMP-2 or log-likelihood) is negative.
    """
    return EarlyStopping(
        monitor=monitor, patience=patience, threshold=1e-4, threshold_mode="abs", load_best=True
    )


def fit_net(net, dataset, seed, device):
    """Fit a skorch net reproducibly and return it.

    Torch is seeded with ``seed`` (the caller's RNG state is restored afterwards), TF32 is off,
    and training runs on one intra-op thread: sums split by thread differ in the last bits, so
    a count that followed the environment would make fits in joblib workers differ from the
    parent's, and several threads per fit collapse when workers share the cores. Afterwards
    the net drops its validation data, so a saved model holds only weights.
    """
    with torch_seed(seed, device), no_tf32(), fixed_torch_threads(1):
        net.fit(dataset, y=None)
    net.train_split = None
    return net
