"""Tests of sklss.features on alanine dipeptide: synthetic frames on the shipped topology.

The synthetic frames are the shipped structure with every atom jittered (so angles and
distances vary), then rotated and translated at random (so invariance can be checked).
Expected values come from independent numpy formulas, not from the code under test.
"""

import numpy as np
import pytest
from scipy.spatial.distance import pdist
from scipy.spatial.transform import Rotation
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import FeatureUnion

pytest.importorskip("mdtraj")

import mdtraj as md  # noqa: E402
from conftest import dihedral  # noqa: E402

from sklss.datasets import alanine_dipeptide_structure  # noqa: E402
from sklss.features import (  # noqa: E402
    PairwiseDistances,
    SuperposedCoordinates,
    Torsions,
    TrajectoryFeatureUnion,
    make_encoder_features,
)

HEAVY = [0, 4, 5, 6, 8, 10, 11, 12, 16, 18]  # the 10 non-hydrogen atoms of the PDB


def _moved(traj, seed):
    """The same frames after a random rotation and translation of each frame."""
    rng = np.random.default_rng(seed)
    rot = Rotation.random(traj.n_frames, random_state=seed).as_matrix()
    xyz = np.einsum("fij,fnj->fni", rot, traj.xyz) + rng.normal(0, 2, (traj.n_frames, 1, 3))
    return md.Trajectory(xyz.astype(np.float32), traj.topology)


@pytest.fixture(scope="module")
def structure():
    return alanine_dipeptide_structure()


@pytest.fixture(scope="module")
def frames(structure):
    rng = np.random.default_rng(0)
    xyz = structure.xyz[0] + rng.normal(0, 0.03, size=(40, 22, 3))
    return _moved(md.Trajectory(xyz.astype(np.float32), structure.topology), 1)


def test_torsions_are_phi_and_psi_as_sin_cos_pairs(frames):
    torsions = Torsions().fit(frames)
    assert list(torsions.get_feature_names_out()) == [
        "sin(phi ALA2)",
        "cos(phi ALA2)",
        "sin(psi ALA2)",
        "cos(psi ALA2)",
    ]
    X = torsions.transform(frames)
    assert X.shape == (40, 4) and X.dtype == np.float32
    # phi = C(ACE)-N-CA-C, psi = N-CA-C-N(NME), atoms 4-6-8-10 and 6-8-10-16.
    phi = dihedral(frames.xyz[:, [4, 6, 8, 10]].astype(np.float64))
    psi = dihedral(frames.xyz[:, [6, 8, 10, 16]].astype(np.float64))
    np.testing.assert_allclose(
        X, np.column_stack([np.sin(phi), np.cos(phi), np.sin(psi), np.cos(psi)]), atol=1e-5
    )
    raw = Torsions(cossin=False).fit_transform(frames)
    np.testing.assert_allclose(raw, np.column_stack([phi, psi]), atol=1e-5)


def test_features_do_not_change_under_rotation_and_translation(frames):
    moved = _moved(frames, 7)
    for featurizer in (Torsions(), PairwiseDistances("heavy"), SuperposedCoordinates("heavy")):
        featurizer.fit(frames)
        np.testing.assert_allclose(
            featurizer.transform(moved), featurizer.transform(frames), atol=2e-5
        )


def test_heavy_atom_distances_match_pdist(frames):
    distances = PairwiseDistances("heavy").fit(frames)
    np.testing.assert_array_equal(distances.atom_indices_, HEAVY)
    X = distances.transform(frames)
    assert X.shape == (40, 45)
    expected = np.array([pdist(x[HEAVY].astype(np.float64)) for x in frames.xyz])
    np.testing.assert_allclose(X, expected, atol=1e-6)
    names = distances.get_feature_names_out()
    assert names[0] == "dist(ACE1-CH3, ACE1-C)" and len(set(names)) == 45
    same = PairwiseDistances(np.array(HEAVY)).fit_transform(frames)
    np.testing.assert_array_equal(same, X)


def test_excluded_neighbours_drop_pairs_within_nearby_residues(frames):
    distances = PairwiseDistances("heavy", exclude_neighbors=1).fit(frames)
    # Only ACE-NME pairs are two residues apart: ACE has 3 heavy atoms, NME 2.
    assert len(distances.pairs_) == 6
    residues = [frames.topology.atom(int(a)).residue.name for a in distances.pairs_.ravel()]
    assert set(residues) == {"ACE", "NME"}


def test_single_c_alpha_selection_is_an_error_that_suggests_heavy_atoms(frames):
    with pytest.raises(ValueError, match="1 atom.*selection='heavy'"):
        PairwiseDistances().fit(frames)
    with pytest.raises(ValueError, match="not a valid mdtraj selection"):
        PairwiseDistances("name CA and").fit(frames)
    with pytest.raises(ValueError, match=r"outside \[0, 22\)"):
        PairwiseDistances([0, 30]).fit(frames)


def test_missing_torsion_kinds_and_unknown_names_are_errors(frames):
    with pytest.raises(ValueError, match="No torsion of kinds"):
        Torsions("sidechain").fit(frames)  # alanine has no chi angle
    with pytest.raises(ValueError, match="'angles'"):
        Torsions(["phi", "theta"]).fit(frames)


