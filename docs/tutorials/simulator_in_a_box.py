"""
A simulator in a box: saving and sharing a trained model
========================================================

A trained simulator is a small file, a few megabytes, that generates trajectories on any
machine with ``sklss`` installed, no MD engine needed.

- :func:`sklss.io.save` writes a fitted estimator (any of the four, components included)
  to one file: network weights in safetensors, fitted arrays in ``.npy`` form, everything
  else in JSON, with the sklss and torch versions and a checksum of each part.
- :func:`sklss.io.load` checks the whole file before it builds anything and never
  unpickles, so a model file from an untrusted source cannot run code. A model trained on a
  GPU loads on a CPU-only machine. ``joblib.dump`` also works, for your own files.

A loaded model samples exactly as the saved one did.

On the command line, ``sklss fit`` saves a *model folder*: the simulator file, a
``sklss-model.json`` that says what goes in and comes out, a hundred training frames as
default start frames, and, for models fitted on MD files, ``topology.pdb`` with the decoded
atoms. Copy the folder anywhere and run it:

.. code-block:: bash

   sklss fit --features features.npy --lag-time 5 --output box
   sklss sample box -n 8 --n-steps 10000 -o samples.npy

   # From MD files: torsions in, heavy-atom coordinates out, DCD files written.
   sklss fit --topology ala2.pdb --trajectories run1.dcd run2.dcd --lag-time 10 -o ala2
   sklss sample ala2 -n 4 --n-steps 100000 -o generated.dcd   # generated_000.dcd, ...

See :doc:`/command_line` for every option. The script below does both, from Python.

.. note::

   The output on this page comes from the documentation build, which runs the script at CI
   size (``SKLSS_SMALL=1``: 500 frames per trajectory and one epoch, seconds), so the file
   size and the figure are meaningless. Run it yourself, ``python simulator_in_a_box.py``,
   for the full size.

**What to expect at full size** (4 trajectories of 25,000 frames, 30 epochs): the same
printed lines, ``identical samples: True`` and ``samples.npy: (8, 500, 20)``, and a model
file of a few megabytes.
"""

import os

import matplotlib.pyplot as plt
import numpy as np

from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer, plotting
from sklss.cli import main as sklss_command
from sklss.datasets import hidden_wells
from sklss.io import load, save

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_FRAMES = 500 if SMALL else 25_000  # per trajectory
MAX_EPOCHS = 1 if SMALL else 30

# %%
# Train a full simulator
# ----------------------
#
# Features -> latent space -> features.

X = hidden_wells(N_FRAMES, n_trajectories=4, random_state=0)
lss = LatentSpaceSimulator(
    SRVTransformer(n_components=2, max_epochs=MAX_EPOCHS),
    MDNPropagator(n_kernels=12, max_epochs=MAX_EPOCHS),
    CWGANDecoder(max_epochs=MAX_EPOCHS),
    lag_time=5,
    random_state=0,
).fit(X)

# %%
# Save and load
# -------------
#
# Save it to one file, and load it back, as a colleague would.

save(lss, "hidden_wells.sklss")
print(f"hidden_wells.sklss: {os.path.getsize('hidden_wells.sklss') / 1e6:.1f} MB")
box = load("hidden_wells.sklss")

# %%
# The loaded simulator generates exactly what the original does.

starts = np.stack([x[0] for x in X])
original = lss.sample(starts, n_steps=200, random_state=7)
loaded = box.sample(starts, n_steps=200, random_state=7)
print("identical samples:", np.array_equal(original.configurations, loaded.configurations))

# %%
# The command line
# ----------------
#
# The same from the command line (here called from Python): fit from a ``.npy`` file of
# shape ``(n_trajectories, n_frames, n_features)``, then sample 8 trajectories to a file.

np.save("features.npy", np.stack(X))
sklss_command(
    ["fit", "--features", "features.npy", "--lag-time", "5", "--max-epochs", str(MAX_EPOCHS)]
    + ["--n-kernels", "12", "--output", "box", "--verbose", "0"]
)
sklss_command(["sample", "box", "-n", "8", "--n-steps", "500", "-o", "samples.npy"])
print("samples.npy:", np.load("samples.npy").shape)  # (8, 500, 20)

# %%
# What the loaded model generates
# -------------------------------
#
# The latent trajectory that the loaded model generated from the first start frame (one
# step is one lag, 5 frames), and the free energy along the first latent coordinate: of the
# MD, and of the loaded model's trajectories.

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5), layout="constrained")
plotting.latent_trajectory(loaded, dt=5, ax=axes[0])
axes[0].set_title("loaded model, first trajectory")
psi = box.transform(X)
edges = np.linspace(np.min(np.concatenate(psi)[:, 0]), np.max(np.concatenate(psi)[:, 0]), 41)
plotting.free_energy_1d(psi, bins=edges, label="MD", ax=axes[1])
plotting.free_energy_1d(loaded.latent, bins=edges, label="loaded model", linestyle="--", ax=axes[1])
axes[1].set_title("free energy along psi_1")
fig.savefig("simulator_in_a_box.png", dpi=100)
