"""Internal coordinates: Z-matrices, their measurement, and NeRF reconstruction.

A Z-matrix places the atoms of a bonded molecule one after another. The first atom sits at
the origin; every later atom ``i`` is placed from up to three atoms placed before it: its
bonded parent ``j`` (bond length ``|ij|``), a second atom ``k`` (bond angle ``i-j-k``) and a
third atom ``l`` (torsion ``i-j-k-l``). Bond lengths, angles and torsions do not change when
the molecule moves rigidly, so they describe its shape alone, and Cartesian coordinates are
rebuilt from them by the natural extension reference frame (NeRF) construction.

Everything here is plain numpy in float64, vectorised over frames; the loop runs over atoms.
Lengths are in the units of the coordinates and angles in radians.
"""

from collections import deque
from typing import NamedTuple

import numpy as np

__all__ = [
    "ZMatrix",
    "angles",
    "build_zmatrix",
    "cartesian_from_internal",
    "chirality_sign",
    "dihedrals",
    "distances",
    "internal_from_cartesian",
]


class ZMatrix(NamedTuple):
    """The placement order of the atoms and the reference atoms of each.

    Attributes
    ----------
    order : ndarray of shape (n_atoms,)
        Atom indices in the order they are placed (breadth-first from the root).
    references : ndarray of shape (n_atoms, 3)
        For the atom ``order[r]``: its bonded parent ``j``, the angle atom ``k`` and the
        torsion atom ``l``, each placed before it; -1 where unused (the first atom has none,
        the second only ``j``, the third ``j`` and ``k``).
    """

    order: np.ndarray
    references: np.ndarray

    @property
    def n_atoms(self):
        return len(self.order)

    @property
    def bond_pairs(self):
        """``(i, j)`` of each bond length, shape (n_atoms - 1, 2)."""
        return np.column_stack([self.order[1:], self.references[1:, 0]])

    @property
    def angle_triples(self):
        """``(i, j, k)`` of each bond angle, shape (n_atoms - 2, 3)."""
        return np.column_stack([self.order[2:], self.references[2:, :2]])

    @property
    def torsion_quadruples(self):
        """``(i, j, k, l)`` of each torsion, shape (n_atoms - 3, 4)."""
        return np.column_stack([self.order[3:], self.references[3:]])


def _neighbour_lists(bonds, n_atoms):
    """Sorted neighbour lists of a validated bond array."""
    neighbours = [set() for _ in range(n_atoms)]
    for a, b in bonds.tolist():
        neighbours[a].add(b)
        neighbours[b].add(a)
    return [sorted(n) for n in neighbours]


def check_bonds(bonds, n_atoms):
    """``bonds`` as an int64 array of shape (n_bonds, 2) of atoms in ``[0, n_atoms)``."""
    arr = np.asarray(bonds if len(bonds) else np.empty((0, 2)))
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(
            f"bonds must be a list of atom pairs, shape (n_bonds, 2); got shape {arr.shape}."
        )
    if arr.size and not (
        np.issubdtype(arr.dtype, np.integer) or np.array_equal(arr, np.round(arr))
    ):
        raise ValueError("bonds must hold integer atom indices.")
    arr = arr.astype(np.int64)
    if arr.size and (arr.min() < 0 or arr.max() >= n_atoms):
        raise ValueError(
            f"bonds hold atom indices outside [0, {n_atoms}): min {arr.min()}, max {arr.max()}."
        )
    loops = arr[:, 0] == arr[:, 1]
    if loops.any():
        raise ValueError(f"bonds bond atom {int(arr[loops][0, 0])} to itself.")
    return arr


