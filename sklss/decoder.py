"""The cWGAN decoder: generate molecular configurations consistent with a latent point."""

import copy
import warnings
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.utils.validation import check_is_fitted
from skorch.callbacks import PassthroughScoring
from skorch.dataset import unpack_data
from torch import nn

from ._compat import Interval, _fit_context
from ._frames import Frames, Rows, frame_offsets, gathers_batches, row_chunks, training_inputs
from ._nn import (
    ChunkedBatch,
    NonFiniteLossError,
    SklssNet,
    history_to_dict,
    make_mlp,
)
from ._random import derive_seeds
from ._training import TRAINING_PARAMETERS, build_net, standard_callbacks, start_fit, train
from ._validation import (
    as_output_form,
    check_paired_targets,
    check_trajectories,
    feature_mean_and_scale,
    segment_rows,
    split_segments,
)

# Frames per forward pass when decoding: large enough to amortise dispatch, small enough that
# the hidden activations stay in cache.
_DECODE_CHUNK = 16384
# Added to the squared gradient norm in the penalty, so that its gradient stays finite where the
# critic's input gradient vanishes.
_GRADIENT_NORM_EPSILON = 1e-12
# Covariance eigenvalues of Y below this fraction of the largest are raised to it before
# whitening.
_WHITENING_EPSILON = 1e-6
# Adam's moment decay rates for both networks, as in Gulrajani et al. (2017).
_ADAM_BETAS = (0.5, 0.9)
# score(): random projections of the sliced Wasserstein distance, and the fixed seed of the
# projections and of the generator noise, which makes the score deterministic.
_SCORE_PROJECTIONS = 128
_SCORE_SEED = 0


class _Generator(nn.Module):
    """``G(psi, z)``: a configuration from a latent point and a noise vector."""

    def __init__(self, n_conditions, noise_dim, n_outputs, hidden_layer_sizes, activation):
        super().__init__()
        self.noise_dim = noise_dim
        self.mlp = make_mlp(
            n_conditions + noise_dim, hidden_layer_sizes, n_outputs, activation=activation
        )

    def forward(self, x, noise=None):
        if noise is None:
            noise = torch.randn(len(x), self.noise_dim, dtype=x.dtype, device=x.device)
        return self.mlp(torch.cat([x, noise], dim=1))


class _Critic(nn.Module):
    """``D(y, psi)``: a real-valued score of a configuration given its latent point.

    There is no batch norm: the gradient penalty is defined per sample, and batch statistics
    would couple the samples of a batch.
    """

    def __init__(self, n_outputs, n_conditions, hidden_layer_sizes, activation):
        super().__init__()
        self.mlp = make_mlp(n_outputs + n_conditions, hidden_layer_sizes, 1, activation=activation)

    def forward(self, y, x):
        return self.mlp(torch.cat([y, x], dim=1)).squeeze(1)


def _gradient_penalty(critic, real, fake, x, epsilon=_GRADIENT_NORM_EPSILON):
    """Mean of ``(||grad_y D(y_hat, x)|| - 1)^2`` on random interpolates ``y_hat``.

    One interpolation weight per sample; the norm is taken over all non-batch dimensions, with
    ``epsilon`` inside the square root so that a vanishing gradient gives a finite penalty and a
    finite gradient.
    """
    shape = (len(real),) + (1,) * (real.dim() - 1)
    alpha = torch.rand(shape, dtype=real.dtype, device=real.device)
    mixed = (alpha * real + (1.0 - alpha) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(mixed, x).sum(), mixed, create_graph=True)
    norm = torch.sqrt(grad.flatten(1).pow(2).sum(dim=1) + epsilon)
    return ((norm - 1.0) ** 2).mean()


class _WassersteinGP(nn.Module):
    """The WGAN-GP losses (Gulrajani et al., 2017) for a conditional critic."""

    def __init__(self, penalty_weight=10.0):
        super().__init__()
        self.penalty_weight = penalty_weight

    def critic_loss(self, critic, real, fake, x):
        """``D(fake) - D(real) + lambda * penalty``, and the Wasserstein estimate it implies."""
        wasserstein = critic(real, x).mean() - critic(fake, x).mean()
        penalty = _gradient_penalty(critic, real, fake, x)
        return -wasserstein + self.penalty_weight * penalty, wasserstein.detach()

    def generator_loss(self, critic, fake, x):
        return -critic(fake, x).mean()