def test_superposition_minimises_rmsd_to_the_reference(frames, structure):
    superposed = SuperposedCoordinates("heavy", reference=structure).fit(frames)
    Y = superposed.transform(frames).reshape(40, 10, 3).astype(np.float64)
    ref = superposed.reference_xyz_
    np.testing.assert_allclose(ref.mean(axis=0), 0, atol=1e-7)
    np.testing.assert_allclose(Y.mean(axis=1), 0, atol=1e-6)
    ours = np.sqrt(((Y - ref) ** 2).sum(-1).mean(-1))
    expected = md.rmsd(frames[:], structure[:], 0, atom_indices=HEAVY)  # rmsd centres in place
    np.testing.assert_allclose(ours, expected, atol=1e-5)
    # A proper rotation: internal geometry and handedness are kept (no mirror image).
    for i in (0, 17):
        np.testing.assert_allclose(pdist(Y[i]), pdist(frames.xyz[i, HEAVY]), atol=1e-5)
    quad = [HEAVY.index(a) for a in (4, 6, 8, 10)]
    np.testing.assert_allclose(
        dihedral(Y[:, quad]), dihedral(frames.xyz[:, [4, 6, 8, 10]]), atol=1e-4
    )


def test_inverse_transform_rebuilds_a_trajectory_of_the_selected_atoms(frames):
    superposed = SuperposedCoordinates("heavy").fit(frames)
    Y = superposed.transform(frames)
    back = superposed.inverse_transform(Y, dt=2.0)
    assert isinstance(back, md.Trajectory)
    assert back.n_atoms == 10 and back.topology.n_bonds == 9
    assert [a.name for a in back.topology.atoms] == [frames.topology.atom(i).name for i in HEAVY]
    np.testing.assert_allclose(back.time, 2.0 * np.arange(40))
    # phi and psi of the rebuilt heavy atoms equal those of the original frames.
    np.testing.assert_allclose(md.compute_phi(back)[1], md.compute_phi(frames)[1], atol=1e-4)
    np.testing.assert_allclose(md.compute_psi(back)[1], md.compute_psi(frames)[1], atol=1e-4)
    stacked = superposed.inverse_transform(np.stack([Y[:10], Y[10:20]]))
    assert isinstance(stacked, list) and [t.n_frames for t in stacked] == [10, 10]
    with pytest.raises(ValueError, match=r"expected \(n_frames, 30\) for 10 atoms"):
        superposed.inverse_transform(Y[:, :27])
    bad = Y.copy()
    bad[5, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf at frame 5"):
        superposed.inverse_transform(bad)


def test_lists_give_lists_and_single_trajectories_give_arrays(frames):
    parts = [frames[:25], frames[25:]]
    for featurizer in (Torsions(), PairwiseDistances("heavy"), SuperposedCoordinates()):
        out = featurizer.fit_transform(parts)
        assert isinstance(out, list) and [len(x) for x in out] == [25, 15]
        np.testing.assert_allclose(np.concatenate(out), featurizer.transform(frames), atol=1e-6)


def test_encoder_features_union_keeps_trajectories_apart(frames):
    parts = [frames[:25], frames[25:]]
    union = make_encoder_features("heavy")
    single = union.fit_transform(frames)
    assert single.shape == (40, 49)
    listed = union.fit_transform(parts)
    assert isinstance(listed, list) and [x.shape for x in listed] == [(25, 49), (15, 49)]
    np.testing.assert_array_equal(np.concatenate(listed), single)
    names = union.get_feature_names_out()
    assert len(names) == 49
    assert names[0] == "torsions__sin(phi ALA2)"
    assert names[4] == "distances__dist(ACE1-CH3, ACE1-C)"
    expected = np.hstack(
        [Torsions().fit_transform(frames), PairwiseDistances("heavy").fit_transform(frames)]
    )
    np.testing.assert_array_equal(single, expected)
    # scikit-learn's own FeatureUnion gives the same for one trajectory.
    plain = FeatureUnion([("t", Torsions()), ("d", PairwiseDistances("heavy"))])
    np.testing.assert_array_equal(plain.fit_transform(frames), single)
    # Nested parameters work as for any union, and clones are unfitted copies.
    union.set_params(distances__selection="backbone")
    assert union.fit_transform(frames).shape == (40, 4 + 28)
    assert isinstance(clone(union), TrajectoryFeatureUnion)


def test_bad_inputs_name_the_trajectory_and_what_was_expected(frames, structure):
    torsions = Torsions()
    with pytest.raises(NotFittedError):
        torsions.transform(frames)
    torsions.fit(frames)
    with pytest.raises(TypeError, match=r"X\[1\] must be an mdtraj.Trajectory; got ndarray"):
        torsions.transform([frames, frames.xyz])
    heavy_only = frames.atom_slice(HEAVY)
    with pytest.raises(ValueError, match="10 atoms in trajectory 1.*topology of 22 atoms"):
        torsions.transform([frames, heavy_only])
    broken = frames[:]
    broken.xyz[3, 2, 1] = np.nan
    with pytest.raises(ValueError, match="NaN or inf coordinates in trajectory 0, frame 3"):
        torsions.transform([broken])
    with pytest.raises(ValueError, match="empty list"):
        Torsions().fit([])
    with pytest.raises(ValueError, match="reference structure has 10 atoms"):
        SuperposedCoordinates(reference=heavy_only).fit(frames)
    with pytest.raises(ValueError, match="at least 3"):
        SuperposedCoordinates("name CA").fit(frames)
