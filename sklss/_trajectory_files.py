"""Writing and reading molecular trajectory files (DCD, XTC, PDB, ...) through mdtraj.

mdtraj is part of the optional ``md`` extra, imported on first use by
:func:`sklss._optional.import_md`, so that ``import sklss`` works without it.
"""

import os
import struct
import tempfile
from pathlib import Path

import numpy as np

from ._optional import import_md

__all__ = ["read_trajectory", "write_trajectory"]

# Formats that carry their own topology; the others hold coordinates only.
_TOPOLOGY_FORMATS = {".pdb", ".pdb.gz", ".gro", ".h5", ".mol2", ".cif", ".pdbx"}


class _AtomCountError(Exception):
    def __init__(self, n_atoms):
        super().__init__(n_atoms)
        self.n_atoms = n_atoms


def _suffix(path):
    name = path.name.lower()
    return ".pdb.gz" if name.endswith(".pdb.gz") else path.suffix.lower()


def _as_topology(topology, md, *, name="topology"):
    """An ``mdtraj.Topology`` from a Topology, a Trajectory or a topology file."""
    if isinstance(topology, md.Topology):
        return topology
    if isinstance(topology, md.Trajectory):
        return topology.topology
    if isinstance(topology, (str, os.PathLike)):
        path = Path(topology)
        if not path.is_file():
            raise FileNotFoundError(f"Topology file {str(path)!r} does not exist.")
        try:
            return md.load_topology(str(path))
        except Exception as exc:
            raise ValueError(
                f"Could not read a topology from {str(path)!r}: {exc}. Expected a structure file "
                "such as PDB or GRO."
            ) from exc
    raise TypeError(
        f"The '{name}' parameter must be an mdtraj.Topology, an mdtraj.Trajectory or the path "
        f"of a topology file. Got {type(topology).__name__}."
    )


def _as_coordinates(configurations, n_atoms):
    """Configurations as a float32 array of shape ``(n_frames, n_atoms, 3)`` in nm."""
    try:
        xyz = np.asarray(configurations, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            "The 'configurations' parameter must be an array of numbers of shape "
            f"(n_frames, 3 * n_atoms) or (n_frames, n_atoms, 3); {exc}"
        ) from None
    expected = f"(n_frames, {3 * n_atoms}) or (n_frames, {n_atoms}, 3) for {n_atoms} atoms"
    if xyz.ndim == 2 and xyz.shape[1] == 3 * n_atoms:
        xyz = xyz.reshape(len(xyz), n_atoms, 3)
    elif not (xyz.ndim == 3 and xyz.shape[1:] == (n_atoms, 3)):
        raise ValueError(
            f"The configurations have shape {xyz.shape}, but the topology has {n_atoms} atoms; "
            f"expected {expected}. Write one trajectory at a time, e.g. "
            "result.configurations[i]."
        )
    if len(xyz) == 0:
        raise ValueError("The configurations hold no frames; expected at least 1.")
    bad = ~np.isfinite(xyz).all(axis=(1, 2))
    if bad.any():
        raise ValueError(
            f"The configurations contain NaN or inf, first at frame {int(np.argmax(bad))}; "
            "refusing to write a corrupt trajectory."
        )
    return xyz.astype(np.float32)


def write_trajectory(configurations, topology, path, *, dt=1.0):
    """Write configurations to a trajectory file that VMD, PyMOL and nglview open.

    The format follows the file extension (``.dcd``, ``.xtc`` and ``.pdb``, or any other
    format mdtraj writes, such as ``.trr`` or ``.gro``). The file is written to a temporary
    file next to ``path`` and then renamed, so an interrupted write never leaves a partial
    file under ``path``.

    Parameters
    ----------
    configurations : array-like of shape (n_frames, 3 * n_atoms) or (n_frames, n_atoms, 3)
        Cartesian coordinates in nm, atoms in the order of ``topology``; for instance one
        trajectory of ``LatentSpaceSimulator.sample(...).configurations``.
    topology : mdtraj.Topology, mdtraj.Trajectory or path-like
        The atoms of the configurations, or a structure file (PDB, GRO) to read them from.
        For decoded coordinates of an atom selection, pass the topology of that selection
        (``SuperposedCoordinates.topology_``).
    path : path-like
        Output file. Its directory must exist.
    dt : float, default=1.0
        Time between frames, in ps, stored in the file where the format keeps time.

    Returns
    -------
    path : pathlib.Path
        The file written.

    Notes
    -----
    XTC stores coordinates to 0.001 nm and PDB to 0.001 nm (0.01 Angstrom); DCD keeps single
    precision.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> import numpy as np
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.io import read_trajectory, write_trajectory
    >>> structure = alanine_dipeptide_structure()
    >>> xyz = np.repeat(structure.xyz, 5, axis=0)  # (5, 22, 3) in nm
    >>> with tempfile.TemporaryDirectory() as folder:
    ...     path = write_trajectory(xyz, structure.topology, Path(folder) / "ala2.dcd")
    ...     read_trajectory(path, structure.topology).n_frames
    5
    """
    md = import_md("mdtraj", feature="write_trajectory")
    top = _as_topology(topology, md)
    xyz = _as_coordinates(configurations, top.n_atoms)
    path = Path(path)
    if not path.parent.is_dir():
        raise FileNotFoundError(
            f"Cannot write {str(path)!r}: the directory {str(path.parent)!r} does not exist."
        )
    traj = md.Trajectory(xyz, top, time=np.arange(len(xyz)) * float(dt))
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=_suffix(path) or ".tmp", dir=path.parent
    )
    os.close(fd)
    try:
        try:
            traj.save(tmp, force_overwrite=True)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError) as exc:
            raise ValueError(
                f"Could not write {str(path)!r} as {_suffix(path) or 'an unknown format'}: {exc}"
            ) from exc
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def _dcd_declared_frames(path):
    """The frame count in a CHARMM/NAMD DCD header, or ``None`` when it cannot be read."""
    with open(path, "rb") as f:
        head = f.read(12)
    for order in "<>":
        if len(head) == 12 and struct.unpack(order + "i", head[:4])[0] == 84:
            if head[4:8] != b"CORD":
                return None
            n = struct.unpack(order + "i", head[8:12])[0]
            return n if n > 0 else None
    return None