def build_zmatrix(bonds, n_atoms, root=0, *, branches="improper", names=None):
    """A Z-matrix of a connected molecule from its bonds.

    Atoms are placed breadth-first from ``root`` (neighbours in increasing index), so every
    atom after the root is bonded to its parent ``j``. The angle atom ``k`` is the parent of
    ``j`` and the torsion atom ``l`` the parent of ``k``, so that angles and torsions follow
    the bonded path. Where that path ends (at the root), an already placed neighbour of ``j``
    (for ``k``), or of ``k`` or ``j`` (for ``l``), stands in, and as a last resort any placed
    atom. Bonds that close rings are not used.

    At a branch, the second and later children of ``j`` take by default (``branches=
    "improper"``) the first placed child of ``j`` as ``l``: their torsion ``i-j-k-l`` is then
    an improper torsion about ``j-k`` (a "phase angle" of bond-angle-torsion coordinates),
    nearly constant for a rigid branch point, and its sign is the handedness of a
    stereocentre (for a C-alpha placed from N, the C-beta's torsion ``CB-CA-N-C``). Only the
    first child carries the soft torsion about ``j-k``. ``branches="path"`` uses the parent
    of ``k`` for every child.

    Parameters
    ----------
    bonds : array-like of shape (n_bonds, 2)
        Bonded atom pairs; the bond graph must connect all ``n_atoms`` atoms.
    n_atoms : int
        Number of atoms, at least 3.
    root : int, default=0
        The first atom.
    branches : {"improper", "path"}, default="improper"
        The torsion atom of the second and later children at a branch point, see above.
    names : list of str, default=None
        Atom names for error messages; atom indices without them.

    Returns
    -------
    zmatrix : ZMatrix
    """
    n_atoms = int(n_atoms)
    if branches not in ("improper", "path"):
        raise ValueError(f"branches must be 'improper' or 'path'; got {branches!r}.")
    if n_atoms < 3:
        raise ValueError(
            f"A Z-matrix needs at least 3 atoms; got {n_atoms}: bond lengths, angles and "
            "torsions are not defined for fewer."
        )
    bonds = check_bonds(bonds, n_atoms)
    if not 0 <= root < n_atoms:
        raise ValueError(f"root must be an atom in [0, {n_atoms}); got {root}.")
    neighbours = _neighbour_lists(bonds, n_atoms)
    parent = np.full(n_atoms, -1, dtype=np.int64)
    seen = np.zeros(n_atoms, dtype=bool)
    seen[root] = True
    order = []
    queue = deque([root])
    while queue:
        atom = queue.popleft()
        order.append(atom)
        for other in neighbours[atom]:
            if not seen[other]:
                seen[other] = True
                parent[other] = atom
                queue.append(other)
    if len(order) < n_atoms:
        name = (lambda a: str(a)) if names is None else (lambda a: str(names[a]))
        missing = np.flatnonzero(~seen)
        shown = ", ".join(name(a) for a in missing[:20]) + (", ..." if len(missing) > 20 else "")
        raise ValueError(
            f"The bonds do not connect all {n_atoms} atoms: atom(s) {shown} cannot be reached "
            f"from atom {name(root)}. Internal coordinates need a connected molecule."
        )

    rank = np.empty(n_atoms, dtype=np.int64)
    rank[order] = np.arange(n_atoms)
    references = np.full((n_atoms, 3), -1, dtype=np.int64)

    def pick(candidates, row, exclude):
        for c in candidates:
            if c >= 0 and rank[c] < row and c not in exclude:
                return int(c)
        for c in order[:row]:  # any placed atom
            if c not in exclude:
                return int(c)
        raise AssertionError("unreachable: fewer placed atoms than references")

    for row in range(1, n_atoms):
        i = order[row]
        j = int(parent[i])
        references[row, 0] = j
        if row >= 2:
            k = pick([parent[j], *neighbours[j]], row, {i, j})
            references[row, 1] = k
        if row >= 3:
            siblings = []
            if branches == "improper" and k == parent[j]:
                siblings = [s for s in neighbours[j] if parent[s] == j and rank[s] < row]
            path = [parent[k], *neighbours[k], *neighbours[j]]
            references[row, 2] = pick(siblings[:1] + path, row, {i, j, k})
    return ZMatrix(np.asarray(order, dtype=np.int64), references)


def _as_frames(xyz):
    xyz = np.asarray(xyz, dtype=np.float64)
    if xyz.ndim != 3 or xyz.shape[2] != 3:
        raise ValueError(f"xyz must have shape (n_frames, n_atoms, 3); got {xyz.shape}.")
    return xyz


