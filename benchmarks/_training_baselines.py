"""Training loops of the published reference codes, rebuilt to be timed per epoch against sklss.

Each function trains one reference model on the arrays it is given and returns the wall-clock
seconds of each epoch (``time.perf_counter``, fetching the batches included, model setup and
the scaler's pass over the data not included). The code is written anew for this benchmark;
it follows the references' architecture, loss, optimiser, order of the steps in each batch and
the work done per batch, without their training frameworks.

:func:`deeptime_vampnet_epochs` -- SRV encoder baseline
    deeptime's own ``deeptime.decomposition.deep.VAMPNet`` (the installed package, used
    directly, not re-implemented) with one shared lobe laid out like sklss's encoder network
    (``n_in -> 100 -> 100 -> n_out``, each hidden layer ``Linear -> BatchNorm1d -> tanh``, a
    linear output), Adam, score ``VAMP2``, score mode ``regularize``, ``epsilon=1e-6``
    (deeptime's defaults apart from the learning rate). One ``VAMPNet.partial_fit((x_0, x_t))``
    per batch: zero_grad, the lobe on ``x_0``, the lobe on ``x_t`` (two separate forward
    passes, so two sets of batch-norm statistics, as deeptime does), ``-VAMP2``, backward, Adam
    step, and ``.item()`` of the score for its ``train_scores``. The batches are gathered here
    (one index gather per batch), not by a ``DataLoader``, so only deeptime's step is timed.
    ``VAMPNet.fit`` only adds the ``DataLoader`` loop and a TF32 switch without effect on CPU.

:func:`reference_mdn_epochs` -- MDN propagator baseline
    Ferg-Lab/mdn_propagator (commit ad8fd32, Jan 2023): ``mdn_propagator/mdn.py``
    (``MixtureDensityNetwork``: forward and ``loss``), ``mdn_propagator/modules.py`` (``MLP``),
    ``mdn_propagator/propagator.py`` (``Propagator.training_step`` and
    ``configure_optimizers``), ``mdn_propagator/data.py`` (``KStepDataset`` with ``k=1`` and
    ``DataModule.train_dataloader``), ``mdn_propagator/utils.py`` (``MinMaxScaler`` to [0, 1]).

    - Network: ``Linear(d, h) -> SiLU -> Linear(h, h) -> SiLU -> Linear(h, C * (2 d + 1))``;
      the reference's ``MLP(hidden_dim=h, n_hidden_layers=1)`` is ``hidden=(h, h)``. The
      output is split into C mixture logits, C x d means (through a sigmoid, the data being
      scaled to [0, 1]) and C x d scales (``elu(s) + 1 + 1e-7``), wrapped in torch's
      ``OneHotCategorical`` and ``Normal`` (default argument validation, as the reference).
    - Loss: ``-logsumexp(logits + sum_d log N(y | mean, scale))`` per pair, times the pair's
      path weight (all ones without reweighting, still multiplied, as the reference does),
      averaged over the batch.
    - Adam (torch defaults) at ``lr`` (reference default 1e-3), one step per batch.
    - Batches: a ``DataLoader(batch_size, shuffle=True)`` over a map-style dataset returning
      ``[[x_t, x_t+lag], weight]`` for one index, collated sample by sample
      (``batching="dataloader"``, the reference's way), or one index gather per batch
      (``batching="gather"``, the same model work without the per-sample fetching).

:func:`reference_cwgan_epochs` -- cWGAN-GP decoder baseline
    Ferg-Lab/molgen (commit 533a1cc, Mar 2023): ``molgen/models.py`` (``WGANGP``:
    ``forward``, ``compute_gradient_penalty``, ``training_step``, ``configure_optimizers``),
    ``molgen/modules.py`` (``SimpleGenerator``, ``SimpleDiscriminator``), ``molgen/data.py``
    (``GANDataModule``: ``TensorDataset`` in a ``DataLoader(batch_size, shuffle=True)``),
    ``molgen/utils.py`` (``MinMaxScaler`` to [-1, 1] for targets and conditions).

    - Generator: input ``[z, c]`` (``z ~ N(0, I)`` of ``noise_dim``), per hidden layer
      ``Linear -> BatchNorm1d -> SiLU`` (the reference: three of width 256), then
      ``Linear -> tanh``. Critic: input ``[x, c]``, per hidden layer ``Linear -> SiLU`` (three
      of width 256, no normalisation), then ``Linear(., 1)``.
    - Optimisers: RMSprop at ``lr`` for each network (reference default 5e-5), or with
      ``optimizer="adam"`` Adam with ``betas=(0.5, 0.9)`` at 1e-4 (the reference hard-codes
      that rate; ``lr`` overrides it when given).
    - Schedule: Lightning 1.x multiple optimisers with frequencies (generator 1, critic
      ``n_critic``): each batch of the ``DataLoader`` drives exactly one optimiser step, chosen
      by the batch's index in the epoch: index ``i % (1 + n_critic) == 0`` -> generator step,
      otherwise a critic step. So every critic step sees a fresh real batch, and the generator
      step comes first in each cycle. Lightning makes only the active optimiser's parameters
      trainable during its step (``toggle_optimizer``/``untoggle_optimizer``); done here too,
      so a critic step builds no graph through the generator's weights and a generator step
      computes no weight gradients of the critic.
    - Each step draws ``z`` for the batch; generator step: ``-mean(D([G([z, c]), c]))``;
      critic step: ``mean(D(fake)) - mean(D(real)) + gp_weight * GP`` with the gradient
      penalty on ``alpha * real + (1 - alpha) * fake`` (detached, one ``alpha`` per row),
      ``autograd.grad(create_graph=True)`` and ``(||grad||_2 - 1)^2`` averaged.

Deviations common to the three (none changes the per-batch model work):

- No PyTorch Lightning: the loops are plain ``forward -> zero_grad -> backward -> step`` per
  batch, the order of Lightning's automatic optimisation closure; its per-step hooks,
  progress bar and ``self.log`` calls (metric logging) are removed, so the reference's own
  time per epoch would be somewhat higher than measured here (a lower bound for it).
- Data are not copied: the arrays (``np.memmap`` included) are viewed as CPU tensors without
  a copy and rows are fetched per batch. The references scale a full in-memory copy once;
  here the min/max of each column is found in one chunked pass before training (untimed) and
  the scaling is applied to each batch after it is fetched (two element-wise ops). A column
  with ``max == min`` gets scale 1 instead of the reference's division by zero.
- A trailing batch of a single row is skipped: batch normalisation cannot train on one row
  (the reference would raise there); every other trailing partial batch is kept, as the
  ``DataLoader``'s ``drop_last=False`` does.
- Seeded and reproducible: the shuffling uses a ``torch.Generator`` seeded with ``seed``; the
  initialisation and the noise (``z``, ``alpha``) use torch's global generator, seeded with
  ``seed`` inside ``torch.random.fork_rng``, so the caller's random state is left as it was.
  The thread count (``torch.set_num_threads``) is the caller's; nothing here changes it.
- CPU, float32.
"""

