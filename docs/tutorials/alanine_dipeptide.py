"""
Alanine dipeptide: from OpenMM to a DCD file
============================================

A full simulator (SRV encoder, MDN propagator, cWGAN decoder) on molecular dynamics of
alanine dipeptide in implicit solvent. :func:`sklss.datasets.alanine_dipeptide` runs the MD
with OpenMM and caches it on disk (``$SKLSS_CACHE``, else ``~/.cache/sklss``, so a second
run starts at once); one nanosecond takes about 15 s of one CPU core. The
featurisers of :mod:`sklss.features` turn ``mdtraj.Trajectory`` objects into arrays: the
encoder sees the sines and cosines of the backbone torsions phi and psi, and the decoder
learns Kabsch-superposed coordinates of the ten heavy atoms.
:meth:`sklss.features.SuperposedCoordinates.inverse_transform` turns generated
configurations back into ``mdtraj`` trajectories, and :func:`sklss.io.write_trajectory`
writes them as DCD, XTC or PDB for VMD, PyMOL or nglview.

The script ends with Ramachandran plots (free energy over phi and psi) of the MD and of the
generated structures. The ``sklss demo --system alanine-dipeptide`` command runs a similar
pipeline and writes a report.

This tutorial needs the ``md`` extra: ``pip install "sklss[md]"`` (mdtraj and OpenMM).

.. note::

   The output on this page comes from the documentation build, which runs the script at CI
   size (``SKLSS_SMALL=1``: 30 ps of MD per trajectory and two epochs, seconds), so its
   numbers and figures are meaningless. Run it yourself, ``python alanine_dipeptide.py``,
   for the full size.

**What to expect at full size** (4 x 5 ns of MD: about 15 minutes of OpenMM on one core
the first time, read back from the cache in under a second afterwards, then the
training): the MD samples the psi transition between the C7eq/beta/PPII basin and alpha_R,
the slowest process it visits (about 12 ps; see the alanine dipeptide section of
``benchmarks/README.md``), and reaches alpha_L (phi > 0) only rarely. The generated
structures populate the same two main basins of the Ramachandran plot as the MD; they
rarely or never enter alpha_L.
"""

import os

import matplotlib.pyplot as plt
import mdtraj
import numpy as np

from sklss import CWGANDecoder, LatentSpaceSimulator, MDNPropagator, SRVTransformer, plotting
from sklss.datasets import alanine_dipeptide
from sklss.features import SuperposedCoordinates, Torsions
from sklss.io import write_trajectory

SMALL = os.environ.get("SKLSS_SMALL") == "1"
N_TRAJECTORIES = 2 if SMALL else 4
N_NS = 0.03 if SMALL else 5.0  # ns per trajectory; frames are saved every ps
EQUILIBRATION_PS = 5.0 if SMALL else 100.0
MAX_EPOCHS = 2 if SMALL else 100

# %%
# Molecular dynamics
# ------------------
#
# Four trajectories of Langevin dynamics at 300 K (OpenMM, AMBER ff96 + OBC2).

trajs = alanine_dipeptide(N_NS, n_trajectories=4, equilibration_ps=EQUILIBRATION_PS, random_state=0)
print(f"MD: {len(trajs)} trajectories of {trajs[0].n_frames} frames, {trajs[0].n_atoms} atoms")

# %%
# Features
# --------
#
# Features for the encoder, configurations for the decoder. Both keep the trajectories
# apart, so lagged pairs never cross from one trajectory into the next.

torsions = Torsions("backbone").fit(trajs)  # sin and cos of phi and psi
coordinates = SuperposedCoordinates("heavy").fit(trajs)  # 10 heavy atoms, aligned, in nm
X = torsions.transform(trajs)
Y = coordinates.transform(trajs)
print("encoder features:", list(torsions.get_feature_names_out()))

# %%
# The simulator
# -------------
#
# Encoder, propagator and decoder, with a lag of 10 frames (10 ps).

lag = 10
lss = LatentSpaceSimulator(
    SRVTransformer(n_components=2, max_epochs=MAX_EPOCHS),
    MDNPropagator(n_kernels=12, max_epochs=MAX_EPOCHS),
    CWGANDecoder(max_epochs=MAX_EPOCHS),
    lag_time=lag,
    random_state=0,
).fit(X, Y)
print("implied timescales of the encoder (ps):", np.round(lss.encoder_.timescales_, 1))

# %%
# New structures, written as DCD
# ------------------------------
#
# Generate one trajectory from each MD trajectory's first frame, ten times as long as the
# MD (one step is one lag, 10 ps), and write the first one as a DCD file.

n_steps = trajs[0].n_frames
result = lss.sample(np.stack([x[0] for x in X]), n_steps=n_steps, random_state=0)
write_trajectory(result.configurations[0], coordinates.topology_, "lss.dcd", dt=lag)
generated = coordinates.inverse_transform(result.configurations, dt=lag)  # mdtraj.Trajectory
print(f"wrote lss.dcd: {n_steps} frames of {generated[0].n_atoms} atoms, {n_steps * lag} ps")


# %%
# Ramachandran plots
# ------------------
#
# The free energy over phi and psi, of the MD and of the generated structures.


def phi_psi(traj_list):
    return [
        np.column_stack([mdtraj.compute_phi(t)[1][:, 0], mdtraj.compute_psi(t)[1][:, 0]])
        for t in traj_list
    ]


grid = np.linspace(-np.pi, np.pi, 41)
fig, axes = plt.subplots(1, 2, figsize=(11, 4.5), layout="constrained")
for ax, angles, title in zip(axes, (phi_psi(trajs), phi_psi(generated)), ("MD", "LSS")):
    plotting.free_energy_2d(
        angles, bins=[grid, grid], max_free_energy=8, labels=("phi (rad)", "psi (rad)"), ax=ax
    )
    ax.set_title(title)
fig.savefig("alanine_dipeptide.png", dpi=100)