def distances(xyz, pairs):
    """Distances between atom pairs, shape (n_frames, n_pairs)."""
    xyz, pairs = _as_frames(xyz), np.asarray(pairs, dtype=np.int64).reshape(-1, 2)
    return np.linalg.norm(xyz[:, pairs[:, 0]] - xyz[:, pairs[:, 1]], axis=2)


def angles(xyz, triples):
    """Angles ``a-b-c`` (at ``b``) of atom triples, in radians in [0, pi], (n_frames, n)."""
    xyz, triples = _as_frames(xyz), np.asarray(triples, dtype=np.int64).reshape(-1, 3)
    u = xyz[:, triples[:, 0]] - xyz[:, triples[:, 1]]
    v = xyz[:, triples[:, 2]] - xyz[:, triples[:, 1]]
    # atan2 of |u x v| and u . v is accurate near 0 and pi, where arccos is not.
    return np.arctan2(np.linalg.norm(np.cross(u, v), axis=2), np.sum(u * v, axis=2))


def dihedrals(xyz, quadruples):
    """Dihedral angles ``a-b-c-d`` in radians in (-pi, pi], shape (n_frames, n).

    The IUPAC convention used by mdtraj: positive when, looking along ``b -> c``, the bond
    ``c-d`` is rotated clockwise from ``b-a``. Collinear atoms give 0.
    """
    xyz, quads = _as_frames(xyz), np.asarray(quadruples, dtype=np.int64).reshape(-1, 4)
    b0 = xyz[:, quads[:, 1]] - xyz[:, quads[:, 0]]
    b1 = xyz[:, quads[:, 2]] - xyz[:, quads[:, 1]]
    b2 = xyz[:, quads[:, 3]] - xyz[:, quads[:, 2]]
    n0 = np.cross(b0, b1)
    n1 = np.cross(b1, b2)
    y = np.sum(np.cross(n0, n1) * b1, axis=2) / np.maximum(np.linalg.norm(b1, axis=2), 1e-300)
    x = np.sum(n0 * n1, axis=2)
    out = np.arctan2(y, x)
    return np.where(out <= -np.pi, out + 2.0 * np.pi, out)


def chirality_sign(xyz, center, a, b, c):
    """Sign of the signed volume ``(a - center) . ((b - center) x (c - center))``.

    For an L-amino acid's C-alpha with ``a, b, c = N, C, CB`` the sign is the same in every
    frame, and a mirror image has the other sign.

    Parameters
    ----------
    xyz : array-like of shape (n_frames, n_atoms, 3)
    center, a, b, c : int or array-like of int of shape (n_centers,)
        Atom indices.

    Returns
    -------
    sign : ndarray of shape (n_frames,) for int indices, (n_frames, n_centers) for arrays
        +1, -1, or 0 for a flat (zero-volume) arrangement.
    """
    xyz = _as_frames(xyz)
    o = xyz[:, center]
    volume = np.sum((xyz[:, a] - o) * np.cross(xyz[:, b] - o, xyz[:, c] - o), axis=-1)
    return np.sign(volume)


def internal_from_cartesian(xyz, zmatrix):
    """Bond lengths, angles and torsions of a Z-matrix, measured in Cartesian frames.

    Parameters
    ----------
    xyz : array-like of shape (n_frames, n_atoms, 3)
    zmatrix : ZMatrix

    Returns
    -------
    lengths : ndarray of shape (n_frames, n_atoms - 1)
        ``|i j|`` for the atoms ``order[1:]``.
    angles : ndarray of shape (n_frames, n_atoms - 2)
        Angle ``i-j-k`` in [0, pi] for the atoms ``order[2:]``.
    torsions : ndarray of shape (n_frames, n_atoms - 3)
        Torsion ``i-j-k-l`` in (-pi, pi] for the atoms ``order[3:]``.
    """
    xyz = _as_frames(xyz)
    if xyz.shape[1] != zmatrix.n_atoms:
        raise ValueError(f"xyz has {xyz.shape[1]} atoms, but the Z-matrix has {zmatrix.n_atoms}.")
    return (
        distances(xyz, zmatrix.bond_pairs),
        angles(xyz, zmatrix.angle_triples),
        dihedrals(xyz, zmatrix.torsion_quadruples),
    )


