"""The MDN propagator's walls and detailed balance.

Reject-and-stay walls keep the stationary density of a reversible kernel exact inside the box
(shown on an MDN whose network is exactly an Ornstein-Uhlenbeck kernel); ``reversible=True``
trains on both directions of time; ``transition_matrix``, ``stationary_distribution`` and
``flux_asymmetry`` check a learned kernel without sampling (shown on the four-well system).
"""

import math

import numpy as np
import pytest
import torch
from conftest import ar1, exact_free_energy
from scipy.integrate import quad
from scipy.special import ndtr
from scipy.stats import norm

from sklss import MDNPropagator
from sklss.propagator import WALL_HIT_WARNING_RATE, flux_asymmetry, stationary_distribution

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# --- an MDN that is exactly the Ornstein-Uhlenbeck kernel ----------------------------------


def ou_propagator(a, wall, width=None):
    """An MDNPropagator whose network gives exactly ``p(x' | x) = N(a x, 1 - a^2)``.

    The stationary density of that kernel is N(0, 1). With ``width``, the kernel is
    ``N(a x, width^2)`` instead, and its stationary standard deviation
    ``width / sqrt(1 - a^2)``. A tiny network is fitted only to get
    a fitted estimator; then its weights are overwritten: the hidden layer computes
    ``relu(x)`` and ``relu(-x)``, whose difference is ``x``, so the kernel mean is ``a x``;
    the raw width is a constant chosen so that ``logaddexp(raw, sigma_floor)`` is the exact
    width. The scaling is the identity and the box is ``[-wall, wall]``.
    """
    rng = np.random.default_rng(0)
    x = np.cumsum(rng.normal(size=(300, 1)), axis=0)
    mdn = MDNPropagator(
        lag_time=1,
        n_kernels=1,
        hidden_layer_sizes=(2,),
        activation="relu",
        max_epochs=1,
        validation_fraction=0,
        random_state=0,
    ).fit(x)
    module = mdn.net_.module_
    hidden, output = module.mlp[0], module.mlp[2]
    width = math.sqrt(1 - a * a) if width is None else width
    floor = module.sigma_floor
    # log(exp(raw) + exp(floor)) = width
    raw = floor + math.log(math.expm1(width - floor))
    with torch.no_grad():
        hidden.weight.copy_(torch.tensor([[1.0], [-1.0]]))
        hidden.bias.zero_()
        # Rows: the mixture logit, the mean, the raw width.
        output.weight.copy_(torch.tensor([[0.0, 0.0], [a, -a], [0.0, 0.0]]))
        output.bias.copy_(torch.tensor([0.0, 0.0, raw]))
    mdn.mean_, mdn.scale_ = np.zeros(1), np.ones(1)
    mdn.data_min_, mdn.data_max_ = np.array([-wall]), np.array([wall])
    return mdn


def truncated_normal_bin_probabilities(edges, wall):
    return np.diff(ndtr(edges)) / (ndtr(wall) - ndtr(-wall))


def exact_rejection_rate(a, wall):
    """Probability that a draw of the OU kernel from the truncated N(0, 1) leaves the box."""
    width = math.sqrt(1 - a * a)

    def leave(x):
        stay = ndtr((wall - a * x) / width) - ndtr((-wall - a * x) / width)
        return norm.pdf(x) * (1 - stay)

    return quad(leave, -wall, wall)[0] / (ndtr(wall) - ndtr(-wall))


def truncated_normal_starts(n, wall, seed):
    x = np.random.default_rng(seed).normal(size=4 * n)
    return x[np.abs(x) < wall][:n, None]


def reflected_ou(x0, a, wall, n_steps, seed):
    """The old wall policy, for comparison: fold a draw back off the wall it crossed."""
    rng = np.random.default_rng(seed)
    width = math.sqrt(1 - a * a)
    x = x0[:, 0].copy()
    visited = np.empty((n_steps, len(x)))
    for t in range(n_steps):
        x = a * x + width * rng.standard_normal(len(x))
        x = np.where(x < -wall, -2 * wall - x, x)
        x = np.where(x > wall, 2 * wall - x, x)
        visited[t] = np.clip(x, -wall, wall)  # a fold longer than the box: never seen here
    return visited