class _CWGANNet(SklssNet):
    """A skorch net for the conditional WGAN-GP.

    skorch expresses the adversarial loop through its documented hooks for several modules and
    optimizers: the generator is ``module_``, the critic ``critic_`` (built in
    ``initialize_module``), each with its own Adam optimizer (``optimizer_`` and
    ``critic_optimizer_``). ``train_step`` is overridden because one step of the loop is not a
    single loss and one optimizer step: each batch the iterator yields holds ``n_critic``
    critic mini-batches, and the step runs ``n_critic`` critic updates and then one generator
    update. History, callbacks, progress bar, device handling and interruption stay skorch's.

    ``average_`` is an exponential moving average of the generator's weights, updated after
    every generator step with decay ``min(ema_decay, (1 + t) / (10 + t))`` at step ``t``.
    """

    def __init__(self, *args, n_critic=5, ema_decay=0.999, **kwargs):
        super().__init__(*args, **kwargs)
        self.n_critic = n_critic
        self.ema_decay = ema_decay

    def initialize_module(self):
        super().initialize_module()
        self.critic_ = _Critic(**self.get_params_for("critic"))
        self.average_ = copy.deepcopy(self.module_).requires_grad_(False)
        self.average_steps_ = 0
        return self

    def _update_average(self):
        t = self.average_steps_
        decay = min(self.ema_decay, (1.0 + t) / (10.0 + t))
        with torch.no_grad():
            for avg, p in zip(self.average_.parameters(), self.module_.parameters()):
                avg.lerp_(p, 1.0 - decay)
        self.average_steps_ = t + 1

    def initialize_optimizer(self, triggered_directly=None):
        args, kwargs = self.get_params_for_optimizer("optimizer", self.module_.named_parameters())
        self.optimizer_ = self.optimizer(*args, **kwargs)
        args, kwargs = self.get_params_for_optimizer(
            "critic_optimizer", self.critic_.named_parameters()
        )
        self.critic_optimizer_ = self.optimizer(*args, **kwargs)
        return self

    def train_step(self, batch, **fit_params):
        self._set_training(True)
        Xi, _ = unpack_data(batch)
        x = Xi["x"].to(self.device)
        y = Xi["y"].to(self.device)
        n_chunks = min(self.n_critic, len(x))
        xs, ys = torch.tensor_split(x, n_chunks), torch.tensor_split(y, n_chunks)
        critic_losses, wassersteins = [], []
        for k in range(self.n_critic):
            xc, yc = xs[k % n_chunks], ys[k % n_chunks]
            with torch.no_grad():
                fake = self.module_(xc)
            loss, wasserstein = self.criterion_.critic_loss(self.critic_, yc, fake, xc)
            if not torch.isfinite(loss):
                raise NonFiniteLossError(
                    f"CWGANDecoder: the critic loss became {loss.item()} in epoch "
                    f"{len(self.history)}. Lower critic_learning_rate or raise gradient_penalty."
                )
            self.critic_optimizer_.zero_grad()
            loss.backward()
            self.critic_optimizer_.step()
            critic_losses.append(loss.detach())
            wassersteins.append(wasserstein)
        x_gen = xs[0]
        generator_loss = self.criterion_.generator_loss(self.critic_, self.module_(x_gen), x_gen)
        self.optimizer_.zero_grad()
        # Only the generator's gradients are needed; the critic's weights stay out of it.
        generator_loss.backward(inputs=list(self.module_.parameters()))
        self.optimizer_.step()
        self._update_average()
        self.history.record_batch("critic_loss", torch.stack(critic_losses).mean().item())
        self.history.record_batch("train_wasserstein", torch.stack(wassersteins).mean().item())
        return {"loss": generator_loss.detach(), "y_pred": None}

    def validation_step(self, batch, **fit_params):
        """The Wasserstein estimate ``E[D(real)] - E[D(fake)]`` on held-out frames.

        A ``ChunkedBatch`` (wide targets gathered from memory maps) is scored piece by piece.
        """
        self._set_training(False)
        Xi, _ = unpack_data(batch)
        real, fake = [], []
        with torch.no_grad():
            for piece in Xi if isinstance(Xi, ChunkedBatch) else [Xi]:
                x = piece["x"].to(self.device)
                y = piece["y"].to(self.device)
                generated = self.average_(x)
                real.append(self.critic_(y, x))
                fake.append(self.critic_(generated, x))
            wasserstein = torch.cat(real).mean() - torch.cat(fake).mean()
        return {"loss": wasserstein, "y_pred": None}