def _unit(v, fallback=None):
    """Unit vectors along the last axis; zero vectors become ``fallback`` (or stay 0)."""
    norm = np.linalg.norm(v, axis=-1, keepdims=True)
    tiny = norm <= 1e-12 * np.maximum(1.0, np.abs(v).max(axis=-1, keepdims=True))
    if fallback is not None and tiny.any():
        v = np.where(tiny, fallback, v)
        norm = np.linalg.norm(v, axis=-1, keepdims=True)
    return v / np.where(norm > 0, norm, 1.0)


def _any_normal(u):
    """A vector perpendicular to each unit vector ``u`` (n, 3)."""
    axis = np.zeros_like(u)
    # Cross with the coordinate axis least aligned with u.
    axis[np.arange(len(u)), np.argmin(np.abs(u), axis=1)] = 1.0
    return np.cross(u, axis)


def _place(a, b, c, length, angle, torsion):
    """NeRF: atom ``d`` with ``|cd| = length``, angle ``b-c-d`` and torsion ``a-b-c-d``.

    Where ``a``, ``b`` and ``c`` are collinear the torsion is undefined and an arbitrary
    plane through ``b-c`` is used, so the result stays finite.
    """
    bc = _unit(c - b)
    n = _unit(np.cross(b - a, bc), fallback=_any_normal(bc))
    m = np.cross(n, bc)
    r_sin = length * np.sin(angle)
    d2 = np.stack(
        [-length * np.cos(angle), r_sin * np.cos(torsion), r_sin * np.sin(torsion)], axis=1
    )
    return c + d2[:, :1] * bc + d2[:, 1:2] * m + d2[:, 2:] * n


def _as_columns(x, n_frames, n_columns, name):
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or x.shape != (n_frames, n_columns):
        raise ValueError(f"{name} must have shape ({n_frames}, {n_columns}); got {x.shape}.")
    return x


def cartesian_from_internal(lengths, angles, torsions, zmatrix):
    """Cartesian frames rebuilt from internal coordinates by NeRF.

    The first atom of ``zmatrix.order`` is put at the origin, the second on the +x axis and
    the third in the xy-plane (+y side); every later atom is placed from its three reference
    atoms. The result is the measured structure up to a rigid motion (never a reflection).

    Parameters
    ----------
    lengths : array-like of shape (n_frames, n_atoms - 1)
    angles : array-like of shape (n_frames, n_atoms - 2)
        In radians.
    torsions : array-like of shape (n_frames, n_atoms - 3)
        In radians.
    zmatrix : ZMatrix

    Returns
    -------
    xyz : ndarray of shape (n_frames, n_atoms, 3)
        Atoms in their original indices (not in placement order).
    """
    n = zmatrix.n_atoms
    lengths = np.asarray(lengths, dtype=np.float64)
    if lengths.ndim != 2:
        raise ValueError(f"lengths must be 2-D (n_frames, {n - 1}); got shape {lengths.shape}.")
    n_frames = len(lengths)
    lengths = _as_columns(lengths, n_frames, n - 1, "lengths")
    angles = _as_columns(angles, n_frames, n - 2, "angles")
    torsions = _as_columns(torsions, n_frames, n - 3, "torsions")
    order, refs = zmatrix.order, zmatrix.references
    xyz = np.zeros((n_frames, n, 3))
    xyz[:, order[1], 0] = lengths[:, 0]
    # Third atom: from j, in the xy-plane, at the angle to the direction j -> k.
    j, k = refs[2, 0], refs[2, 1]
    u = _unit(xyz[:, k] - xyz[:, j], fallback=np.array([1.0, 0.0, 0.0]))
    v = np.stack([-u[:, 1], u[:, 0], np.zeros(n_frames)], axis=1)  # u turned by +90 degrees
    xyz[:, order[2]] = xyz[:, j] + lengths[:, 1:2] * (
        np.cos(angles[:, :1]) * u + np.sin(angles[:, :1]) * v
    )
    for row in range(3, n):
        j, k, m = refs[row]
        xyz[:, order[row]] = _place(
            xyz[:, m],
            xyz[:, k],
            xyz[:, j],
            lengths[:, row - 1],
            angles[:, row - 2],
            torsions[:, row - 3],
        )
    return xyz