def bin_free_energy(samples, edges):
    counts = np.histogram(samples, edges)[0]
    return -np.log(counts / counts.sum())


@pytest.mark.parametrize("a", [0.9, 0.5])
def test_ou_network_is_the_exact_kernel(a):
    mdn = ou_propagator(a, wall=2.0)
    x = torch.linspace(-3, 3, 13, dtype=torch.float32)[:, None]
    with torch.no_grad():
        log_w, mu, sigma = mdn.net_.module_.mixture(x)
    np.testing.assert_array_equal(log_w.numpy(), 0.0)
    np.testing.assert_allclose(mu.numpy()[:, 0, 0], a * x.numpy()[:, 0], atol=1e-6)
    np.testing.assert_allclose(sigma.numpy(), math.sqrt(1 - a * a), rtol=1e-6)
    np.testing.assert_allclose(mdn.predict(x.numpy().astype(float)), a * x.numpy(), atol=1e-6)


# 2000 trajectories x 5000 steps = 10^7 frames, sampled in about 2 s. 20 bins of width 0.2
# on [-2, 2]; an edge bin holds 1.4 % of the mass. Over six seeds the standard deviation of
# an edge bin's free energy was 0.002-0.004 kT and the largest error over all bins at most
# 0.007 kT, so 0.03 kT is more than 7 standard deviations.
@pytest.mark.parametrize("a", [0.9, 0.5])
def test_reject_and_stay_walls_keep_the_exact_truncated_stationary_density(a):
    wall, n_starts, n_steps = 2.0, 2000, 5000
    edges = np.linspace(-wall, wall, 21)
    F_exact = -np.log(truncated_normal_bin_probabilities(edges, wall))
    mdn = ou_propagator(a, wall)
    x0 = truncated_normal_starts(n_starts, wall, seed=1)  # stationary from the first frame
    with pytest.warns(UserWarning, match=r"\d\.\d\d% of the draws left the range"):
        traj, hits, draws = mdn.sample(x0, n_steps, random_state=2, return_wall_hits=True)
    assert traj.min() >= -wall and traj.max() <= wall
    dF = bin_free_energy(traj, edges) - F_exact
    assert np.abs(dF[[0, -1]]).max() < 0.03
    assert np.abs(dF).max() < 0.03
    # Every rejected draw is counted: about 2 % (a = 0.9) and 4 % (a = 0.5) of the draws.
    assert draws == n_starts * (n_steps - 1) and mdn.wall_hit_rate_ == hits / draws
    # Over six seeds the rate scattered by 0.2 % of itself.
    assert mdn.wall_hit_rate_ == pytest.approx(exact_rejection_rate(a, wall), rel=0.02)
    assert mdn.wall_hit_rate_ > WALL_HIT_WARNING_RATE

    # Reflecting walls, on the same kernel and the same number of frames, miss the target:
    # the edge bins come out 0.2 kT (a = 0.9) and 0.4 kT (a = 0.5) too low.
    folded = reflected_ou(x0, a, wall, n_steps, seed=3)[100:]
    dF_folded = bin_free_energy(folded, edges) - F_exact
    assert dF_folded[0] < -0.15 and dF_folded[-1] < -0.15


# --- rollout_error: where many steps lead ----------------------------------------------------


def exact_ou_frames(a, seed, n_trajs=10, n_frames=5000):
    """Trajectories of the OU kernel N(a x, 1 - a^2), stationary N(0, 1) from the first frame."""
    return [
        ar1(n_frames, a, random_state=1000 * seed + i) * math.sqrt(1 - a * a)
        for i in range(n_trajs)
    ]