def _fit_whitening(targets, epsilon=_WHITENING_EPSILON):
    """Mean, whitening matrix and its inverse for the targets, in float64.

    ``(y - mean) @ whiten`` has identity covariance over the training frames: each principal
    direction of ``Y`` is scaled to unit variance. Eigenvalues of the covariance are floored at
    ``epsilon`` times the largest, so that directions without variance (such as the centre of
    aligned coordinates) are kept, nearly fixed, rather than blown up. The sums run over
    chunks of frames, so memory-mapped targets are never copied whole.
    """
    n = sum(len(t) for t in targets)
    chunks = [chunk for t in targets for _, chunk in row_chunks(t)]
    mean = sum(c.sum(axis=0, dtype=np.float64) for c in chunks) / n
    cov = sum((c - mean).T @ (c - mean) for c in chunks) / n
    eigenvalues, vectors = np.linalg.eigh(cov)
    top = eigenvalues.max()
    if top <= 0:
        return mean, np.eye(len(mean)), np.eye(len(mean))
    sd = np.sqrt(np.maximum(eigenvalues, epsilon * top))
    return mean, vectors / sd, (vectors * sd).T


def _sliced_wasserstein(a, b, n_projections, seed):
    """Sliced 1-Wasserstein distance between two equally sized point clouds.

    The mean, over ``n_projections`` random directions on the unit sphere, of the 1-Wasserstein
    distance between the projected samples, which for equal sizes is the mean absolute
    difference of the sorted projections.
    """
    rng = np.random.default_rng(seed)
    directions = rng.standard_normal((a.shape[1], n_projections))
    directions /= np.linalg.norm(directions, axis=0)
    total = 0.0
    # Projections in groups, so memory stays at a few times the size of the data.
    for start in range(0, n_projections, 16):
        d = directions[:, start : start + 16]
        pa = np.sort(a @ d, axis=0)
        pb = np.sort(b @ d, axis=0)
        total += np.abs(pa - pb).mean(axis=0).sum()
    return total / n_projections


