"""Validating a simulator: Chapman-Kolmogorov tests on fixed states.

A simulator is a Markov chain in its latent space with one step per lag time. If the lag is
too short for the latent coordinates to be Markovian, every step forgets something the MD
remembers, and the simulation relaxes at the wrong rate, however well each step is learned.
The Chapman-Kolmogorov (CK) test shows it: the held-out MD is cut into a few states on a
fixed coordinate, and the probability of being in a state again after k lag times is
measured from the MD, predicted by the MD's Markov state model, and measured from the
simulation, with Bayesian error bars (deeptime).

First the four-well system of the paper, whose coordinate x is the whole state: a simulator
stepping 10 frames passes. Then two simulators of one coordinate of the hidden-wells toy (the
other coordinate is never shown to them, so the one they see is not Markovian at short lags):
one steps 1 frame at a time, the other 40. Both are tested on the same 40-frame grid.

Run with SKLSS_SMALL=1 for a tiny version (seconds, meaningless numbers).
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

# The four-well system: 20 trajectories, 10 integration steps per frame.
X = four_well(10 * N_FRAMES // 2, n_trajectories=20, stride=10, random_state=0)
X_test = four_well(20 * 2_000, n_trajectories=20, stride=10, random_state=1)
ck = simulator(10).fit(X).ck_test(X_test, n_states=4, k_max=5, n_samples=50)
report("four-well, step of 10 frames", ck)
plotting.ck_test(ck, axes=axes[0])
axes[0, 0].set_ylabel("four-well, step 10\nP(same state)")

# Only the x coordinate of the two-dimensional hidden-wells dynamics is observed.
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