# On 50,000 exact frames (six sets), the exact kernel scored 0.36-0.97 kT: the noise of the
# reference's sparse tail bins, which no cap hides. On the same set, kernels 1.3x and 0.8x too
# wide (stationary deviations 1.3 and 0.8) scored 0.16-0.75 kT and 0.36-0.99 kT more than it;
# one 1.15x too wide scored between -0.14 and +0.37 kT more, within the noise.
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rollout_error_ranks_the_exact_kernel_above_wrong_widths_on_the_same_data(seed):
    a, wall = 0.9, 5.0
    X = exact_ou_frames(a, seed)
    exact = math.sqrt(1 - a * a)
    errors = {
        f: ou_propagator(a, wall, width=f * exact).rollout_error(X, random_state=seed)
        for f in (1.0, 1.3, 0.8)
    }
    assert errors[1.0] < 1.0
    assert errors[1.3] > errors[1.0] + 0.1
    assert errors[0.8] > errors[1.0] + 0.1
    # The same seed gives the same starts and random numbers, so the same error.
    assert ou_propagator(a, wall).rollout_error(X, random_state=seed) == errors[1.0]


def test_rollout_error_counts_bins_only_the_reference_populates():
    # A kernel whose stationary density is half as wide never reaches the reference's tails:
    # those bins count at the cap instead of being skipped, so the error is several kT.
    a = 0.9
    X = exact_ou_frames(a, 0, n_trajs=4)
    narrow = ou_propagator(a, 5.0, width=0.5 * math.sqrt(1 - a * a))
    assert narrow.rollout_error(X, n_starts=50, n_steps=2000) > 2.0


@pytest.mark.parametrize("param", ["n_starts", "bins"])
@pytest.mark.parametrize("value", [0, -3, 2.5, True])
def test_rollout_error_rejects_bad_counts_by_name(param, value):
    mdn = ou_propagator(0.9, 5.0)
    with pytest.raises(ValueError, match=param):
        mdn.rollout_error(exact_ou_frames(0.9, 0, n_trajs=1, n_frames=100), **{param: value})


# --- transition matrices, stationary distributions and flux asymmetry ----------------------


def test_transition_matrix_of_the_ou_kernel_is_the_exact_one_with_outside_mass_kept():
    a, wall = 0.5, 2.0
    mdn = ou_propagator(a, wall)
    edges = np.linspace(-wall, wall, 21)
    T = mdn.transition_matrix(edges)
    centres = 0.5 * (edges[:-1] + edges[1:])
    width = math.sqrt(1 - a * a)
    expected = np.diff(ndtr((edges[None, :] - a * centres[:, None]) / width), axis=1)
    expected[np.diag_indices_from(expected)] += 1 - expected.sum(axis=1)
    np.testing.assert_allclose(T, expected, atol=2e-6)
    np.testing.assert_allclose(T.sum(axis=1), 1.0, atol=1e-12)
    # The end bins keep the mass beyond the walls: about 11 % for a start at -1.9.
    assert T[0, 0] == pytest.approx(expected[0, 0]) and T[0, 0] > 0.15
    # Its stationary distribution is the truncated N(0, 1) on the bins, up to the error of
    # starting every step from the bin centre (0.01 kT here), and it is in detailed balance.
    pi = stationary_distribution(T)
    exact = truncated_normal_bin_probabilities(edges, wall)
    assert np.abs(np.log(pi / exact)).max() < 0.01
    assert flux_asymmetry(T) < 0.01


def test_stationary_distribution_and_flux_asymmetry_of_small_chains():
    p, q = 0.1, 0.3
    two = np.array([[1 - p, p], [q, 1 - q]])
    np.testing.assert_allclose(stationary_distribution(two), [0.75, 0.25], atol=1e-12)
    assert flux_asymmetry(two) < 1e-12  # every two-state chain is in detailed balance
    # A birth-death chain is reversible; a chain that only goes round a cycle is as far from
    # it as can be: every flux is net.
    birth_death = np.array([[0.5, 0.5, 0.0], [0.2, 0.5, 0.3], [0.0, 0.6, 0.4]])
    pi = stationary_distribution(birth_death)
    np.testing.assert_allclose(pi @ birth_death, pi, atol=1e-12)
    assert pi.sum() == pytest.approx(1.0) and (pi > 0).all()
    assert flux_asymmetry(birth_death) < 1e-12
    cycle = np.roll(np.eye(3), 1, axis=1)
    np.testing.assert_allclose(stationary_distribution(cycle), 1 / 3, atol=1e-12)
    assert flux_asymmetry(cycle) == pytest.approx(1.0)
    half = 0.5 * cycle + 0.5 * np.eye(3)
    assert flux_asymmetry(half) == pytest.approx(1.0)
    mixed = 0.5 * cycle + 0.5 * cycle.T
    assert flux_asymmetry(mixed) < 1e-12
    assert flux_asymmetry(0.75 * cycle + 0.25 * cycle.T) == pytest.approx(2 / 3)