import time
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.distributions import Normal, OneHotCategorical
from torch.utils.data import DataLoader, Dataset

__all__ = [
    "deeptime_vampnet_epochs",
    "reference_cwgan_epochs",
    "reference_mdn_epochs",
]

# Rows per chunk of the untimed min/max pass over (possibly memory-mapped) data.
_SCAN_ROWS = 1 << 16

_ACTIVATIONS = {"silu": nn.SiLU, "swish": nn.SiLU, "tanh": nn.Tanh, "relu": nn.ReLU}


# --------------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------------


def _tensor_view(array, name):
    """A CPU tensor sharing memory with a 2-D array (an ``np.memmap`` stays on disk).

    Read-only arrays are fine: torch warns that writing through the tensor would be undefined,
    and nothing here writes to it.
    """
    array = np.asanyarray(array)
    if array.ndim != 2:
        raise ValueError(f"{name} must be 2-D; got shape {array.shape}.")
    if array.dtype not in (np.float32, np.float64):
        raise TypeError(f"{name} must be float32 or float64; got {array.dtype}.")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return torch.from_numpy(array)


def _column_min_max(*arrays):
    """Column-wise min and max over the rows of all ``arrays``, in one chunked pass."""
    lo = hi = None
    for a in arrays:
        for start in range(0, len(a), _SCAN_ROWS):
            chunk = np.asarray(a[start : start + _SCAN_ROWS])
            c_lo, c_hi = chunk.min(axis=0), chunk.max(axis=0)
            lo = c_lo if lo is None else np.minimum(lo, c_lo)
            hi = c_hi if hi is None else np.maximum(hi, c_hi)
    return lo.astype(np.float32), hi.astype(np.float32)


