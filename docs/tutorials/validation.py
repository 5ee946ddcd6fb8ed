"""
Validating a simulator
======================

A simulator can look right and be wrong. sklss scores it in ways that are hard to fool.

**Fixed coordinates.** A score measured along a candidate's own latent coordinate only
checks the candidate against itself: an encoder whose first coordinate is a fast mode
reproduces that fast mode well and scores well. :class:`~sklss.LatentSpaceSimulator` keeps
one *observable* fixed for every candidate: by default the leading two TICA coordinates of
the input features, fitted once in ``fit`` (or a callable or transformer you give as
``observable``). :meth:`~sklss.LatentSpaceSimulator.score`,
:meth:`~sklss.LatentSpaceSimulator.compare` and the scorers of
:mod:`sklss.model_selection` compare the held-out MD with a simulation from its start
frames on that observable. The simulation's features come from its latent points (a
passthrough encoder), its decoded configurations (a decoder trained on the features), or
else from the training frame nearest to each simulated latent point.

**Missing and extra states cost.** :func:`sklss.metrics.compare_distributions` histograms
both on the same bins, with one more cell for everything outside the MD's range, and
reports the free-energy RMSE (bins that only one side populates count at a cap instead of
being skipped), the Jensen-Shannon and Kullback-Leibler divergences, and the probability
mass the simulation misses or puts where the MD never goes. A simulator that never leaves
the 70 % basin of a 70/30 two-basin process scores 3.9 kT against 0.5 kT for a correct one
(``tests/test_scoring.py``); before, skipping empty bins, it often scored *better*.

**Honest timescales.** Eigenvalues at or below the noise floor give no timescale (see
:doc:`/choosing_lag_and_m`).

**Chapman-Kolmogorov tests.** A simulator is a Markov chain in its latent space with one
step per lag time. If the lag is too short for the latent coordinates to be Markovian,
every step forgets something the MD remembers, and the simulation relaxes at the wrong
rate, however well each step is learned. :meth:`~sklss.LatentSpaceSimulator.ck_test` shows
it: it cuts the fixed observable of the held-out MD into a few k-means states and compares,
at multiples ``k`` of the lag, the probability of being in a state again: measured from the
MD, predicted by the MD's Markov state model at the lag, and measured from the simulation,
with Bayesian error bars (deeptime). A simulator passes when its estimates lie within the
MD's 95 % intervals (plus a slack of 0.05). :func:`sklss.plotting.ck_test` draws it.

The script below first tests a simulator of the four-well system at a lag of 10 frames,
where the coordinate x is the whole state. Then it trains two simulators of one coordinate
of the hidden-wells toy; the other coordinate is never shown to them, so the one they see
is not Markovian at short lags. One steps one frame at a time, the other 40 frames; both
are tested on the same 40-frame grid.

.. note::

   The output on this page comes from the documentation build, which runs the script at CI
   size (``SKLSS_SMALL=1``: 2,000 frames per trajectory and one epoch, seconds), so its
   verdicts, deviations and figure are meaningless. Run it yourself,
   ``python validation.py``, for the full size.

**What to expect at full size** (20,000 frames per trajectory, 30 epochs): the four-well
simulator passes (largest deviation from the MD 0.029); of the hidden-wells simulators, the
one that steps one frame at a time fails (largest deviation 0.107: it leaves the minor
states too fast), and the one that steps 40 frames passes (0.051). The full-size figure:

.. image:: /_static/ck_test.png
   :alt: CK tests at full size: four-well passes; hidden x fails with a step of 1, passes with 40
   :width: 90%
"""

import os

import matplotlib.pyplot as plt

from sklss import LatentSpaceSimulator, MDNPropagator, plotting
from sklss.datasets import four_well, hidden_wells

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_FRAMES = 2_000 if SMALL else 20_000  # per trajectory
MAX_EPOCHS = 1 if SMALL else 30


def simulator(lag):
    mdn = MDNPropagator(n_kernels=8, hidden_layer_sizes=(64, 64), max_epochs=MAX_EPOCHS, patience=6)
    return LatentSpaceSimulator("passthrough", mdn, "passthrough", lag_time=lag, random_state=0)


def report(name, ck):
    verdict = "passed" if ck.passed else "FAILED"
    print(f"{name}: CK test {verdict}, largest deviation from MD {ck.max_model_deviation:.3f}")


fig, axes = plt.subplots(3, 4, figsize=(12, 9), sharey=True)
# sphinx_gallery_defer_figures

# %%
# The four-well system
# --------------------
#
# 20 trajectories, 10 integration steps per frame; the simulator steps 10 frames.

X = four_well(10 * N_FRAMES // 2, n_trajectories=20, stride=10, random_state=0)
X_test = four_well(20 * 2_000, n_trajectories=20, stride=10, random_state=1)
ck = simulator(10).fit(X).ck_test(X_test, n_states=4, k_max=5, n_samples=50)
report("four-well, step of 10 frames", ck)
plotting.ck_test(ck, axes=axes[0])
axes[0, 0].set_ylabel("four-well, step 10\nP(same state)")
# sphinx_gallery_defer_figures

# %%
# One coordinate of the hidden wells
# ----------------------------------
#
# Only the x coordinate of the two-dimensional hidden-wells dynamics is observed. One
# simulator steps 1 frame, the other 40; both are tested at a lag of 40 frames.

_, Z = hidden_wells(N_FRAMES, n_trajectories=10, random_state=0, return_latent=True)
_, Z_test = hidden_wells(N_FRAMES, n_trajectories=10, random_state=1, return_latent=True)
X = [z[:, :1] for z in Z]
X_test = [z[:, :1] for z in Z_test]
for row, lag in ((1, 1), (2, 40)):
    ck = simulator(lag).fit(X).ck_test(X_test, n_states=3, k_max=5, lag_time=40, n_samples=50)
    report(f"hidden x, step of {lag:>2} frames", ck)
    plotting.ck_test(ck, axes=axes[row, :3])
    axes[row, 0].set_ylabel(f"hidden x, step {lag}\nP(same state)")
    axes[row, 3].set_visible(False)
fig.tight_layout()
fig.savefig("ck_test.png", dpi=90)

# %%
# What deeptime does in sklss
# ---------------------------
#
# `deeptime <https://deeptime-ml.github.io>`_ is the field's library for Markov state
# models. sklss leaves to it what it does well and builds on top:
#
# - the default observable is deeptime's ``TICA`` (the coefficients are stored in the
#   simulator as plain arrays, so safe model files need no deeptime objects);
# - :func:`sklss.markov.discretize` uses deeptime's ``KMeans``;
# - :func:`sklss.markov.markov_timescales` and :func:`sklss.markov.chapman_kolmogorov_test`
#   use deeptime's transition counting, maximum-likelihood reversible MSMs and its
#   reversible transition-matrix sampler for Bayesian error bars (seeded, so results
#   repeat).
#
# sklss itself holds what deeptime does not: the neural encoder, propagator and decoder, the
# generation of new trajectories and structures, and the comparison of simulations with MD.
