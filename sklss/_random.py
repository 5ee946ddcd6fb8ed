"""Random streams: the one way sklss turns a ``random_state`` into seeds and generators.

Every estimator, score and data generator takes ``random_state`` in scikit-learn's forms: an
int gives the same stream every time, a numpy ``RandomState`` (or ``Generator``) instance is
used and advanced, and ``None`` draws fresh entropy from the operating system. numpy's global
generator is never touched.
"""

from numbers import Integral

import numpy as np

# Seeds handed to torch, OpenMM and numpy stay in the positive int32 range.
_SEED_HIGH = 2**31 - 1


def _is_int(value):
    return isinstance(value, Integral) and not isinstance(value, bool)


def _bad_random_state(random_state):
    return ValueError(
        "The 'random_state' parameter must be None, an int in the range [0, 2**32), a numpy "
        f"RandomState or a numpy Generator. Got {random_state!r}."
    )


def seed_entropy(random_state):
    """One integer from which a family of seeds is spawned.

    An int is returned as it is; a ``RandomState`` or ``Generator`` draws one number (and is
    advanced, as in scikit-learn); ``None`` gives fresh operating-system entropy.
    """
    if random_state is None:
        return int(np.random.SeedSequence().entropy)
    if _is_int(random_state):
        if not 0 <= random_state < 2**32:
            raise _bad_random_state(random_state)
        return int(random_state)
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(0, _SEED_HIGH))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, _SEED_HIGH))
    raise _bad_random_state(random_state)


def derive_seeds(random_state, n=1):
    """``n`` integer seeds derived from ``random_state``.

    An int gives the same seeds every time (the state of ``SeedSequence(random_state)``); a
    ``RandomState`` or ``Generator`` instance draws them (and is advanced); ``None`` draws
    fresh entropy from the operating system.
    """
    if random_state is None or _is_int(random_state):
        seq = np.random.SeedSequence(None if random_state is None else seed_entropy(random_state))
        return [int(s) for s in seq.generate_state(n)]
    if isinstance(random_state, np.random.RandomState):
        return [int(s) for s in random_state.randint(0, _SEED_HIGH, size=n)]
    if isinstance(random_state, np.random.Generator):
        return [int(s) for s in random_state.integers(0, _SEED_HIGH, size=n)]
    raise _bad_random_state(random_state)


def spawn_seeds(entropy, n_streams, n_per_stream=1):
    """Seeds in ``[1, 2**31 - 1)`` for ``n_streams`` independent streams of one entropy.

    Stream ``i`` gets the same seeds whatever ``n_streams`` is (it is the ``i``-th child of
    ``SeedSequence(entropy)``), so a longer request extends a shorter one.

    Returns
    -------
    seeds : list of tuple of int
        ``n_per_stream`` seeds for each stream.
    """
    out = []
    for i in range(n_streams):
        state = np.random.SeedSequence(entropy, spawn_key=(i,)).generate_state(n_per_stream)
        out.append(tuple(int(s) % (_SEED_HIGH - 1) + 1 for s in state))
    return out


def check_rng(random_state):
    """A numpy ``Generator`` (or the ``RandomState`` given) for ``random_state``.

    ``None`` gives a generator seeded from fresh operating-system entropy, an int a generator
    seeded with it (the same stream every time), and a ``RandomState`` or ``Generator``
    instance is used (and advanced) as it is.
    """
    if random_state is None:
        return np.random.default_rng()
    if isinstance(random_state, (np.random.RandomState, np.random.Generator)):
        return random_state
    return np.random.default_rng(seed_entropy(random_state))