class _BatchScaler:
    """Min-max scaling to ``feature_range`` as the references' ``MinMaxScaler``, per batch."""

    def __init__(self, lo, hi, feature_range):
        width = hi - lo
        width[width == 0] = 1.0
        self.low = float(feature_range[0])
        self.min = torch.from_numpy(lo)
        self.range = torch.from_numpy((feature_range[1] - feature_range[0]) / width)

    def __call__(self, x):
        return self.low + (x.float() - self.min) * self.range


def _check_positive(name, value):
    if int(value) < 1:
        raise ValueError(f"{name} must be >= 1; got {value}.")
    return int(value)


def _batches(n, batch_size, generator):
    """Shuffled index batches over ``n`` rows as ``DataLoader(shuffle=True)``: ceil(n/B) of them.

    A trailing batch of one row is dropped (batch norm cannot train on it).
    """
    order = torch.randperm(n, generator=generator)
    chunks = list(torch.split(order, batch_size))
    if len(chunks) > 1 and len(chunks[-1]) < 2:
        chunks.pop()
    return chunks


def _steps_in_epoch(n, batch_size, max_steps):
    n_batches = -(-n // batch_size)
    if n_batches > 1 and n % batch_size == 1:
        n_batches -= 1
    return n_batches if max_steps is None else min(n_batches, int(max_steps))


class _SkipSingletonBatches(torch.utils.data.Sampler):
    """``BatchSampler(RandomSampler)`` with the ``DataLoader``'s shuffle, minus a 1-row tail."""

    def __init__(self, n, batch_size, generator):
        self.n, self.batch_size, self.generator = n, batch_size, generator

    def __iter__(self):
        for chunk in _batches(self.n, self.batch_size, self.generator):
            yield chunk.tolist()

    def __len__(self):
        return _steps_in_epoch(self.n, self.batch_size, None)


def _sample_loader(dataset, n, batch_size, generator):
    """A ``DataLoader`` fetching and collating one sample at a time, shuffled, no workers."""
    return DataLoader(
        dataset, batch_sampler=_SkipSingletonBatches(n, batch_size, generator), num_workers=0
    )


def _fill_info(info, **values):
    if info is not None:
        info.update(values)


# --------------------------------------------------------------------------------------------
# SRV encoder: deeptime's VAMPNet
# --------------------------------------------------------------------------------------------


def _encoder_lobe(n_in, hidden, n_out, activation, batch_norm):
    """The layout of sklss's encoder network: ``(Linear -> [BatchNorm1d] -> act)*`` -> Linear."""
    layers, width = [], n_in
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if batch_norm:
            layers.append(nn.BatchNorm1d(size))
        layers.append(_ACTIVATIONS[activation]())
        width = size
    layers.append(nn.Linear(width, n_out))
    return nn.Sequential(*layers)


def deeptime_vampnet_epochs(
    x0_rows,
    xt_rows,
    frames,
    *,
    n_out=3,
    hidden=(100, 100),
    batch_size=2048,
    lr=1e-2,
    n_epochs=3,
    seed=0,
    activation="tanh",
    batch_norm=True,
    epsilon=1e-6,
    score_mode="regularize",
    max_steps=None,
    info=None,
):
    """Train deeptime's ``VAMPNet`` with ``partial_fit`` per batch; seconds per epoch.

    Parameters
    ----------
    x0_rows, xt_rows : 1-D integer arrays of equal length ``n_pairs``
        Pair ``k`` is ``(frames[x0_rows[k]], frames[xt_rows[k]])``. Index arrays let a caller
        give every lagged pair of a 1M-row memmap without materialising the pairs: for one
        trajectory, ``x0_rows = arange(n - lag)`` and ``xt_rows = x0_rows + lag``; for several
        trajectories stacked in ``frames``, the same per trajectory with its row offset.
    frames : 2-D float32 (or float64) array, ``np.memmap`` allowed, shape (n_frames, n_in)
        Never copied whole: each batch gathers its ``2 * batch_size`` rows.
    n_out, hidden, activation, batch_norm
        The lobe ``n_in -> hidden... -> n_out`` (``Linear -> BatchNorm1d -> tanh`` per hidden
        layer), shared between the instantaneous and the time-lagged side.
    batch_size, lr, epsilon, score_mode
        Batch size (pairs), Adam's learning rate, deeptime's regularisation and its mode.
    n_epochs, seed
        Number of timed epochs; seed of the initialisation and the shuffling.
    max_steps : int, optional
        Stop each epoch after this many optimiser steps (a partial epoch is then timed).
    info : dict, optional
        Filled with ``steps_per_epoch`` (optimiser steps, = batches), ``pairs`` and
        ``final_score`` (the last batch's VAMP-2 from ``VAMPNet.train_scores``).

    Returns
    -------
    list of float
        Seconds of each epoch. One epoch is one pass over all ``n_pairs`` pairs in shuffled
        batches of ``batch_size``: ``ceil(n_pairs / batch_size)`` batches (a last batch of one
        pair skipped), each exactly one ``partial_fit``, i.e. one Adam step.
    """
    from deeptime.decomposition.deep import VAMPNet

    frames_t = _tensor_view(frames, "frames")
    x0_rows = torch.as_tensor(np.asarray(x0_rows, dtype=np.int64))
    xt_rows = torch.as_tensor(np.asarray(xt_rows, dtype=np.int64))
    if x0_rows.ndim != 1 or x0_rows.shape != xt_rows.shape:
        raise ValueError("x0_rows and xt_rows must be 1-D index arrays of the same length.")
    n_pairs = len(x0_rows)
    batch_size = _check_positive("batch_size", batch_size)
    n_epochs = _check_positive("n_epochs", n_epochs)
    max_steps = None if max_steps is None else _check_positive("max_steps", max_steps)
    if n_pairs < 2:
        raise ValueError("Need at least 2 pairs.")

    times = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        lobe = _encoder_lobe(frames_t.shape[1], hidden, n_out, activation, batch_norm)
        vampnet = VAMPNet(
            lobe,
            optimizer="Adam",
            learning_rate=lr,
            score_method="VAMP2",
            score_mode=score_mode,
            epsilon=epsilon,
            dtype=np.float32,
        )
        for _ in range(n_epochs):
            start = time.perf_counter()
            for step, idx in enumerate(_batches(n_pairs, batch_size, shuffle)):
                if max_steps is not None and step >= max_steps:
                    break
                batch_0 = frames_t[x0_rows[idx]].float()
                batch_t = frames_t[xt_rows[idx]].float()
                vampnet.partial_fit((batch_0, batch_t))
            times.append(time.perf_counter() - start)
    _fill_info(
        info,
        steps_per_epoch=_steps_in_epoch(n_pairs, batch_size, max_steps),
        pairs=n_pairs,
        final_score=float(vampnet.train_scores[-1, 1]),
    )
    return times


# --------------------------------------------------------------------------------------------
# MDN propagator: Ferg-Lab/mdn_propagator
# --------------------------------------------------------------------------------------------


class _MixtureDensityNetwork(nn.Module):
    """The reference's mixture density network: an MLP giving C logits, means and scales."""

    def __init__(self, dim, n_kernels, hidden, activation):
        super().__init__()
        self.n_kernels = n_kernels
        act = _ACTIVATIONS[activation]
        layers, width = [], dim
        for size in hidden:
            layers += [nn.Linear(width, size), act()]
            width = size
        layers.append(nn.Linear(width, n_kernels * (2 * dim + 1)))
        self.network = nn.Sequential(*layers)

    def forward(self, x):
        out = self.network(x)
        c = self.n_kernels
        weights = OneHotCategorical(logits=out[..., :c])
        params = out[..., c:]
        # First half: C blocks of d means; second half: C blocks of d raw scales.
        mean, raw = torch.split(params, params.shape[1] // 2, dim=1)
        mean = torch.stack(mean.split(mean.shape[1] // c, 1))
        raw = torch.stack(raw.split(raw.shape[1] // c, 1))
        # (C, B, d) -> (B, C, d); scale = elu + 1, then + 1e-7 as a separate add.
        loc = torch.sigmoid(mean).transpose(0, 1)
        kernels = Normal(loc, (F.elu(raw) + 1 + 1e-7).transpose(0, 1))
        return weights, kernels

    def loss(self, x, y):
        weights, kernels = self(x)
        log_kernel = kernels.log_prob(y.unsqueeze(1).expand_as(kernels.loc)).sum(dim=2)
        return -torch.logsumexp(weights.logits + log_kernel, dim=1)


class _LaggedPairs(Dataset):
    """One lagged pair and its path weight per index, as ``KStepDataset`` with ``k=1``."""

    def __init__(self, x0, xt, weight):
        self.x0, self.xt, self.weight = x0, xt, weight

    def __len__(self):
        return len(self.x0)

    def __getitem__(self, index):
        return [[self.x0[index], self.xt[index]], self.weight[index]]


def reference_mdn_epochs(
    x0,
    xt,
    *,
    n_kernels=24,
    hidden=(100, 100),
    batch_size=1024,
    lr=1e-3,
    n_epochs=3,
    seed=0,
    activation="silu",
    batching="dataloader",
    max_steps=None,
    info=None,
):
    """Train the mdn_propagator MDN (negative log-likelihood, Adam); seconds per epoch.

    Parameters
    ----------
    x0, xt : 2-D float32 (or float64) arrays, ``np.memmap`` allowed, shape (n_pairs, d)
        Row ``k`` of each is a lagged pair (x_t, x_t+lag) in the propagated (latent) space.
        Not copied: rows are fetched per batch.
    n_kernels, hidden, activation
        Mixture components C, hidden widths (the reference: ``(h, h)``), activation (SiLU).
    batch_size, lr
        Batch size (pairs) and Adam's learning rate.
    n_epochs, seed
        Number of timed epochs; seed of the initialisation and the shuffling.
    batching : {"dataloader", "gather"}
        ``"dataloader"``: a ``DataLoader`` over a map-style dataset, fetching and collating one
        pair at a time, as the reference; ``"gather"``: one index gather per batch.
    max_steps : int, optional
        Stop each epoch after this many optimiser steps (a partial epoch is then timed).
    info : dict, optional
        Filled with ``steps_per_epoch`` (optimiser steps, = batches), ``pairs`` and
        ``final_loss`` (the last batch's loss).

    Returns
    -------
    list of float
        Seconds of each epoch. One epoch is one pass over all ``n_pairs`` pairs in shuffled
        batches of ``batch_size``: ``ceil(n_pairs / batch_size)`` batches (a last batch of one
        pair skipped), each one Adam step.
    """
    if batching not in ("dataloader", "gather"):
        raise ValueError(f"batching must be 'dataloader' or 'gather'; got {batching!r}.")
    x0_t, xt_t = _tensor_view(x0, "x0"), _tensor_view(xt, "xt")
    if x0_t.shape != xt_t.shape:
        raise ValueError(f"x0 and xt must have the same shape; got {x0_t.shape}, {xt_t.shape}.")
    n_pairs, dim = x0_t.shape
    batch_size = _check_positive("batch_size", batch_size)
    n_epochs = _check_positive("n_epochs", n_epochs)
    max_steps = None if max_steps is None else _check_positive("max_steps", max_steps)
    if n_pairs < 2:
        raise ValueError("Need at least 2 pairs.")
    # The reference fits its [0, 1] scaler on the trajectory, i.e. on both ends of the pairs.
    scale = _BatchScaler(*_column_min_max(x0, xt), feature_range=(0.0, 1.0))
    path_weight = torch.ones(n_pairs)

    times = []
    loss = None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        mdn = _MixtureDensityNetwork(dim, n_kernels, hidden, activation)
        optimizer = torch.optim.Adam(mdn.parameters(), lr=lr)
        mdn.train()
        if batching == "dataloader":
            loader = _sample_loader(
                _LaggedPairs(x0_t, xt_t, path_weight), n_pairs, batch_size, shuffle
            )
        for _ in range(n_epochs):
            start = time.perf_counter()
            if batching == "dataloader":
                batches = iter(loader)
            else:
                batches = (
                    [[x0_t[idx], xt_t[idx]], path_weight[idx]]
                    for idx in _batches(n_pairs, batch_size, shuffle)
                )
            for step, ((x, y), weight) in enumerate(batches):
                if max_steps is not None and step >= max_steps:
                    break
                x, y = scale(x), scale(y)
                loss = (weight * mdn.loss(x, y)).mean()
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
            times.append(time.perf_counter() - start)
    _fill_info(
        info,
        steps_per_epoch=_steps_in_epoch(n_pairs, batch_size, max_steps),
        pairs=n_pairs,
        final_loss=float(loss.detach()) if loss is not None else None,
    )
    return times


# --------------------------------------------------------------------------------------------
# cWGAN-GP decoder: Ferg-Lab/molgen
# --------------------------------------------------------------------------------------------


class _Generator(nn.Module):
    """molgen's ``SimpleGenerator``: ``(Linear -> BatchNorm1d -> SiLU)*`` -> Linear -> tanh."""

    def __init__(self, n_in, hidden, n_out):
        super().__init__()
        layers, width = [], n_in
        for size in hidden:
            layers += [nn.Linear(width, size), nn.BatchNorm1d(size), nn.SiLU()]
            width = size
        layers += [nn.Linear(width, n_out), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, z):
        return self.model(z)


class _Critic(nn.Module):
    """molgen's ``SimpleDiscriminator``: ``(Linear -> SiLU)*`` -> Linear to one score."""

    def __init__(self, n_in, hidden):
        super().__init__()
        layers, width = [], n_in
        for size in hidden:
            layers += [nn.Linear(width, size), nn.SiLU()]
            width = size
        layers.append(nn.Linear(width, 1))
        self.model = nn.Sequential(*layers)

    def forward(self, x):
        return self.model(x)


def _gradient_penalty(critic, real, fake):
    """``mean((||grad_u D(u)||_2 - 1)^2)`` at ``u`` between real and fake rows (detached)."""
    alpha = torch.rand((real.size(0), 1))
    mixed = (alpha * real + (1 - alpha) * fake).requires_grad_(True)
    score = critic(mixed)
    (grad,) = torch.autograd.grad(
        outputs=score,
        inputs=mixed,
        grad_outputs=torch.ones_like(score),
        create_graph=True,
        retain_graph=True,
        only_inputs=True,
    )
    grad = grad.view(grad.size(0), -1)
    return ((grad.norm(2, dim=1) - 1) ** 2).mean()


class _OnlyTrainable:
    """Lightning's ``toggle_optimizer``: only ``active``'s parameters require grad inside."""

    def __init__(self, all_params, active):
        self.all_params, self.active = all_params, set(active)

    def __enter__(self):
        self.saved = [p.requires_grad for p in self.all_params]
        for p in self.all_params:
            if p not in self.active:
                p.requires_grad_(False)

    def __exit__(self, *exc):
        for p, flag in zip(self.all_params, self.saved, strict=True):
            p.requires_grad_(flag)


def reference_cwgan_epochs(
    cond,
    target,
    *,
    noise_dim=50,
    hidden=(200, 200, 200),
    critic_hidden=None,
    batch_size=64,
    n_critic=5,
    gp_weight=10.0,
    lr=None,
    optimizer="rmsprop",
    n_epochs=3,
    seed=0,
    max_steps=None,
    batching="dataloader",
    info=None,
):
    """Train the molgen conditional WGAN-GP (Lightning 1.x schedule); seconds per epoch.

    Parameters
    ----------
    cond : 2-D float32 (or float64) array, ``np.memmap`` allowed, shape (n, n_cond)
        Conditions (e.g. the latent coordinates of each frame).
    target : 2-D float32 (or float64) array, ``np.memmap`` allowed, shape (n, n_features)
        The rows to generate (e.g. 330 features per frame), row ``k`` matching ``cond[k]``.
        Neither is copied: rows are fetched per batch.
    noise_dim, hidden, critic_hidden
        Noise width and hidden widths of the generator and of the critic (``critic_hidden``
        defaults to ``hidden``). The reference uses 128 and three layers of 256 for both.
    batch_size, n_critic, gp_weight
        Rows per batch (= per optimiser step), critic steps per generator step, weight of the
        gradient penalty.
    lr, optimizer
        ``"rmsprop"`` (reference default, ``lr`` default 5e-5) or ``"adam"`` (betas (0.5, 0.9),
        ``lr`` default 1e-4); one optimiser per network, same rate.
    n_epochs, seed
        Number of timed epochs; seed of the initialisation, noise and shuffling.
    max_steps : int, optional
        Stop each epoch after this many optimiser steps (batches), e.g. to time a slice of a
        large epoch; seconds per step are then ``time / max_steps``.
    batching : {"dataloader", "gather"}
        ``"dataloader"``: ``DataLoader`` fetching and collating one row at a time, as the
        reference's ``TensorDataset``; ``"gather"``: one index gather per batch.
    info : dict, optional
        Filled with ``steps_per_epoch`` (optimiser steps = batches), ``generator_steps`` and
        ``critic_steps`` per epoch, and ``rows``.

    Returns
    -------
    list of float
        Seconds of each epoch. One epoch, counted the reference's way, is one pass of the
        ``DataLoader`` over the ``n`` rows in shuffled batches of ``batch_size``:
        ``S = ceil(n / batch_size)`` batches (a last batch of one row skipped), and every
        batch is exactly ONE optimiser step -- batch ``i`` is a generator step when
        ``i % (n_critic + 1) == 0``, else a critic step on its own fresh real batch. Hence per
        epoch ``ceil(S / (n_critic + 1))`` generator steps and the rest, about
        ``S * n_critic / (n_critic + 1)``, critic steps; each row is seen once per epoch, by
        either a critic or a generator step. (A loop that runs ``n_critic`` critic steps and
        one generator step per "iteration" covers ``n_critic + 1`` batches per iteration.)
    """
    if batching not in ("dataloader", "gather"):
        raise ValueError(f"batching must be 'dataloader' or 'gather'; got {batching!r}.")
    opt_name = optimizer.lower()
    if opt_name not in ("rmsprop", "adam"):
        raise ValueError(f"optimizer must be 'rmsprop' or 'adam'; got {optimizer!r}.")
    cond_t, target_t = _tensor_view(cond, "cond"), _tensor_view(target, "target")
    if len(cond_t) != len(target_t):
        raise ValueError("cond and target must have the same number of rows.")
    n, n_cond = cond_t.shape
    n_features = target_t.shape[1]
    batch_size = _check_positive("batch_size", batch_size)
    n_critic = _check_positive("n_critic", n_critic)
    n_epochs = _check_positive("n_epochs", n_epochs)
    max_steps = None if max_steps is None else _check_positive("max_steps", max_steps)
    if n < 2:
        raise ValueError("Need at least 2 rows.")
    critic_hidden = hidden if critic_hidden is None else critic_hidden
    scale_x = _BatchScaler(*_column_min_max(target), feature_range=(-1.0, 1.0))
    scale_c = _BatchScaler(*_column_min_max(cond), feature_range=(-1.0, 1.0))

    times = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        shuffle = torch.Generator().manual_seed(seed)
        generator = _Generator(noise_dim + n_cond, hidden, n_features)
        critic = _Critic(n_features + n_cond, critic_hidden)
        if opt_name == "rmsprop":
            rate = 5e-5 if lr is None else lr
            opt_g = torch.optim.RMSprop(generator.parameters(), lr=rate)
            opt_d = torch.optim.RMSprop(critic.parameters(), lr=rate)
        else:
            rate = 1e-4 if lr is None else lr
            opt_g = torch.optim.Adam(generator.parameters(), lr=rate, betas=(0.5, 0.9))
            opt_d = torch.optim.Adam(critic.parameters(), lr=rate, betas=(0.5, 0.9))
        all_params = list(generator.parameters()) + list(critic.parameters())
        only_generator = _OnlyTrainable(all_params, generator.parameters())
        only_critic = _OnlyTrainable(all_params, critic.parameters())
        generator.train()
        critic.train()
        if batching == "dataloader":
            dataset = torch.utils.data.TensorDataset(target_t, cond_t)
            loader = _sample_loader(dataset, n, batch_size, shuffle)
        cycle = n_critic + 1
        for _ in range(n_epochs):
            start = time.perf_counter()
            if batching == "dataloader":
                batches = iter(loader)
            else:
                batches = ((target_t[idx], cond_t[idx]) for idx in _batches(n, batch_size, shuffle))
            for step, (x, c) in enumerate(batches):
                if max_steps is not None and step >= max_steps:
                    break
                x, c = scale_x(x), scale_c(c)
                z = torch.randn(x.size(0), noise_dim).type_as(x)
                if step % cycle == 0:
                    with only_generator:
                        fake = torch.cat((generator(torch.cat((z, c), dim=-1)), c), dim=-1)
                        g_loss = -torch.mean(critic(fake))
                        opt_g.zero_grad()
                        g_loss.backward()
                        opt_g.step()
                else:
                    with only_critic:
                        fake = generator(torch.cat((z, c), dim=-1))
                        real = torch.cat((x, c), dim=-1)
                        real_score = critic(real)
                        fake = torch.cat((fake, c), dim=-1)
                        fake_score = critic(fake)
                        penalty = _gradient_penalty(critic, real.data, fake.data)
                        d_loss = torch.mean(fake_score) - torch.mean(real_score)
                        d_loss = d_loss + gp_weight * penalty
                        opt_d.zero_grad()
                        d_loss.backward()
                        opt_d.step()
            times.append(time.perf_counter() - start)
    steps = _steps_in_epoch(n, batch_size, max_steps)
    generator_steps = -(-steps // cycle)
    _fill_info(
        info,
        steps_per_epoch=steps,
        generator_steps=generator_steps,
        critic_steps=steps - generator_steps,
        rows=n,
    )
    return times


def _smoke():
    """A one-epoch run of each baseline on random data (4,096 rows x 330 features)."""
    rng = np.random.default_rng(0)
    n_rows, width, latent, lag = 4096, 330, 3, 1
    frames = rng.standard_normal((n_rows, width), dtype=np.float32)
    latents = rng.standard_normal((n_rows, latent), dtype=np.float32)
    rows0 = np.arange(n_rows - lag)
    runs = {
        "deeptime VAMPNet": lambda i: deeptime_vampnet_epochs(
            rows0, rows0 + lag, frames, n_epochs=1, info=i
        ),
        "mdn_propagator MDN (dataloader)": lambda i: reference_mdn_epochs(
            latents[:-lag], latents[lag:], n_epochs=1, info=i
        ),
        "mdn_propagator MDN (gather)": lambda i: reference_mdn_epochs(
            latents[:-lag], latents[lag:], n_epochs=1, batching="gather", info=i
        ),
        "molgen cWGAN-GP (dataloader)": lambda i: reference_cwgan_epochs(
            latents, frames, n_epochs=1, info=i
        ),
        "molgen cWGAN-GP (gather)": lambda i: reference_cwgan_epochs(
            latents, frames, n_epochs=1, batching="gather", info=i
        ),
    }
    for name, run in runs.items():
        info = {}
        seconds = run(info)
        print(f"{name}: {[round(s, 3) for s in seconds]} s/epoch, {info}")


if __name__ == "__main__":
    _smoke()