class CWGANDecoder(RegressorMixin, BaseEstimator):
    """Conditional Wasserstein GAN decoder: configurations from points in the latent space.

    A generator ``G(psi, z)`` maps a latent point ``psi`` and a Gaussian noise vector ``z`` to
    a configuration (for example flattened, aligned C-alpha coordinates). A critic
    ``D(y, psi)`` scores configurations given their latent point. Both are trained as a
    Wasserstein GAN with gradient penalty (WGAN-GP), so that for every ``psi`` the
    distribution of ``G(psi, z)`` approaches the distribution of configurations seen at that
    latent point. Different noise vectors give different configurations for the same ``psi``.

    Parameters
    ----------
    noise_dim : int, default=50
        Dimension of the standard normal noise fed to the generator.
    hidden_layer_sizes : tuple of int, default=(200, 200, 200)
        Widths of the hidden layers of the generator and of the critic.
    activation : str, default="swish"
        Hidden activation of both networks: "swish", "relu", "tanh", "elu", "gelu",
        "sigmoid", "softplus" or "leaky_relu".
    n_critic : int, default=5
        Critic updates per generator update.
    gradient_penalty : float, default=10.0
        Weight ``lambda`` of the gradient penalty.
    generator_learning_rate : float, default=5e-4
        Adam learning rate of the generator. Higher than the 1e-4 of Gulrajani et al.: with
        the weight averaging of ``ema_decay`` it converges faster and stays stable.
    critic_learning_rate : float, default=5e-4
        Adam learning rate of the critic.
    ema_decay : float in [0, 1), default=0.999
        Decay of the exponential moving average of the generator's weights, which is the
        generator that decodes (and that the held-out Wasserstein estimate scores). Averaging
        damps the oscillation of adversarial training. 0 decodes with the last iterate.
    batch_size : int, default=64
        Frames per critic (and generator) mini-batch.
    max_epochs : int, default=100
        Passes over the training frames. One epoch makes about
        ``n_frames / (n_critic * batch_size)`` generator updates; a few thousand updates
        already give a usable decoder, and fine detail keeps improving after that.
    validation_fraction : float, default=0.1
        Fraction of the frames held out to estimate the Wasserstein distance every epoch:
        whole trajectories when there are several, otherwise the final block of each
        trajectory (never shuffled frames). 0 holds nothing out.
    device : {"cpu", "cuda", "auto"}, default="cpu"
        Torch device for training and decoding; ``"auto"`` uses CUDA when available.
    checkpoint : str or path-like, default=None
        A file that ``fit`` writes the training state to after every epoch (generator, critic,
        averaged generator and optimizer state, history, random number generator state), in the
        safe format of :mod:`sklss.io` (never pickled), each time replaced atomically. A ``fit``
        that finds a checkpoint written for the same parameters and data resumes from it and, on
        the CPU, ends with the same model as an uninterrupted fit. ``max_epochs``, ``device``
        and ``verbose`` may differ, so raising ``max_epochs`` extends a finished fit. A
        checkpoint from other parameters or data is replaced, with a warning. Give every fit its
        own file (not one shared by the fits of a grid search).
    random_state : int, RandomState instance or None, default=None
        Seeds weight initialisation, mini-batch shuffling and the noise used in training. The
        same int gives bitwise identical fitted weights on CPU; the caller's global random
        state is never touched. Sampling takes its own ``random_state``.
    verbose : int, default=0
        0 is silent; 1 or more prints a line per epoch and shows a progress bar.

    Attributes
    ----------
    n_features_in_ : int
        Number of latent coordinates seen in ``fit``.
    n_outputs_ : int
        Number of configuration coordinates (columns of ``Y``).
    history_ : dict of lists
        Per epoch: ``"epoch"``; ``"generator_loss"`` and ``"critic_loss"`` (means over the
        epoch's updates; the critic loss includes the penalty); ``"train_wasserstein"``, the
        critic's Wasserstein estimate ``E[D(real)] - E[D(fake)]`` on the training batches; and
        ``"valid_wasserstein"``, the same estimate on the held-out frames (``None`` without
        them). Estimates are in the units of the whitened configurations.
    n_iter_ : int
        Number of epochs run.
    net_ : skorch.NeuralNet
        The trained networks (private use; the public state is the attributes above).

    See Also
    --------
    sklss.SRVTransformer : learns the latent coordinates.
    sklss.MDNPropagator : propagates latent points in time.

    Notes
    -----
    ``X`` is standardised column by column (constant columns are only centred). ``Y`` is
    whitened: centred and rotated onto its principal axes, each scaled to unit variance over
    the training frames (covariance eigenvalues are floored at 1e-6 times the largest, so
    directions without variance, such as the centre of aligned coordinates, stay nearly
    fixed). Whitening gives stiff, low-variance motions, such as bond stretches, the same
    weight for the critic as large conformational changes; after column-wise standardisation
    they are nearly invisible to it, and generated bond lengths come out too broad or too
    narrow. Generated configurations are mapped back to the units of ``Y``; for decoding, the
    scaling is folded into the generator's first and last layers.

    The generator takes ``[psi, z]`` and the critic ``[y, psi]``, both as plain
    concatenations. Adam runs with ``betas=(0.5, 0.9)``. Decoding uses an exponential moving
    average of the generator's weights (``ema_decay``), which removes most of the
    step-to-step oscillation of adversarial training without changing the training itself.

    The critic loss is ``E[D(G(psi, z), psi)] - E[D(y, psi)] + lambda * E[(||g|| - 1)^2]``,
    where ``g`` is the gradient of the critic with respect to its configuration input at
    ``y_hat = a y + (1 - a) G(psi, z)``, with one weight ``a ~ U(0, 1)`` per sample, and
    ``||g|| = sqrt(sum g^2 + 1e-12)`` over all non-batch dimensions. The generator loss is
    ``-E[D(G(psi, z), psi)]``.

    A training loss that becomes NaN or inf stops ``fit`` with a ``FloatingPointError``
    (``NonFiniteLossError``) that names the epoch, so no broken model is returned.

    Training runs on one CPU thread, so that the same ``random_state`` gives the same weights
    in any process (for example in joblib workers); decoding uses all of torch's threads.

    References
    ----------
    I. Gulrajani, F. Ahmed, M. Arjovsky, V. Dumoulin and A. Courville, "Improved training of
    Wasserstein GANs", NeurIPS 2017.

    H. Sidky, W. Chen and A. L. Ferguson, "Molecular latent space simulators", Chem. Sci. 11,
    9459 (2020).

    Examples
    --------
    >>> import numpy as np
    >>> from sklss import CWGANDecoder
    >>> rng = np.random.default_rng(0)
    >>> psi = rng.normal(size=(500, 1))
    >>> Y = np.hstack([psi, -psi]) + 0.1 * rng.normal(size=(500, 2))
    >>> dec = CWGANDecoder(noise_dim=4, hidden_layer_sizes=(32,), max_epochs=2, random_state=0)
    >>> dec.fit(psi, Y).sample(psi[:3], random_state=0).shape
    (3, 2)
    """

    _parameter_constraints = {
        **TRAINING_PARAMETERS,
        "noise_dim": [Interval(Integral, 1, None, closed="left")],
        "n_critic": [Interval(Integral, 1, None, closed="left")],
        "gradient_penalty": [Interval(Real, 0, None, closed="left")],
        "generator_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "critic_learning_rate": [Interval(Real, 0, None, closed="neither")],
        "ema_decay": [Interval(Real, 0, 1, closed="left")],
    }

    def __init__(
        self,
        noise_dim=50,
        *,
        hidden_layer_sizes=(200, 200, 200),
        activation="swish",
        n_critic=5,
        gradient_penalty=10.0,
        generator_learning_rate=5e-4,
        critic_learning_rate=5e-4,
        ema_decay=0.999,
        batch_size=64,
        max_epochs=100,
        validation_fraction=0.1,
        device="cpu",
        checkpoint=None,
        random_state=None,
        verbose=0,
    ):
        self.noise_dim = noise_dim
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.n_critic = n_critic
        self.gradient_penalty = gradient_penalty
        self.generator_learning_rate = generator_learning_rate
        self.critic_learning_rate = critic_learning_rate
        self.ema_decay = ema_decay
        self.batch_size = batch_size
        self.max_epochs = max_epochs
        self.validation_fraction = validation_fraction
        self.device = device
        self.checkpoint = checkpoint
        self.random_state = random_state
        self.verbose = verbose

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y):
        """Train the generator and the critic on frame-aligned latent points and configurations.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Latent coordinates ``psi`` (trajectory data).
        y : array-like of shape (n_frames, n_outputs) or (n_frames,), or a list of them
            The configurations ``Y``, one per frame of ``X`` and in the same form as ``X``
            (for example flattened aligned coordinates, in nm).

        Returns
        -------
        self : CWGANDecoder
        """
        setup = start_fit(self, X)
        trajs = setup.trajs
        targets, y_1d = check_paired_targets(self, y, trajs, setup.is_list)

        self._x_mean, self._x_scale, _ = feature_mean_and_scale(trajs)
        self._y_mean, self._y_whiten, self._y_color = _fit_whitening(targets)
        self._y_1d = y_1d
        self.n_outputs_ = targets[0].shape[1]
        n_cond = self.n_features_in_

        frames, valid = self._fit_frames(trajs, targets)
        if valid is None and self.validation_fraction > 0:
            warnings.warn(
                "Too few frames to hold out a validation block; "
                "history_['valid_wasserstein'] is not recorded.",
                UserWarning,
                stacklevel=2,
            )
        scores = [
            ("critic_loss", PassthroughScoring("critic_loss", on_train=True)),
            (
                "train_wasserstein",
                PassthroughScoring("train_wasserstein", lower_is_better=False, on_train=True),
            ),
        ]
        callbacks = standard_callbacks(
            self, "CWGANDecoder generator", trajs, targets, extra=scores, progress_from=1
        )
        arch = {"hidden_layer_sizes": setup.hidden, "activation": self.activation}
        net = build_net(
            _CWGANNet,
            self,
            callbacks=callbacks,
            n_train=len(frames["x"]),
            valid=valid,
            device=setup.device,
            lr=self.generator_learning_rate,
            valid_batch_size=_DECODE_CHUNK,
            # One batch of the iterator feeds the n_critic critic updates of one generator step.
            batch_size=self.n_critic * self.batch_size,
            module=_Generator,
            module__n_conditions=n_cond,
            module__noise_dim=self.noise_dim,
            module__n_outputs=self.n_outputs_,
            **{f"module__{k}": v for k, v in arch.items()},
            critic__n_outputs=self.n_outputs_,
            critic__n_conditions=n_cond,
            **{f"critic__{k}": v for k, v in arch.items()},
            criterion=_WassersteinGP,
            criterion__penalty_weight=self.gradient_penalty,
            optimizer__betas=_ADAM_BETAS,
            critic_optimizer__lr=self.critic_learning_rate,
            critic_optimizer__betas=_ADAM_BETAS,
            n_critic=self.n_critic,
            ema_decay=self.ema_decay,
        )
        train(net, frames, setup.seeds[0], setup.device)
        self.net_ = net
        self.history_ = history_to_dict(
            net.history,
            {
                "train_loss": ("generator_loss", 1.0),
                "critic_loss": ("critic_loss", 1.0),
                "train_wasserstein": ("train_wasserstein", 1.0),
                "valid_loss": ("valid_wasserstein", 1.0),
            },
        )
        self.n_iter_ = len(self.history_["epoch"])
        return self

    def _fit_frames(self, trajs, targets):
        """Training and held-out frames, ``{"x": scaled X, "y": whitened Y}`` (float32).

        Frames of X and Y stay paired through the split, which keeps time blocks together:
        whole trajectories or final blocks are held out, as for the lagged pairs. Small data
        in memory give arrays; memory maps and large data give rows that the loader gathers
        batch by batch (see ``sklss._frames``). The held-out part is ``None`` when there is
        none.
        """
        train, valid = split_segments([len(t) for t in trajs], self.validation_fraction, 0)
        offsets = frame_offsets(trajs)
        sources = {"x": Frames(trajs, self._scale_x), "y": Frames(targets, self._whiten32)}

        def frames(segments):
            rows = segment_rows(segments, offsets)
            return {key: Rows(f, rows) for key, f in sources.items()} if len(rows) else None

        gathered = gathers_batches(trajs, targets)
        return training_inputs(frames(train), gathered), training_inputs(frames(valid), gathered)

    def _scale_x(self, x):
        # ((x - mean) / scale) in float64, with one temporary: the frames may be many.
        x = np.subtract(x, self._x_mean)
        x /= self._x_scale
        return x.astype(np.float32)

    def _whiten(self, y):
        return (y - self._y_mean) @ self._y_whiten

    def _whiten32(self, y):
        return self._whiten(y).astype(np.float32)

    def _output_dtype(self, traj):
        return np.float32 if traj.dtype == np.float32 else np.float64

    def _decoding_network(self, dtype, device):
        """The averaged generator with the scaling of X and Y folded into its outer layers.

        It maps raw latent points and noise, ``[psi, z]``, straight to configurations in the
        units of ``Y``, so decoding costs no more than a bare forward pass.
        """
        mlp = copy.deepcopy(self.net_.average_.mlp).to(device=device, dtype=torch.float64)
        first, last = mlp[0], mlp[-1]
        n_cond = self.n_features_in_
        with torch.no_grad():
            inv_scale = torch.as_tensor(1.0 / self._x_scale, dtype=torch.float64, device=device)
            offset = torch.as_tensor(self._x_mean, dtype=torch.float64, device=device)
            w_x = first.weight[:, :n_cond] * inv_scale
            first.bias -= w_x @ offset
            first.weight[:, :n_cond] = w_x
            color = torch.as_tensor(self._y_color, dtype=torch.float64, device=device)
            mean = torch.as_tensor(self._y_mean, dtype=torch.float64, device=device)
            last.bias.copy_(last.bias @ color + mean)
            last.weight = nn.Parameter(color.T @ last.weight)
        return mlp.to(dtype).eval()

    def _decode(self, trajs, seed=None):
        """Configurations for validated trajectories of latent points.

        With a ``seed`` they are draws, computed in float32 on the fitted device; without one
        the noise is zero and they are computed in float64 on the CPU, so that a frame's result
        does not depend on the frames it is batched with.
        """
        if seed is None:
            dtype, device, noise_generator = torch.float64, "cpu", None
        else:
            dtype, device = torch.float32, self.net_.device
            noise_generator = torch.Generator(device=device).manual_seed(seed)
        mlp = self._decoding_network(dtype, device)
        out = []
        with torch.inference_mode():
            for traj in trajs:
                y = np.empty((len(traj), self.n_outputs_), dtype=self._output_dtype(traj))
                for start in range(0, len(traj), _DECODE_CHUNK):
                    chunk = traj[start : start + _DECODE_CHUNK]
                    if not chunk.flags.writeable:  # torch warns on read-only memory
                        chunk = chunk.copy()
                    x = torch.as_tensor(chunk, device=device)
                    if noise_generator is None:
                        noise = torch.zeros(len(x), self.noise_dim, dtype=dtype, device=device)
                    else:
                        noise = torch.randn(
                            len(x), self.noise_dim, generator=noise_generator, device=device
                        )
                    inputs = torch.cat([x.to(dtype), noise], dim=1)
                    y[start : start + len(x)] = mlp(inputs).cpu().numpy()
                out.append(y)
        return out

    def _format(self, arrays, is_list):
        if self._y_1d:
            arrays = [a[:, 0] for a in arrays]
        return as_output_form(arrays, is_list)

    def predict(self, X):
        """The generator's configuration at zero noise for each latent point.

        This is ``G(psi, 0)``: the generator evaluated at the mean of its noise distribution.
        It is a deterministic, central configuration for each ``psi`` (to first order in the
        noise, the mean of the generated configurations), not a draw from the distribution;
        use :meth:`sample` for draws. Computed in float64, so that a frame's prediction does
        not depend on the frames it is batched with.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Latent points.

        Returns
        -------
        Y : ndarray of shape (n_frames, n_outputs) or list of such arrays
            The same form as ``X``; 1-D per trajectory if ``Y`` was 1-D in ``fit``. float32
            input gives float32 output, anything else float64.
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        return self._format(self._decode(trajs), is_list)

    def sample(self, X, random_state=None):
        """Draw one configuration for each latent point.

        Decoding runs in float32 on the fitted device, in batches under
        ``torch.inference_mode``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Latent points, for example a latent trajectory from a propagator.
        random_state : int, RandomState instance or None, default=None
            Seeds the generator noise. The same int gives the same configurations.

        Returns
        -------
        Y : ndarray of shape (n_frames, n_outputs) or list of such arrays
            The same form as ``X``; 1-D per trajectory if ``Y`` was 1-D in ``fit``. float32
            input gives float32 output, anything else float64.
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        (seed,) = derive_seeds(random_state, 1)
        return self._format(self._decode(trajs, seed), is_list)

    def score(self, X, y):
        """Negative sliced Wasserstein distance between real and generated (X, Y) pairs.

        For each frame one configuration is generated from its latent point (with a fixed
        seed, so the score is deterministic). The score is ``-SW_1(P, Q)``, where ``P`` holds
        the pairs ``(psi_i, y_i)`` and ``Q`` the pairs ``(psi_i, y_hat_i)``; ``SW_1`` is the
        1-Wasserstein distance between one-dimensional projections, averaged over 128 fixed
        random directions. ``X`` and ``Y`` are first scaled as the networks see them (``X``
        standardised, ``Y`` whitened, with the statistics fitted in ``fit``), and the ``psi``
        block is weighted by ``sqrt(n_outputs_ / n_features_in_)`` so that conditioning and
        configuration carry equal weight. Comparing joint
        distributions with the same ``psi`` marginal measures how well the conditional
        distribution ``p(y | psi)`` is matched.

        Higher is better and 0 is the ideal; even a perfect decoder scores below 0 on a
        finite sample (by about ``1 / sqrt(n_frames)``). Scores of decoders fitted on the same
        training data are comparable, which lets ``GridSearchCV`` select among them.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features) or list of such arrays
            Latent points.
        y : array-like of shape (n_frames, n_outputs) or list of such arrays
            The real configurations ``Y`` of those frames.

        Returns
        -------
        score : float
        """
        check_is_fitted(self)
        trajs, is_list = check_trajectories(self, X, reset=False)
        targets, _ = check_paired_targets(self, y, trajs, is_list)
        if targets[0].shape[1] != self.n_outputs_:
            raise ValueError(
                f"Y has {targets[0].shape[1]} outputs, but CWGANDecoder is expecting "
                f"{self.n_outputs_} outputs as input."
            )
        fake = self._decode(trajs, _SCORE_SEED)
        weight = np.sqrt(self.n_outputs_ / self.n_features_in_)
        x = np.concatenate([(t - self._x_mean) / self._x_scale for t in trajs]) * weight
        real = np.hstack([x, np.concatenate([self._whiten(t) for t in targets])])
        fake = np.hstack([x, np.concatenate([self._whiten(t) for t in fake])])
        return -float(_sliced_wasserstein(real, fake, _SCORE_PROJECTIONS, _SCORE_SEED))

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.required = True
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = True
        # score() is a negative distance (at most 0), not R^2, so the "score > 0.5" check of
        # regressors does not apply.
        tags.regressor_tags.poor_score = True
        tags.non_deterministic = False
        return tags