def _xtc_complete_frames(path):
    """Walk the XTC frame headers: ``(complete frames, bytes left over after the last one)``.

    An XTC frame is a 52-byte header (magic 1995, atoms, step, time, box), the atom count
    again, and either raw floats (9 atoms or fewer) or 32 bytes of compression parameters, a
    byte count and the compressed bytes padded to 4. mdtraj stops quietly at a partial
    frame, so the walk is what tells a truncated file.
    """
    size = os.path.getsize(path)
    n, offset = 0, 0
    with open(path, "rb") as f:
        while offset + 56 <= size:
            f.seek(offset)
            head = f.read(92)
            magic, n_atoms = struct.unpack(">ii", head[:8])
            if magic != 1995 or n_atoms <= 0:
                return n, size - offset
            if n_atoms <= 9:
                end = offset + 56 + 12 * n_atoms
            elif len(head) < 92:
                return n, size - offset
            else:
                n_bytes = struct.unpack(">i", head[88:92])[0]
                end = offset + 92 + -(-n_bytes // 4) * 4
            if end > size:
                return n, size - offset
            n, offset = n + 1, end
    return n, size - offset


def _atoms_in_file(path, md):
    """Atoms per frame of a coordinate-only file, read from its first frame."""
    with md.open(str(path)) as f:
        first = f.read(n_frames=1)
    xyz = first[0] if isinstance(first, tuple) else first
    return int(np.shape(xyz)[1])


def read_trajectory(path, topology=None, *, n_frames=None, stride=None):
    """Read a trajectory file and check it against its topology.

    Parameters
    ----------
    path : path-like
        Trajectory file (``.dcd``, ``.xtc``, ``.pdb``, or another format mdtraj reads).
    topology : mdtraj.Topology, mdtraj.Trajectory, path-like or None, default=None
        The atoms the file should hold. Required for coordinate-only formats (DCD, XTC, TRR);
        for formats with their own topology (PDB, GRO) it is optional, and when given the
        atom counts must agree.
    n_frames : int or None, default=None
        The number of frames expected; a different count is an error.
    stride : int or None, default=None
        Read only every ``stride``-th frame (applied after the checks).

    Returns
    -------
    traj : mdtraj.Trajectory

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If the file is truncated or corrupt, holds another number of atoms than the
        topology, or another number of frames than ``n_frames``. The message names the file
        and what was expected.
    """
    md = import_md("mdtraj", feature="read_trajectory")
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Trajectory file {str(path)!r} does not exist.")
    suffix = _suffix(path)
    top = None if topology is None else _as_topology(topology, md)
    if top is None and suffix not in _TOPOLOGY_FORMATS:
        raise ValueError(
            f"Reading {str(path)!r} needs a topology: {suffix or 'this'} files hold coordinates "
            "only. Pass topology= (an mdtraj.Topology, a Trajectory or a PDB file)."
        )
    what = f"a trajectory of {top.n_atoms} atoms" if top is not None else "a trajectory"
    try:
        if suffix in _TOPOLOGY_FORMATS:
            traj = md.load(str(path))
        else:
            n_file = _atoms_in_file(path, md)
            if n_file != top.n_atoms:
                raise _AtomCountError(n_file)
            traj = md.load(str(path), top=top)
    except _AtomCountError as exc:
        raise ValueError(
            f"Trajectory file {str(path)!r} holds {exc.n_atoms} atoms per frame, but the "
            f"topology has {top.n_atoms} atoms; expected {what}."
        ) from None
    except Exception as exc:
        raise ValueError(
            f"Could not read trajectory file {str(path)!r}; it is truncated or corrupt, or not "
            f"a {suffix or 'known'} file (expected {what}): {type(exc).__name__}: {exc}"
        ) from exc
    if top is not None and traj.n_atoms != top.n_atoms:
        raise ValueError(
            f"Trajectory file {str(path)!r} holds {traj.n_atoms} atoms per frame, but the "
            f"topology has {top.n_atoms} atoms; expected {what}."
        )
    if top is not None and suffix in _TOPOLOGY_FORMATS:
        traj.topology = top
    if suffix == ".dcd":
        declared = _dcd_declared_frames(path)
        if declared is not None and declared != traj.n_frames:
            raise ValueError(
                f"Trajectory file {str(path)!r} is truncated or corrupt: its header declares "
                f"{declared} frames, but {traj.n_frames} could be read."
            )
    if suffix == ".xtc":
        complete, left_over = _xtc_complete_frames(path)
        if left_over or complete != traj.n_frames:
            raise ValueError(
                f"Trajectory file {str(path)!r} is truncated or corrupt: it ends with "
                f"{left_over} bytes of an incomplete frame after {complete} whole frames of "
                f"{top.n_atoms} atoms."
            )
    if n_frames is not None and traj.n_frames != n_frames:
        raise ValueError(
            f"Trajectory file {str(path)!r} holds {traj.n_frames} frames; expected {n_frames}."
        )
    if not np.isfinite(traj.xyz).all():
        frame = int(np.argmax(~np.isfinite(traj.xyz).all(axis=(1, 2))))
        raise ValueError(
            f"Trajectory file {str(path)!r} is corrupt: frame {frame} holds NaN or inf."
        )
    return traj[::stride] if stride else traj
