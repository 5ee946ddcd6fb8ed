"""Markov state models through deeptime: timescales, discretisation, Chapman-Kolmogorov tests."""

import numpy as np
import pytest

from sklss.markov import chapman_kolmogorov_test, discretize, markov_timescales, msm_timescales


def markov_chain(T, n_steps, random_state):
    """A state sequence of the Markov chain with transition matrix T."""
    rng = np.random.default_rng(random_state)
    cumulative = np.cumsum(T, axis=1)
    u = rng.random(n_steps)
    states = np.empty(n_steps, dtype=np.int32)
    states[0] = 0
    for t in range(1, n_steps):
        states[t] = np.searchsorted(cumulative[states[t - 1]], u[t])
    return states


T3 = np.array([[0.96, 0.03, 0.01], [0.02, 0.95, 0.03], [0.01, 0.04, 0.95]])


def test_markov_timescales_of_a_two_state_chain_match_the_exact_value():
    # Two states with switching probabilities p and q: lambda = 1 - p - q.
    p, q = 0.01, 0.03
    chain = markov_chain(np.array([[1 - p, p], [q, 1 - q]]), 400_000, 0)
    x = chain.astype(np.float64)
    exact = -1.0 / np.log(1 - p - q)
    t = markov_timescales(x, [-0.5, 0.5, 1.5], 1)
    assert t[0] == pytest.approx(exact, rel=0.05)
    # A list of trajectories and dt; a second timescale that does not exist is NaN.
    t2 = markov_timescales([x[:200_000], x[200_000:]], [-0.5, 0.5, 1.5], 2, n_components=2, dt=3)
    assert t2[0] == pytest.approx(3 * exact, rel=0.05) and np.isnan(t2[1])
    with pytest.raises(
        ValueError, match=r"The .lag_time. parameter must be an int in the range \[1, inf\)"
    ):
        markov_timescales(x, [-0.5, 0.5, 1.5], 0)


def test_discretize_sorts_states_along_the_first_coordinate_and_reuses_centres():
    rng = np.random.default_rng(0)
    x = np.concatenate([c + 0.1 * rng.normal(size=500) for c in (2.0, -1.0, 5.0)])[:, None]
    (states,), centers = discretize(x, 3)
    np.testing.assert_allclose(centers[:, 0], [-1.0, 2.0, 5.0], atol=0.05)
    np.testing.assert_array_equal(np.bincount(states), [500, 500, 500])
    assert states[0] == 1 and states[600] == 0 and states[-1] == 2
    (other,), _ = discretize(np.array([[4.9], [-0.8]]), 3, fit_on=x)
    np.testing.assert_array_equal(other, [2, 0])


def test_ck_test_of_a_markov_chain_passes_and_of_a_wrong_chain_fails():
    md = [markov_chain(T3, 30_000, s) for s in range(4)]
    same = [markov_chain(T3, 30_000, s) for s in range(10, 14)]
    # A chain that leaves every state twice as often.
    leaky = 2 * (T3 - np.diag(np.diag(T3)))
    leaky += np.diag(1 - leaky.sum(axis=1))
    wrong = [markov_chain(leaky, 30_000, s) for s in range(20, 24)]
    good = chapman_kolmogorov_test(md, 1, k_max=6, model_dtrajs=same, n_samples=30)
    bad = chapman_kolmogorov_test(md, 1, k_max=6, model_dtrajs=wrong, n_samples=30)
    assert good.passed and not bad.passed
    # A Markov chain is Markovian: prediction and direct estimate agree.
    assert good.max_markov_deviation < 0.02
    # The exact k-step probabilities lie inside the MD intervals (widened by a little).
    for k in (1, 3, 6):
        exact = np.diagonal(np.linalg.matrix_power(T3, k))
        assert np.all(good.md_lower[k] - 0.01 <= exact) and np.all(exact <= good.md_upper[k] + 0.01)
    assert bad.max_model_deviation > 0.1
    # Reproducible error bars for a fixed random_state.
    again = chapman_kolmogorov_test(md, 1, k_max=6, model_dtrajs=same, n_samples=30)
    np.testing.assert_array_equal(good.md_lower, again.md_lower)
    with pytest.raises(ValueError, match="must be below the longest MD trajectory"):
        chapman_kolmogorov_test(md, 10_000, k_max=10)
    with pytest.raises(ValueError, match="does not connect all 4 states"):
        chapman_kolmogorov_test(md, 1, n_states=4)


def test_msm_timescales_cover_the_exact_timescales_of_a_three_state_chain():
    exact = -1.0 / np.log(np.sort(np.linalg.eigvals(T3).real)[::-1][1:])
    chain = markov_chain(T3, 60_000, 3)
    r = msm_timescales([chain[:30_000], chain[30_000:]], 1, n_components=2, n_samples=200, dt=2.0)
    assert r.n_states_connected == r.n_states == 3
    np.testing.assert_allclose(r.timescales, 2.0 * exact, rtol=0.15)
    assert np.all(r.lower < 2.0 * exact) and np.all(2.0 * exact < r.upper)
    # The error bars shrink with more data, as a posterior should.
    short = msm_timescales(chain[:6_000], 1, n_components=2, n_samples=200, dt=2.0)
    assert np.all(short.std_error > r.std_error)
    assert np.all(r.std_error > 0)


def test_msm_timescales_use_the_largest_connected_set():
    chain = markov_chain(T3, 20_000, 4)
    # State 3 is only ever left, never entered: it is not in the connected set.
    r = msm_timescales([chain, np.array([3, 0, 0, 1], dtype=np.int32)], 1, n_components=3)
    assert (r.n_states, r.n_states_connected) == (4, 3)
    assert np.isfinite(r.timescales[:2]).all() and np.isnan(r.timescales[2])
    # A sequence that never moves has no timescale, rather than an error.
    still = msm_timescales(np.zeros(100, dtype=np.int32), 1)
    assert still.n_states_connected == 0 and np.isnan(still.timescales).all()


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"lag_time": 50}, "below the longest"),
        ({"lag_time": 0}, "lag_time"),
        ({"level": 1.5}, "level"),
        ({"n_samples": 1}, "n_samples"),
    ],
)
def test_msm_timescale_arguments_are_checked(kwargs, match):
    args = {"lag_time": 1, **kwargs}
    with pytest.raises(ValueError, match=match):
        msm_timescales(np.arange(40, dtype=np.int32) % 2, **args)