@pytest.mark.parametrize(
    "T, match",
    [
        (np.ones((2, 3)) / 3, "square"),
        (np.array([[0.5, 0.6], [0.5, 0.5]]), "row 0 sums to 1.1"),
        (np.array([[1.5, -0.5], [0.5, 0.5]]), "non-negative"),
        (np.array([[np.nan, 1.0], [0.5, 0.5]]), "finite"),
    ],
)
def test_bad_transition_matrices_are_named(T, match):
    with pytest.raises(ValueError, match=match):
        stationary_distribution(T)
    with pytest.raises(ValueError, match=match):
        flux_asymmetry(T)


def test_transition_matrix_needs_one_feature_and_good_edges():
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        MDNPropagator().transition_matrix([0.0, 1.0])
    two = MDNPropagator(n_kernels=1, hidden_layer_sizes=(4,), max_epochs=1, random_state=0)
    two.fit(ar1(300, [0.5, 0.5]))
    with pytest.raises(ValueError, match="n_features_in_=2"):
        two.transition_matrix([0.0, 1.0])
    mdn = ou_propagator(0.5, 2.0)
    for edges in ([0.0], [0.0, 1.0, 0.5], [0.0, np.nan], [[0.0, 1.0]]):
        with pytest.raises(ValueError, match="strictly increasing"):
            mdn.transition_matrix(edges)
    with pytest.raises(ValueError, match="stationary must have shape"):
        flux_asymmetry(np.eye(2), stationary=[1.0])


# --- reversible training -------------------------------------------------------------------


def ramps(seed=0):
    """Trajectories that only ever move up, by 0.3 per frame: no detailed balance at all."""
    rng = np.random.default_rng(seed)
    return [
        (rng.uniform(-1, 1) + 0.3 * np.arange(20) + 0.03 * rng.normal(size=20))[:, None]
        for _ in range(200)
    ]


def test_reversible_training_adds_the_time_reversed_pairs():
    X = ramps()
    kw = dict(lag_time=1, n_kernels=2, hidden_layer_sizes=(16,), max_epochs=30, random_state=0)
    kw.update(learning_rate=1e-2, batch_size=256)
    forward = MDNPropagator(**kw).fit(X)
    both = MDNPropagator(reversible=True, **kw).fit(X)
    X0 = np.full((4000, 1), 2.0)
    down_forward = np.mean(forward.sample(X0, 2, random_state=0)[:, 1, 0] < 2.0)
    down_both = np.mean(both.sample(X0, 2, random_state=0)[:, 1, 0] < 2.0)
    # Forward pairs only ever go up; with the reversed pairs, half of them go down.
    assert down_forward < 0.05
    assert 0.35 < down_both < 0.65
    np.testing.assert_allclose(forward.predict(X0[:1]), 2.3, atol=0.08)
    np.testing.assert_allclose(both.predict(X0[:1]), 2.0, atol=0.08)


def test_reversible_validation_loss_averages_both_directions():
    x = ar1(5000, [0.8], random_state=1)
    mdn = MDNPropagator(
        lag_time=2, n_kernels=2, hidden_layer_sizes=(8,), max_epochs=4, reversible=True
    ).set_params(random_state=0)
    mdn.fit(x)
    held_out = x[-round(0.1 * len(x)) :]  # one trajectory: its final 10 % is held out
    both = -(mdn.score(held_out) + mdn.score(held_out[::-1])) / 2
    assert both == pytest.approx(min(mdn.history_["valid_nll"]), abs=1e-4)
    # The two directions score differently, so forward pairs alone would miss the target.
    assert abs(mdn.score(held_out) - mdn.score(held_out[::-1])) > 1e-3


