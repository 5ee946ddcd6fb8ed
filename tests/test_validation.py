import warnings

import numpy as np
import pytest
from sklearn.base import BaseEstimator

from sklss._validation import check_trajectories, lagged_pairs, split_train_valid


def _labelled(lengths):
    """Trajectories whose single feature encodes (trajectory index, frame)."""
    return [np.array([[1000.0 * i + t] for t in range(n)]) for i, n in enumerate(lengths)]


def test_list_of_trajectories_never_pairs_across_a_boundary():
    trajs = _labelled([7, 5, 9])
    lag = 2
    X0, Xt = lagged_pairs(trajs, lag)
    assert len(X0) == (7 - 2) + (5 - 2) + (9 - 2)
    # Every pair stays in one trajectory and is exactly lag frames apart.
    np.testing.assert_array_equal(X0 // 1000, Xt // 1000)
    np.testing.assert_array_equal(Xt - X0, lag)

    # The same frames concatenated into one array do pair across the boundaries.
    C0, Ct = lagged_pairs([np.concatenate(trajs)], lag)
    crossing = (C0 // 1000) != (Ct // 1000)
    assert crossing.sum() == 2 * lag


def test_short_trajectories_are_skipped_with_a_warning_naming_them():
    trajs = _labelled([10, 2, 10, 3])
    with pytest.warns(UserWarning, match=r"Trajectories \[1, 3\].*lag_time=3"):
        X0, _ = lagged_pairs(trajs, 3)
    assert len(X0) == 2 * 7


def test_no_long_enough_trajectory_states_lag_and_longest_length():
    with pytest.raises(ValueError, match=r"longest trajectory has 4 frames.*lag_time=5"):
        lagged_pairs(_labelled([3, 4]), 5)
    with pytest.raises(ValueError, match="n_samples=1"):
        lagged_pairs(_labelled([1]), 1)


@pytest.mark.parametrize("lag", [0, -1, 1.5, "2", True])
def test_bad_lag_time_is_rejected(lag):
    with pytest.raises(ValueError, match="lag_time"):
        lagged_pairs(_labelled([10]), lag)


def test_validation_blocks_are_contiguous_and_separated_by_the_lag():
    (traj,) = _labelled([100])
    train, valid = split_train_valid([traj], 0.2, lag_time=5)
    assert len(valid) == 1
    np.testing.assert_array_equal(np.diff(train[0][:, 0]), 1)
    np.testing.assert_array_equal(np.diff(valid[0][:, 0]), 1)
    assert valid[0][0, 0] - train[0][-1, 0] == 5 + 1
    assert len(valid[0]) == 20


def test_validation_holds_out_whole_trajectories_when_there_are_many():
    trajs = _labelled([50] * 10)
    train, valid = split_train_valid(trajs, 0.2, lag_time=5)
    assert len(train) == 8 and len(valid) == 2
    assert all(len(t) == 50 for t in train + valid)


def test_ragged_feature_counts_name_the_trajectory_and_both_shapes():
    est = BaseEstimator()
    with pytest.raises(
        ValueError, match=r"trajectory 0 has shape \(5, 2\).*trajectory 1 has shape"
    ):
        check_trajectories(est, [np.zeros((5, 2)), np.zeros((6, 3))], reset=True)


def test_nan_is_reported_with_trajectory_frame_and_feature():
    est = BaseEstimator()
    trajs = [np.zeros((5, 2)), np.zeros((6, 2))]
    trajs[1][3, 1] = np.inf
    with pytest.raises(ValueError, match="inf.*trajectory 1, frame 3, feature 1"):
        check_trajectories(est, trajs, reset=True)


def test_list_of_rows_is_one_trajectory_and_list_of_arrays_is_many():
    est = BaseEstimator()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        trajs, is_list = check_trajectories(est, [[1.0, 2.0], [3.0, 4.0]], reset=True)
    assert not is_list and trajs[0].shape == (2, 2)
    trajs, is_list = check_trajectories(est, [np.ones((3, 2)), np.ones((4, 2))], reset=True)
    assert is_list and [t.shape for t in trajs] == [(3, 2), (4, 2)]
