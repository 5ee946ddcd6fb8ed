"""Toy systems with known answers, for testing and benchmarking latent space simulators.

* :func:`four_well` -- Brownian dynamics in the one-dimensional four-well potential of
  Sidky, Chen & Ferguson (2020), section 3.1; :func:`four_well_reference` gives its exact
  stationary density, implied timescales and transition matrices on a fine grid.
* :func:`hidden_wells` -- a two-dimensional three-well system with two slow processes,
  observed only through a fixed, injective, nonlinear map to many noisy features;
  :func:`hidden_wells_reference` gives its exact stationary density, timescales and
  eigenfunctions.
* :func:`hidden_switches` -- three independent two-state switches (three slow processes)
  seen through hundreds of nonlinear features, as large as a user wants: a stand-in for
  paper-scale data with an exact answer (:func:`hidden_switches_reference`).

* :func:`alanine_dipeptide` -- molecular dynamics of alanine dipeptide in implicit solvent,
  run with OpenMM (the optional ``md`` extra) and cached on disk; it returns
  ``mdtraj.Trajectory`` objects, and :func:`alanine_dipeptide_structure` gives its
  energy-minimised starting structure; :func:`alanine_dipeptide_rare_event` gives the same
  molecule at 400 K, where the flip of phi into alpha_L is a rare event, as independent
  training and validation sets.

The toy generators return trajectory data (one float64 array of shape
``(n_frames, n_features)``, or a list of them), count time in frames, and take a
``random_state`` without touching numpy's global random state.
"""

from ._alanine_dipeptide import (
    alanine_dipeptide,
    alanine_dipeptide_rare_event,
    alanine_dipeptide_structure,
)
from ._bead_chain import (
    bead_chain,
    bead_chain_configurations,
    bond_lengths,
    chain_fidelity,
    end_to_end_distance,
    radius_of_gyration,
)
from ._four_well import four_well, four_well_potential, four_well_reference
from ._hidden_switches import (
    hidden_switches,
    hidden_switches_features,
    hidden_switches_latent,
    hidden_switches_potential,
    hidden_switches_reference,
)
from ._hidden_wells import (
    hidden_wells,
    hidden_wells_features,
    hidden_wells_potential,
    hidden_wells_reference,
)

__all__ = [
    "alanine_dipeptide",
    "alanine_dipeptide_rare_event",
    "alanine_dipeptide_structure",
    "bead_chain",
    "bead_chain_configurations",
    "bond_lengths",
    "chain_fidelity",
    "end_to_end_distance",
    "radius_of_gyration",
    "four_well",
    "four_well_potential",
    "four_well_reference",
    "hidden_switches",
    "hidden_switches_features",
    "hidden_switches_latent",
    "hidden_switches_potential",
    "hidden_switches_reference",
    "hidden_wells",
    "hidden_wells_features",
    "hidden_wells_potential",
    "hidden_wells_reference",
]