def test_reversible_fits_resume_from_their_checkpoint_and_not_from_a_forward_one(tmp_path):
    x = ar1(2000, [0.8], random_state=2)
    kw = dict(lag_time=1, n_kernels=2, hidden_layer_sizes=(8,), batch_size=128, random_state=0)
    path = tmp_path / "mdn.ckpt"
    MDNPropagator(max_epochs=2, checkpoint=path, **kw).fit(x)
    with pytest.warns(UserWarning, match="other parameters or other data"):
        MDNPropagator(max_epochs=2, reversible=True, checkpoint=path, **kw).fit(x)
    resumed = MDNPropagator(max_epochs=4, reversible=True, checkpoint=path, **kw).fit(x)
    assert dict(resumed.net_.callbacks_)["checkpoint"].resumed_from_ == 2
    straight = MDNPropagator(max_epochs=4, reversible=True, **kw).fit(x)
    for key, value in straight.net_.module_.state_dict().items():
        assert torch.equal(resumed.net_.module_.state_dict()[key], value), key
    assert resumed.history_ == straight.history_


# --- the four-well system: the stationary density of a learned kernel ----------------------


@pytest.mark.slow
def test_four_well_reversible_kernel_has_the_exact_stationary_density_and_balanced_fluxes():
    from sklss.datasets import four_well, four_well_reference

    stride, lag = 10, 10  # frames every 10 steps, lag 100 steps as in the paper
    # 20 trajectories of 100,000 steps from equilibrium: 200,000 frames, ~600 slowest times.
    x = four_well(100_000, n_trajectories=20, stride=stride, random_state=1)
    mdn = MDNPropagator(
        lag_time=lag,
        n_kernels=8,
        hidden_layer_sizes=(64, 64),
        learning_rate=3e-3,
        max_epochs=10,
        patience=6,
        reversible=True,
        random_state=0,
    ).fit(x)
    edges = np.linspace(-1.1, 1.1, 45)
    F_exact = exact_free_energy(four_well_reference(stride=stride), edges)
    low = F_exact <= 3.0  # 38 of the 44 bins

    T = mdn.transition_matrix(edges)
    pi = stationary_distribution(T)
    dF = -np.log(pi[low]) - F_exact[low]
    dF -= dF.mean()
    asymmetry = flux_asymmetry(T, pi)
    # Over ten pairs of data and training seeds (this is one), the RMSE was 0.06-0.24 kT, the
    # largest error 0.15-0.65 kT and the asymmetry 0.024-0.041; forward-only training (twice
    # the epochs, the same number of steps) gave 0.09-0.20 kT, 0.21-0.50 kT and 0.018-0.058.
    # The training data's own histogram is 0.04 kT RMSE from the exact profile.
    assert np.sqrt(np.mean(dF**2)) < 0.25, dF  # 0.059 kT
    assert np.abs(dF).max() < 0.7, dF  # 0.154 kT
    assert asymmetry < 0.05  # 0.034

    # The matrix describes the chain that sample runs: a long run from the training data has
    # the same populations on the bins.
    frames = np.concatenate(x)
    starts = frames[:: len(frames) // 500][:500]
    syn = mdn.sample(starts, 2000, random_state=0)[:, 200:].ravel()
    counts = np.histogram(syn, edges)[0]
    dS = -np.log(counts[low] / counts.sum()) + np.log(pi[low])
    dS -= dS.mean()
    assert np.sqrt(np.mean(dS**2)) < 0.03, dS  # 0.010 kT
    assert np.abs(dS).max() < 0.06, dS  # 0.023 kT
    assert mdn.wall_hit_rate_ < WALL_HIT_WARNING_RATE
