"""
Choosing the lag time and the number of latent dimensions m
===========================================================

Three diagnostics on the hidden-coordinate toy, whose exact timescales (340 and 99 frames,
then 10 and below) are known; :doc:`/choosing_lag_and_m` explains them:

1. implied timescales of the encoder against the lag time, over three seeds: pick a lag at
   which the slow timescales have levelled off, and which is well below them;
2. the eigenvalue spectrum of a wide basis (six functions): pick m at the gap after the
   slow processes (``n_components="auto"`` does this);
3. VAMP-2 on held-out trajectories against m, at the chosen lag: it stops growing once the
   slow processes are captured.

.. note::

   The output on this page comes from the documentation build, which runs the script at CI
   size (``SKLSS_SMALL=1``: 1,000 frames per trajectory, one epoch, two seeds; seconds), so
   its numbers and figure are meaningless. Run it yourself, ``python lag_and_components.py``,
   for the full size.

**What to expect at full size** (50,000 frames per trajectory, 30 epochs, three seeds): the
two slow implied timescales rise with the lag and level off below the exact 340 and 99
frames; the spectrum of the wide basis has two slow eigenvalues, then a gap, so
``n_components="auto"`` chooses m = 2; and held-out VAMP-2 stops growing after m = 2.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from sklss import SRVTransformer, plotting
from sklss.datasets import hidden_wells, hidden_wells_reference

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_FRAMES = 1_000 if SMALL else 50_000  # per trajectory
MAX_EPOCHS = 1 if SMALL else 30
SEEDS = [0, 1] if SMALL else [0, 1, 2]

X = hidden_wells(N_FRAMES, n_trajectories=4, random_state=0)
X_test = hidden_wells(N_FRAMES, n_trajectories=2, random_state=1)
exact = hidden_wells_reference().timescales[:3]
print("exact timescales (frames):", np.round(exact, 1))

# %%
# Implied timescales against the lag
# ----------------------------------
#
# The standard error over seeds gives the bands.

lags = [1, 2, 5, 10, 20]
its = np.array(
    [
        [
            SRVTransformer(lag_time=lag, n_components=3, max_epochs=MAX_EPOCHS, random_state=s)
            .fit(X)
            .timescales_
            for s in SEEDS
        ]
        for lag in lags
    ]
)  # (n_lags, n_seeds, 3)
mean, spread = its.mean(axis=1), its.std(axis=1, ddof=1) / np.sqrt(len(SEEDS))
for lag, t in zip(lags, mean):
    print(f"lag {lag:>2}: timescales {np.round(t, 1)}")

# %%
# The spectrum of a wide basis
# ----------------------------
#
# At lag 5: two slow eigenvalues, then a gap.

srv = SRVTransformer(
    lag_time=5, n_components="auto", n_basis=6, max_epochs=MAX_EPOCHS, random_state=0
).fit(X)
print("eigenvalues of the basis:", np.round(srv.all_eigenvalues_, 3))
print("m chosen at the largest gap:", srv.n_components_)

# %%
# Held-out VAMP-2 against m
# -------------------------
#
# At lag 5 (values at different lags are not comparable).

scores = [
    SRVTransformer(lag_time=5, n_components=m, max_epochs=MAX_EPOCHS, random_state=0)
    .fit(X)
    .score(X_test)
    for m in (1, 2, 3, 4)
]
print("held-out VAMP-2 for m = 1..4:", np.round(scores, 3))

# %%
# The three diagnostics, with the exact slow timescales as dotted lines.

fig, axes = plt.subplots(1, 3, figsize=(16, 4), layout="constrained")
plotting.implied_timescales(lags, mean, spread, ax=axes[0])
for t in exact[:2]:
    axes[0].axhline(t, color="k", linestyle=":")
axes[1].bar(np.arange(1, len(srv.all_eigenvalues_) + 1), srv.all_eigenvalues_)
axes[1].set_xlabel("eigenvalue index")
axes[1].set_ylabel("eigenvalue at lag 5")
axes[2].plot([1, 2, 3, 4], scores, "o-")
axes[2].set_xlabel("m")
axes[2].set_ylabel("held-out VAMP-2 at lag 5")
fig.savefig("lag_and_components.png", dpi=100)
