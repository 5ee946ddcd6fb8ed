"""Validating a simulator: Chapman-Kolmogorov tests on fixed states.

A simulator is a Markov chain in its latent space with one step per lag time. If the lag is
too short for the latent coordinates to be Markovian, every step forgets something the MD
remembers, and the simulation relaxes at the wrong rate, however well each step is learned.
The Chapman-Kolmogorov (CK) test shows it: the held-out MD is cut into a few states on a
fixed coordinate, and the probability of being in a state again after k lag times is
measured from the MD, predicted by the MD's Markov state model, and measured from the
simulation, with Bayesian error bars (deeptime).

Two simulators of one coordinate of the hidden-wells toy (the other coordinate is never
shown to them, so the one they see is not Markovian at short lags): one steps 1 frame at a
time, the other 40. Both are tested on the same 40-frame grid.

Run with SKLSS_SMALL=1 for a tiny version (seconds, meaningless numbers).
"""

import os

import matplotlib.pyplot as plt

from sklss import LatentSpaceSimulator, MDNPropagator, plotting
from sklss.datasets import hidden_wells

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_FRAMES = 2_000 if SMALL else 20_000  # per trajectory
MAX_EPOCHS = 1 if SMALL else 30

# Only the x coordinate of the two-dimensional latent dynamics is observed.
_, Z = hidden_wells(N_FRAMES, n_trajectories=10, random_state=0, return_latent=True)
_, Z_test = hidden_wells(N_FRAMES, n_trajectories=10, random_state=1, return_latent=True)
X = [z[:, :1] for z in Z]
X_test = [z[:, :1] for z in Z_test]

fig, axes = plt.subplots(2, 3, figsize=(9, 6), sharey=True)
for row, lag in enumerate((1, 40)):
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(n_kernels=8, hidden_layer_sizes=(64, 64), max_epochs=MAX_EPOCHS, patience=6),
        "passthrough",
        lag_time=lag,
        random_state=0,
    ).fit(X)
    ck = lss.ck_test(X_test, n_states=3, k_max=5, lag_time=40, n_samples=50)
    print(
        f"step of {lag:>2} frames: CK test {'passed' if ck.passed else 'FAILED'}, largest "
        f"deviation from MD {ck.max_model_deviation:.3f}"
    )
    plotting.ck_test(ck, axes=axes[row])
    axes[row, 0].set_ylabel(f"step {lag} frames\nP(same state)")
fig.tight_layout()
fig.savefig("ck_test.png", dpi=100)
