"""scikit-learn's own estimator checks on every public estimator.

Each estimator runs with a small, fast configuration. Expected failures, if any, are listed in
``EXPECTED_FAILED_CHECKS`` with the reason next to each.
"""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sklss import SRVTransformer

ESTIMATORS = [
    SRVTransformer(
        lag_time=1,
        n_components=2,
        hidden_layer_sizes=(16,),
        max_epochs=3,
        batch_size=64,
        random_state=0,
    ),
]

# Maps an estimator class name to {check name: reason}. Aim: empty.
EXPECTED_FAILED_CHECKS = {}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS.get(type(estimator).__name__, {})


@parametrize_with_checks(ESTIMATORS, expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
