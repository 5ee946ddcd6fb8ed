"""Tests of writing and reading trajectory files (DCD, XTC, PDB) and of their error messages.

Synthetic coordinates on the shipped alanine dipeptide topology; row 17 of RELIABILITY.md.
"""

import numpy as np
import pytest

pytest.importorskip("mdtraj")

import mdtraj as md  # noqa: E402

from sklss.datasets import alanine_dipeptide_structure  # noqa: E402
from sklss.io import read_trajectory, write_trajectory  # noqa: E402

# Precision of each format, in nm: XTC and PDB keep 0.001 nm, DCD single precision.
TOLERANCE = {".dcd": 1e-6, ".xtc": 1e-3, ".pdb": 1e-3}


@pytest.fixture(scope="module")
def structure():
    return alanine_dipeptide_structure()


@pytest.fixture(scope="module")
def frames(structure):
    rng = np.random.default_rng(0)
    return structure.xyz[0] + rng.normal(0, 0.02, size=(12, 22, 3)).astype(np.float32)


@pytest.mark.parametrize("suffix", [".dcd", ".xtc", ".pdb"])
@pytest.mark.parametrize("flat", [True, False])
def test_round_trip_keeps_coordinates_atoms_and_frames(suffix, flat, structure, frames, tmp_path):
    configurations = frames.reshape(12, -1) if flat else frames
    path = write_trajectory(configurations, structure.topology, tmp_path / f"gen{suffix}")
    assert path.is_file()
    back = read_trajectory(path, structure.topology, n_frames=12)
    assert back.n_frames == 12 and back.n_atoms == 22
    np.testing.assert_allclose(back.xyz, frames, atol=TOLERANCE[suffix])
    assert [a.name for a in back.topology.atoms] == [a.name for a in structure.topology.atoms]
    # The file opens with mdtraj directly, as in VMD, PyMOL or nglview.
    direct = md.load(str(path), top=structure.topology) if suffix != ".pdb" else md.load(str(path))
    np.testing.assert_allclose(direct.xyz, frames, atol=TOLERANCE[suffix])


def test_topology_may_be_a_trajectory_or_a_pdb_file(structure, frames, tmp_path):
    pdb = tmp_path / "top.pdb"
    structure.save_pdb(str(pdb))
    path = write_trajectory(frames, pdb, tmp_path / "a.xtc")
    from_file = read_trajectory(path, pdb)
    from_traj = read_trajectory(path, structure)
    np.testing.assert_array_equal(from_file.xyz, from_traj.xyz)
    assert read_trajectory(tmp_path / "top.pdb").n_atoms == 22  # PDB carries its topology


def test_time_between_frames_is_stored(structure, frames, tmp_path):
    path = write_trajectory(frames, structure.topology, tmp_path / "t.xtc", dt=2.5)
    np.testing.assert_allclose(np.diff(read_trajectory(path, structure).time), 2.5, rtol=1e-5)


def test_stride_reads_every_kth_frame(structure, frames, tmp_path):
    path = write_trajectory(frames, structure, tmp_path / "s.dcd")
    np.testing.assert_allclose(
        read_trajectory(path, structure, stride=3).xyz, frames[::3], atol=1e-6
    )


def test_decoded_heavy_atoms_are_written_with_the_selection_topology(structure, frames, tmp_path):
    heavy = structure.topology.select("not element H")
    sub = structure.topology.subset(heavy)
    path = write_trajectory(frames[:, heavy].reshape(12, -1), sub, tmp_path / "heavy.pdb")
    back = read_trajectory(path, sub)
    assert back.n_atoms == 10 and back.topology.n_bonds == 9


def test_overwriting_is_atomic_and_leaves_no_temporary_files(structure, frames, tmp_path):
    path = tmp_path / "x.dcd"
    write_trajectory(frames, structure, path)
    write_trajectory(frames[:5], structure, path)
    assert read_trajectory(path, structure).n_frames == 5
    with pytest.raises(ValueError, match=r"x\.unknownformat"):
        write_trajectory(frames, structure, tmp_path / "x.unknownformat")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dcd"]


def test_configurations_that_do_not_fit_the_topology_are_refused(structure, frames, tmp_path):
    with pytest.raises(ValueError, match=r"topology has 22 atoms.*\(n_frames, 66\)"):
        write_trajectory(frames[:, :10].reshape(12, -1), structure, tmp_path / "x.dcd")
    with pytest.raises(ValueError, match="one trajectory at a time"):
        write_trajectory(np.stack([frames.reshape(12, -1)] * 2), structure, tmp_path / "x.dcd")
    bad = frames.copy()
    bad[7, 3, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or inf, first at frame 7"):
        write_trajectory(bad, structure, tmp_path / "x.dcd")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        write_trajectory(frames, structure, tmp_path / "missing" / "x.dcd")
    assert not list(tmp_path.iterdir())


# --- row 17: truncated or corrupt files, atom counts that disagree ------------------------


def test_row17_truncated_dcd_names_the_file_and_the_declared_frames(structure, frames, tmp_path):
    path = write_trajectory(frames, structure, tmp_path / "cut.dcd")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=r"cut\.dcd.*truncated or corrupt.*declares 12 frames"):
        read_trajectory(path, structure)


@pytest.mark.parametrize("suffix", [".xtc", ".pdb"])
def test_row17_truncated_xtc_or_pdb_names_the_file(suffix, structure, frames, tmp_path):
    path = write_trajectory(frames, structure, tmp_path / f"cut{suffix}")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ValueError, match=rf"cut\{suffix}.*truncated or corrupt.*22 atoms"):
        read_trajectory(path, structure)


def test_row17_garbage_file_names_the_file(structure, tmp_path):
    path = tmp_path / "junk.dcd"
    path.write_bytes(b"not a trajectory " * 20)
    with pytest.raises(ValueError, match=r"junk\.dcd.*trajectory of 22 atoms"):
        read_trajectory(path, structure)


@pytest.mark.parametrize("suffix", [".dcd", ".xtc", ".pdb"])
def test_row17_atom_count_mismatch_names_file_and_both_counts(suffix, structure, frames, tmp_path):
    path = write_trajectory(frames, structure, tmp_path / f"full{suffix}")
    heavy = structure.topology.subset(structure.topology.select("not element H"))
    with pytest.raises(ValueError, match=rf"full\{suffix}.* 22 atoms per frame.*10 atoms"):
        read_trajectory(path, heavy)


def test_row17_unexpected_frame_count_and_missing_file(structure, frames, tmp_path):
    path = write_trajectory(frames, structure, tmp_path / "f.xtc")
    with pytest.raises(ValueError, match=r"f\.xtc.* 12 frames; expected 20"):
        read_trajectory(path, structure, n_frames=20)
    with pytest.raises(FileNotFoundError, match=r"nothere\.dcd"):
        read_trajectory(tmp_path / "nothere.dcd", structure)
    with pytest.raises(ValueError, match=r"f\.xtc.* needs a topology"):
        read_trajectory(path)
