"""Featurisers that turn ``mdtraj.Trajectory`` objects into arrays for the encoder and decoder.

The encoder of a latent space simulator needs features that do not change when the molecule
is translated or rotated: :class:`Torsions` (backbone and side-chain dihedrals as sin/cos
pairs) and :class:`PairwiseDistances`. :class:`TrajectoryFeatureUnion`, built for instance
by :func:`make_encoder_features`, concatenates them as the LSS paper does. The decoder is
trained on :class:`SuperposedCoordinates`, Cartesian coordinates Kabsch-aligned to a
reference structure, whose ``inverse_transform`` turns generated configurations back into an
``mdtraj.Trajectory`` that can be analysed or written with :func:`sklss.io.write_trajectory`.

Every featuriser takes one ``mdtraj.Trajectory`` (and returns a 2-D array) or a list of them
(and returns a list of arrays, one per trajectory), so trajectory boundaries are kept for the
lagged pairs of the encoder and propagator. mdtraj is the optional ``md`` extra
(``pip install "sklss[md]"``) and is imported only when a featuriser is fitted or used.
"""

from numbers import Integral

import numpy as np
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.pipeline import FeatureUnion
from sklearn.utils.validation import check_is_fitted

from ._compat import StrOptions, _fit_context
from ._optional import import_md
from ._validation import as_float_trajectories, as_output_form, is_trajectory_list
from ._zmatrix import build_zmatrix, cartesian_from_internal, check_bonds, internal_from_cartesian

__all__ = [
    "InternalCoordinates",
    "PairwiseDistances",
    "SuperposedCoordinates",
    "Torsions",
    "TrajectoryFeatureUnion",
    "make_encoder_features",
]

_BACKBONE = ("phi", "psi", "omega")
_SIDECHAIN = ("chi1", "chi2", "chi3", "chi4", "chi5")
# Shorthands accepted wherever an atom selection is; anything else goes to mdtraj's select.
_SELECTIONS = {"ca": "name CA", "heavy": "not element H", "all": "all", "backbone": "backbone"}


def _trajectories(X, md, name="X"):
    """``X`` as a list of trajectories, and whether it came as a list."""
    is_list = isinstance(X, (list, tuple))
    trajs = list(X) if is_list else [X]
    if not trajs:
        raise ValueError(f"{name} is an empty list; expected at least one mdtraj.Trajectory.")
    for i, traj in enumerate(trajs):
        if not isinstance(traj, md.Trajectory):
            where = f"{name}[{i}]" if is_list else name
            raise TypeError(
                f"{where} must be an mdtraj.Trajectory; got {type(traj).__name__}. Load files "
                "with mdtraj.load or sklss.io.read_trajectory."
            )
    return trajs, is_list


def _check_atoms(trajs, n_atoms, estimator, is_list):
    """Every trajectory has the fitted number of atoms and finite coordinates."""
    for i, traj in enumerate(trajs):
        where = f"trajectory {i}" if is_list else "the trajectory"
        if traj.n_atoms != n_atoms:
            raise ValueError(
                f"X has {traj.n_atoms} atoms in {where}, but {type(estimator).__name__} was "
                f"fitted on a topology of {n_atoms} atoms."
            )
        bad = ~np.isfinite(traj.xyz).all(axis=(1, 2))
        if bad.any():
            raise ValueError(
                f"X contains NaN or inf coordinates in {where}, frame {int(np.argmax(bad))}."
            )


def _select(topology, selection, name="selection"):
    """Atom indices from a selection string (or shorthand) or an array of indices."""
    if isinstance(selection, str):
        query = _SELECTIONS.get(selection.lower(), selection)
        try:
            indices = topology.select(query)
        except Exception as exc:
            raise ValueError(
                f"The '{name}' parameter {selection!r} is not a valid mdtraj selection: {exc}"
            ) from exc
    else:
        indices = np.asarray(selection)
        if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
            raise ValueError(
                f"The '{name}' parameter must be a selection string or a 1-D array of atom "
                f"indices; got an array of shape {indices.shape} and dtype {indices.dtype}."
            )
        if len(indices) and (indices.min() < 0 or indices.max() >= topology.n_atoms):
            raise ValueError(
                f"The '{name}' parameter holds atom indices outside [0, {topology.n_atoms}): "
                f"min {indices.min()}, max {indices.max()}."
            )
        if len(np.unique(indices)) != len(indices):
            raise ValueError(f"The '{name}' parameter holds repeated atom indices.")
    return np.asarray(indices, dtype=np.int64)


def _atom_label(atom):
    return f"{atom.residue.name}{atom.residue.resSeq}-{atom.name}"


def _decoded_arrays(X, n_out, expected, dtype):
    """Decoded rows for ``inverse_transform``: checked 2-D arrays, and whether X was several.

    ``X`` is one array of shape (n_frames, n_out), a list of them, or a 3-D array of shape
    (n_trajectories, n_frames, n_out); a wrong width or a non-finite row is an error naming
    the trajectory, the frame and ``expected`` (what the columns should be).
    """
    if isinstance(X, (list, tuple)):
        arrays, is_list = list(X), True
    else:
        arr = np.asarray(X)
        is_list = arr.ndim == 3
        arrays = list(arr) if is_list else [arr]
    out = []
    for i, arr in enumerate(arrays):
        arr = np.asarray(arr, dtype=dtype)
        where = f"trajectory {i}" if is_list else "X"
        if arr.ndim != 2 or arr.shape[1] != n_out:
            raise ValueError(
                f"{where} has shape {arr.shape}; expected (n_frames, {n_out}) {expected}."
            )
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            raise ValueError(f"{where} contains NaN or inf at frame {int(np.argmax(bad))}.")
        out.append(arr)
    return out, is_list


class _TrajectoryFeaturizer(TransformerMixin, BaseEstimator):
    """Shared ``fit``/``transform`` plumbing: fit reads the topology, transform featurises."""

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Read the atoms to use from the topology of ``X``.

        Parameters
        ----------
        X : mdtraj.Trajectory or list of mdtraj.Trajectory
            Training trajectories; all must share one topology.
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted featuriser.
        """
        md = import_md("mdtraj", feature=type(self).__name__)
        trajs, is_list = _trajectories(X, md)
        first = trajs[0]
        _check_atoms(trajs, first.n_atoms, self, is_list)
        self.n_atoms_in_ = first.n_atoms
        self._fit_topology(first, trajs, md)
        return self

    def transform(self, X):
        """Featurise ``X``.

        Parameters
        ----------
        X : mdtraj.Trajectory or list of mdtraj.Trajectory
            Trajectories with the fitted topology.

        Returns
        -------
        features : ndarray of shape (n_frames, n_features_out) or list of them
            One 2-D float32 array per trajectory; a list for a list.
        """
        check_is_fitted(self)
        md = import_md("mdtraj", feature=type(self).__name__)
        trajs, is_list = _trajectories(X, md)
        _check_atoms(trajs, self.n_atoms_in_, self, is_list)
        return as_output_form([self._featurize(t, md) for t in trajs], is_list)

    def fit_transform(self, X, y=None):
        """Fit to ``X`` and featurise it; see :meth:`fit` and :meth:`transform`."""
        return self.fit(X).transform(X)

    def get_feature_names_out(self, input_features=None):
        """Names of the output features.

        Parameters
        ----------
        input_features : None
            Ignored; the names come from the fitted topology.

        Returns
        -------
        names : ndarray of str of shape (n_features_out,)
        """
        check_is_fitted(self)
        return np.asarray(self.feature_names_, dtype=object)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.two_d_array = False
        return tags


class Torsions(_TrajectoryFeaturizer):
    """Backbone and side-chain torsion angles, as sin/cos pairs.

    The angles follow mdtraj's definitions (:func:`mdtraj.compute_phi` and its siblings):
    phi (C-N-CA-C), psi (N-CA-C-N), omega (CA-C-N-CA) and the side-chain chi angles. Caps
    without a C-alpha (ACE, NME) give no omega, so alanine dipeptide has one phi and one psi.

    Parameters
    ----------
    angles : "all", "backbone", "sidechain" or list of str, default="all"
        Which torsions: any of ``"phi", "psi", "omega", "chi1", ..., "chi5"``. Kinds absent
        from the molecule are skipped; finding no torsion at all is an error at ``fit``.
    cossin : bool, default=True
        Return ``sin`` and ``cos`` of each angle (two features per angle, sin first), which
        is continuous across the +-pi boundary. ``False`` returns angles in radians in
        ``(-pi, pi]``.
    periodic : bool, default=True
        Use the minimum image convention when the trajectory has a unit cell.

    Attributes
    ----------
    indices_ : ndarray of shape (n_angles, 4)
        Atom indices of each torsion, grouped by kind in the order of ``angles``.
    angle_names_ : list of str
        One name per torsion, such as ``"phi ALA2"``.
    feature_names_ : list of str
        One name per output feature, such as ``"sin(phi ALA2)"``.
    n_atoms_in_ : int
        Atoms in the fitted topology.

    See Also
    --------
    PairwiseDistances, make_encoder_features

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import Torsions
    >>> structure = alanine_dipeptide_structure()
    >>> torsions = Torsions().fit(structure)
    >>> list(torsions.get_feature_names_out())
    ['sin(phi ALA2)', 'cos(phi ALA2)', 'sin(psi ALA2)', 'cos(psi ALA2)']
    >>> torsions.transform(structure).shape
    (1, 4)
    """

    _parameter_constraints = {
        "angles": [StrOptions({"all", "backbone", "sidechain"}), list, tuple],
        "cossin": ["boolean"],
        "periodic": ["boolean"],
    }

    def __init__(self, angles="all", *, cossin=True, periodic=True):
        self.angles = angles
        self.cossin = cossin
        self.periodic = periodic

    def _kinds(self):
        if isinstance(self.angles, str):
            return {
                "all": _BACKBONE + _SIDECHAIN,
                "backbone": _BACKBONE,
                "sidechain": _SIDECHAIN,
            }[self.angles]
        kinds = tuple(self.angles)
        unknown = [k for k in kinds if k not in _BACKBONE + _SIDECHAIN]
        if unknown or not kinds:
            raise ValueError(
                "The 'angles' parameter must be 'all', 'backbone', 'sidechain' or a non-empty "
                f"list of {list(_BACKBONE + _SIDECHAIN)}. Got {self.angles!r}."
            )
        return kinds

    def _fit_topology(self, first, trajs, md):
        indices, names = [], []
        for kind in self._kinds():
            found, _ = getattr(md, f"compute_{kind}")(first[:1])
            for quad in found:
                residue = first.topology.atom(int(quad[1])).residue
                names.append(f"{kind} {residue.name}{residue.resSeq}")
                indices.append(quad)
        if not indices:
            raise ValueError(
                f"No torsion of kinds {list(self._kinds())} was found in the topology "
                f"({first.topology}); check the residue and atom names, or use "
                "PairwiseDistances."
            )
        self.indices_ = np.asarray(indices, dtype=np.int64)
        self.angle_names_ = names
        if self.cossin:
            self.feature_names_ = [f"{f}({n})" for n in names for f in ("sin", "cos")]
        else:
            self.feature_names_ = list(names)

    def _featurize(self, traj, md):
        angles = md.compute_dihedrals(traj, self.indices_, periodic=self.periodic)
        if not self.cossin:
            return angles.astype(np.float32, copy=False)
        out = np.empty((len(angles), 2 * angles.shape[1]), dtype=np.float32)
        out[:, 0::2] = np.sin(angles)
        out[:, 1::2] = np.cos(angles)
        return out


class PairwiseDistances(_TrajectoryFeaturizer):
    """Distances between pairs of selected atoms, in nm.

    Parameters
    ----------
    selection : str or array-like of int, default="name CA"
        The atoms: an mdtraj selection string, one of the shorthands ``"ca"``, ``"heavy"``
        (every atom but hydrogen), ``"backbone"``, ``"all"``, or an array of atom indices.
        Alanine dipeptide has a single C-alpha, so use ``"heavy"`` there.
    exclude_neighbors : int, default=0
        Skip pairs of atoms whose residues are this many or fewer apart in sequence (PyEMMA's
        ``excluded_neighbors``; 2 is usual for C-alpha distances). 0 keeps every pair.
    periodic : bool, default=True
        Use the minimum image convention when the trajectory has a unit cell.

    Attributes
    ----------
    atom_indices_ : ndarray of shape (n_selected,)
        The selected atoms.
    pairs_ : ndarray of shape (n_pairs, 2)
        The atom pairs, in the order of the output features.
    feature_names_ : list of str
        Names such as ``"dist(ACE1-C, ALA2-CA)"``.
    n_atoms_in_ : int
        Atoms in the fitted topology.

    See Also
    --------
    Torsions, make_encoder_features

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import PairwiseDistances
    >>> structure = alanine_dipeptide_structure()
    >>> PairwiseDistances("heavy").fit_transform(structure).shape  # 10 heavy atoms
    (1, 45)
    """

    _parameter_constraints = {
        "selection": [str, "array-like"],
        "exclude_neighbors": [Integral],
        "periodic": ["boolean"],
    }

    def __init__(self, selection="name CA", *, exclude_neighbors=0, periodic=True):
        self.selection = selection
        self.exclude_neighbors = exclude_neighbors
        self.periodic = periodic

    def _fit_topology(self, first, trajs, md):
        if self.exclude_neighbors < 0:
            raise ValueError(
                "The 'exclude_neighbors' parameter must be an int in the range [0, inf). "
                f"Got {self.exclude_neighbors!r}."
            )
        top = first.topology
        atoms = _select(top, self.selection)
        i, j = np.triu_indices(len(atoms), k=1)
        pairs = np.column_stack([atoms[i], atoms[j]])
        if self.exclude_neighbors and len(pairs):
            res = np.array([top.atom(int(a)).residue.index for a in range(top.n_atoms)])
            pairs = pairs[np.abs(res[pairs[:, 0]] - res[pairs[:, 1]]) > self.exclude_neighbors]
        if len(pairs) == 0:
            raise ValueError(
                f"The 'selection' parameter {self.selection!r} gives {len(atoms)} atom(s) and "
                f"no pair (exclude_neighbors={self.exclude_neighbors}); at least two atoms are "
                "needed. For a small molecule such as alanine dipeptide, which has one C-alpha, "
                "use selection='heavy'."
            )
        self.atom_indices_ = atoms
        self.pairs_ = pairs
        self.feature_names_ = [
            f"dist({_atom_label(top.atom(int(a)))}, {_atom_label(top.atom(int(b)))})"
            for a, b in pairs
        ]

    def _featurize(self, traj, md):
        return md.compute_distances(traj, self.pairs_, periodic=self.periodic).astype(
            np.float32, copy=False
        )


def _kabsch(xyz, reference):
    """Rotate each centred frame of ``xyz`` (n, N, 3) onto the centred ``reference`` (N, 3)."""
    covariance = np.einsum("fni,nj->fij", xyz, reference)
    u, _, vt = np.linalg.svd(covariance)
    # A reflection is not a rigid motion: flip the last axis where det(u vt) < 0.
    sign = np.sign(np.linalg.det(u @ vt))
    u[:, :, -1] *= sign[:, None]
    return xyz @ (u @ vt)


class SuperposedCoordinates(_TrajectoryFeaturizer):
    """Cartesian coordinates of selected atoms, superposed on a reference structure.

    Each frame is translated to put the selected atoms' centroid at the origin and rotated
    to the least-squares fit (Kabsch) on the reference, then flattened to
    ``(x_1, y_1, z_1, x_2, ...)`` in nm. These are the decoder's targets in a latent space
    simulator; :meth:`inverse_transform` turns decoded configurations back into an
    ``mdtraj.Trajectory`` of the selected atoms.

    Parameters
    ----------
    selection : str or array-like of int, default="all"
        The atoms to superpose and output: an mdtraj selection string, a shorthand
        (``"ca"``, ``"heavy"``, ``"backbone"``, ``"all"``) or an array of atom indices.
    reference : mdtraj.Trajectory or None, default=None
        Structure to superpose on, with the same topology as the data; ``None`` takes the
        first frame of the first training trajectory.
    reference_frame : int, default=0
        Which frame of ``reference`` to use.

    Attributes
    ----------
    atom_indices_ : ndarray of shape (n_selected,)
        The selected atoms in the full topology.
    reference_xyz_ : ndarray of shape (n_selected, 3)
        The reference's selected atoms, centred at the origin, in nm.
    topology_ : mdtraj.Topology
        Topology of the selected atoms, for :meth:`inverse_transform` and
        :func:`sklss.io.write_trajectory`.
    feature_names_ : list of str
        Names such as ``"ALA2-CA x"``.
    n_atoms_in_ : int
        Atoms in the fitted topology.

    See Also
    --------
    sklss.io.write_trajectory

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import SuperposedCoordinates
    >>> structure = alanine_dipeptide_structure()
    >>> superposed = SuperposedCoordinates("heavy").fit(structure)
    >>> Y = superposed.transform(structure)
    >>> Y.shape
    (1, 30)
    >>> superposed.inverse_transform(Y).n_atoms
    10
    """

    _parameter_constraints = {
        "selection": [str, "array-like"],
        "reference": "no_validation",
        "reference_frame": [Integral],
    }

    def __init__(self, selection="all", *, reference=None, reference_frame=0):
        self.selection = selection
        self.reference = reference
        self.reference_frame = reference_frame

    def _fit_topology(self, first, trajs, md):
        reference = first if self.reference is None else self.reference
        if not isinstance(reference, md.Trajectory):
            raise TypeError(
                "The 'reference' parameter must be None or an mdtraj.Trajectory; got "
                f"{type(reference).__name__}."
            )
        if reference.n_atoms != first.n_atoms:
            raise ValueError(
                f"The reference structure has {reference.n_atoms} atoms, but the trajectories "
                f"have {first.n_atoms}; they must share one topology."
            )
        if not -reference.n_frames <= self.reference_frame < reference.n_frames:
            raise ValueError(
                f"The 'reference_frame' parameter must be in [0, {reference.n_frames}) for a "
                f"reference of {reference.n_frames} frames. Got {self.reference_frame!r}."
            )
        atoms = _select(first.topology, self.selection)
        if len(atoms) < 3:
            raise ValueError(
                f"The 'selection' parameter {self.selection!r} gives {len(atoms)} atom(s); "
                "superposition needs at least 3."
            )
        ref = reference.xyz[self.reference_frame, atoms].astype(np.float64)
        if not np.isfinite(ref).all():
            raise ValueError("The reference structure contains NaN or inf coordinates.")
        self.atom_indices_ = atoms
        self.reference_xyz_ = ref - ref.mean(axis=0)
        self.topology_ = first.topology.subset(atoms)
        labels = [_atom_label(first.topology.atom(int(a))) for a in atoms]
        self.feature_names_ = [f"{label} {axis}" for label in labels for axis in "xyz"]

    def _featurize(self, traj, md):
        xyz = traj.xyz[:, self.atom_indices_].astype(np.float64)
        xyz -= xyz.mean(axis=1, keepdims=True)
        aligned = _kabsch(xyz, self.reference_xyz_)
        return aligned.reshape(len(aligned), -1).astype(np.float32)

    def inverse_transform(self, X, *, dt=1.0):
        """Rebuild trajectories of the selected atoms from flattened coordinates.

        Parameters
        ----------
        X : array-like of shape (n_frames, 3 * n_selected), a list of them, or an array of
            shape (n_trajectories, n_frames, 3 * n_selected)
            Coordinates in nm, such as ``LatentSpaceSimulator.sample(...).configurations``.
        dt : float, default=1.0
            Time between frames, in ps, stored in the trajectories' ``time``.

        Returns
        -------
        traj : mdtraj.Trajectory or list of mdtraj.Trajectory
            With topology ``topology_``; a list for a list or a 3-D array.
        """
        check_is_fitted(self)
        md = import_md("mdtraj", feature="SuperposedCoordinates.inverse_transform")
        n_out = 3 * len(self.atom_indices_)
        arrays, is_list = _decoded_arrays(
            X, n_out, f"for {len(self.atom_indices_)} atoms", np.float32
        )
        trajs = []
        for arr in arrays:
            time = float(dt) * np.arange(len(arr))
            trajs.append(md.Trajectory(arr.reshape(len(arr), -1, 3), self.topology_, time=time))
        return as_output_form(trajs, is_list)


def _is_array_input(X):
    """Whether ``X`` holds coordinate arrays rather than ``mdtraj.Trajectory`` objects."""
    first = X[0] if isinstance(X, (list, tuple)) and len(X) else X
    return not (hasattr(first, "xyz") and hasattr(first, "topology"))


class InternalCoordinates(_TrajectoryFeaturizer):
    """Bond lengths, bond angles and torsions (as sin/cos) of a bonded set of atoms.

    The selected atoms are ordered into a Z-matrix, breadth-first along the bonds from the
    first selected atom: every atom after the first is bonded to an atom placed before it,
    which gives one bond length, and from the third (fourth) atom on, one bond angle (and one
    torsion) with atoms placed before it, along the bonded path where possible. For ``n``
    atoms the features are the ``n - 1`` bond lengths (nm), the ``n - 2`` angles (rad), then
    ``sin`` and ``cos`` of the ``n - 3`` torsions, so ``4 n - 9`` in all.

    As decoder targets they keep generated molecules physically valid where Cartesian
    coordinates do not: every bond length and angle is a feature of its own, rather than a
    difference of two noisy positions, and the torsions fix the handedness of every
    stereocentre. :meth:`inverse_transform` rebuilds Cartesian coordinates by the natural
    extension reference frame (NeRF) construction and superposes them on the first training
    frame, as :class:`SuperposedCoordinates` outputs them.

    Input is ``mdtraj.Trajectory`` objects, whose topology gives the bonds, or, for toy
    systems without a topology, trajectory data of flattened Cartesian coordinates
    ``(n_frames, 3 * n_atoms)`` (``x_1, y_1, z_1, x_2, ...``), which needs ``bonds``.
    Molecules must be whole: coordinates are not unwrapped across periodic boundaries.

    Parameters
    ----------
    selection : str or array-like of int, default="heavy"
        The atoms: an mdtraj selection string, a shorthand (``"heavy"``, ``"ca"``,
        ``"backbone"``, ``"all"``) or an array of atom indices. Array input has no elements
        or names: ``"heavy"`` and ``"all"`` there take every atom, other strings are errors,
        and an array of indices selects atoms.
    bonds : array-like of shape (n_bonds, 2) or None, default=None
        Bonded pairs of atom indices of the input (the topology's, or the arrays' atoms), all
        among the selected atoms; they must connect the selection. ``None`` takes the bonds of
        the topology between selected atoms (an error for array input). Bonds that close a
        ring are not used.

    Attributes
    ----------
    atom_indices_ : ndarray of shape (n_selected,)
        The selected atoms of the input.
    bonds_ : ndarray of shape (n_bonds, 2)
        The bonds used to build the Z-matrix, as atom indices of the input.
    zmatrix_ : ZMatrix
        Placement order and reference atoms ``(j, k, l)``, as positions in
        ``atom_indices_``.
    reference_xyz_ : ndarray of shape (n_selected, 3)
        The first training frame's selected atoms, centred at the origin, in nm: the frame
        :meth:`inverse_transform` superposes on.
    topology_ : mdtraj.Topology or None
        Topology of the selected atoms; ``None`` after fitting on arrays.
    feature_names_ : list of str
        Names such as ``"bond ALA2-CB ALA2-CA"``, ``"angle ALA2-CB ALA2-CA ALA2-N"`` and
        ``"sin torsion ALA2-CB ALA2-CA ALA2-N ACE1-C"``; ``atom3`` labels atom 3 of arrays.
    n_atoms_in_ : int
        Atoms in the fitted input.

    See Also
    --------
    SuperposedCoordinates : Cartesian decoder targets.

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import InternalCoordinates
    >>> structure = alanine_dipeptide_structure()
    >>> internal = InternalCoordinates("heavy").fit(structure)
    >>> Y = internal.transform(structure)
    >>> Y.shape  # 9 bonds, 8 angles, 7 torsions as sin and cos
    (1, 31)
    >>> internal.feature_names_[0]
    'bond ACE1-C ACE1-CH3'
    >>> internal.inverse_transform(Y).n_atoms
    10

    Arrays of flattened coordinates, here a chain of four atoms:

    >>> import numpy as np
    >>> xyz = np.array([[0.0, 0, 0, 0.15, 0, 0, 0.2, 0.14, 0, 0.35, 0.15, 0.05]])
    >>> chain = InternalCoordinates(bonds=[(0, 1), (1, 2), (2, 3)]).fit(xyz)
    >>> chain.transform(xyz).shape
    (1, 7)
    >>> chain.inverse_transform(chain.transform(xyz)).shape
    (1, 12)
    """

    _parameter_constraints = {
        "selection": [str, "array-like"],
        "bonds": ["array-like", None],
    }

    def __init__(self, selection="heavy", *, bonds=None):
        self.selection = selection
        self.bonds = bonds

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Build the Z-matrix from the bonds and keep the first frame as the reference.

        Parameters
        ----------
        X : mdtraj.Trajectory, list of mdtraj.Trajectory, or array-like of shape
            (n_frames, 3 * n_atoms) or a list of them
            Training trajectories sharing one topology, or flattened Cartesian coordinates
            (which need ``bonds``).
        y : None
            Ignored.

        Returns
        -------
        self : object
            The fitted featuriser.
        """
        if _is_array_input(X):
            trajs = self._coordinate_arrays(X, n_atoms=None)
            self.n_atoms_in_ = trajs[0].shape[1]
            self._fit_atoms(trajs[0][0], None, None)
            return self
        md = import_md("mdtraj", feature=type(self).__name__)
        trajs, is_list = _trajectories(X, md)
        first = trajs[0]
        _check_atoms(trajs, first.n_atoms, self, is_list)
        self.n_atoms_in_ = first.n_atoms
        self._fit_topology(first, trajs, md)
        return self

    def _coordinate_arrays(self, X, n_atoms):
        """Array input as a list of float64 arrays of shape (n_frames, n_atoms, 3)."""
        if self.bonds is None and n_atoms is None:
            raise ValueError(
                "InternalCoordinates needs the 'bonds' parameter for array input: arrays of "
                "flattened coordinates carry no topology. Pass bonds=[(i, j), ...], or pass "
                "mdtraj.Trajectory objects."
            )
        trajs = as_float_trajectories(X, "X")
        out = []
        for i, t in enumerate(trajs):
            where = f"trajectory {i}" if len(trajs) > 1 else "X"
            width = t.shape[1]
            if width % 3 or (n_atoms is not None and width != 3 * n_atoms):
                expected = "3 * n_atoms" if n_atoms is None else f"{3 * n_atoms}"
                raise ValueError(
                    f"{where} has {width} columns; expected {expected} flattened Cartesian "
                    "coordinates (x_1, y_1, z_1, x_2, ...)"
                    + ("" if n_atoms is None else f" for the fitted {n_atoms} atoms")
                    + "."
                )
            if i and width != trajs[0].shape[1]:
                raise ValueError(
                    f"All trajectories in X must have the same number of columns: trajectory 0 "
                    f"has {trajs[0].shape[1]}, trajectory {i} has {width}."
                )
            out.append(t.reshape(len(t), -1, 3))
        return out

    def _fit_topology(self, first, trajs, md):
        top = first.topology
        self._fit_atoms(first.xyz[0].astype(np.float64), top, md)

    def _fit_atoms(self, frame, top, md):
        """Select atoms, read the bonds, build the Z-matrix; ``top`` is None for arrays."""
        n_in = self.n_atoms_in_
        if top is None:
            if isinstance(self.selection, str):
                if self.selection.lower() not in ("heavy", "all"):
                    raise ValueError(
                        f"The 'selection' parameter {self.selection!r} needs a topology; for "
                        "array input use 'all' (or the default 'heavy', which also takes "
                        "every atom) or an array of atom indices."
                    )
                atoms = np.arange(n_in)
            else:
                atoms = _select(_IndexOnlyTopology(n_in), self.selection)
            labels = [f"atom{a}" for a in range(n_in)]
        else:
            atoms = _select(top, self.selection)
            labels = [_atom_label(atom) for atom in top.atoms]
        if len(atoms) < 3:
            raise ValueError(
                f"The 'selection' parameter {self.selection!r} gives {len(atoms)} atom(s); "
                "internal coordinates need at least 3 bonded atoms."
            )
        position = np.full(n_in, -1, dtype=np.int64)
        position[atoms] = np.arange(len(atoms))
        if self.bonds is not None:
            bonds = check_bonds(self.bonds, n_in)
            outside = position[bonds] < 0
            if outside.any():
                a = int(bonds[outside][0])
                raise ValueError(
                    f"The 'bonds' parameter bonds atom {a} ({labels[a]}), which is not among "
                    f"the atoms of the 'selection' parameter {self.selection!r}."
                )
        else:
            pairs = [(a.index, b.index) for a, b in top.bonds]
            bonds = np.array(pairs, dtype=np.int64).reshape(-1, 2)
            if len(bonds) == 0:
                raise ValueError(
                    "The topology has no bonds. Add them with topology.create_standard_bonds() "
                    "(or load a file that has them), or pass the 'bonds' parameter."
                )
            bonds = bonds[(position[bonds] >= 0).all(axis=1)]
        names = [labels[a] for a in atoms]
        zmatrix = build_zmatrix(position[bonds], len(atoms), names=names)
        ref = frame[atoms]
        self.atom_indices_ = atoms
        self.bonds_ = bonds
        self.zmatrix_ = zmatrix
        self.reference_xyz_ = ref - ref.mean(axis=0)
        self.topology_ = None if top is None else top.subset(atoms)

        def label(positions):
            return " ".join(names[p] for p in positions)

        self.feature_names_ = (
            [f"bond {label(p)}" for p in zmatrix.bond_pairs]
            + [f"angle {label(p)}" for p in zmatrix.angle_triples]
            + [
                f"{f} torsion {label(p)}"
                for f in ("sin", "cos")
                for p in zmatrix.torsion_quadruples
            ]
        )

    def _features(self, xyz):
        lengths, angles, torsions = internal_from_cartesian(xyz, self.zmatrix_)
        return np.hstack([lengths, angles, np.sin(torsions), np.cos(torsions)]).astype(np.float32)

    def _featurize(self, traj, md):
        return self._features(traj.xyz[:, self.atom_indices_].astype(np.float64))

    def transform(self, X):
        """Bond lengths, angles and torsions (sin, cos) of ``X``.

        Parameters
        ----------
        X : mdtraj.Trajectory, list of mdtraj.Trajectory, or array-like of shape
            (n_frames, 3 * n_atoms) or a list of them
            The same kind of input as in :meth:`fit`.

        Returns
        -------
        features : ndarray of shape (n_frames, n_features_out) or list of them
            One 2-D float32 array per trajectory; a list for a list.
        """
        check_is_fitted(self)
        arrays = _is_array_input(X)
        if arrays != (self.topology_ is None):
            fitted = "arrays" if self.topology_ is None else "mdtraj trajectories"
            given = "arrays" if arrays else "mdtraj trajectories"
            raise TypeError(
                f"InternalCoordinates was fitted on {fitted}, but X holds {given}; pass the "
                "same kind of input to fit and transform."
            )
        if not arrays:
            return super().transform(X)
        trajs = self._coordinate_arrays(X, n_atoms=self.n_atoms_in_)
        out = [self._features(t[:, self.atom_indices_]) for t in trajs]
        return as_output_form(out, is_trajectory_list(X))

    def inverse_transform(self, X, *, dt=1.0):
        """Rebuild the selected atoms' coordinates from internal coordinates (NeRF).

        Torsions are ``atan2(sin, cos)``, so the pair need not lie on the unit circle. The
        rebuilt frames are centred and superposed (Kabsch) on ``reference_xyz_``.

        Parameters
        ----------
        X : array-like of shape (n_frames, n_features_out), a list of them, or an array of
            shape (n_trajectories, n_frames, n_features_out)
            Internal coordinates in the order of ``feature_names_``, such as decoded
            configurations.
        dt : float, default=1.0
            Time between frames, in ps, stored in the trajectories' ``time``.

        Returns
        -------
        traj : mdtraj.Trajectory or list of mdtraj.Trajectory, or ndarray
            With topology ``topology_``; a list for a list or a 3-D array. After fitting on
            arrays: flattened coordinates of shape (n_frames, 3 * n_selected) in nm (float64),
            or a list of them.
        """
        check_is_fitted(self)
        n = len(self.atom_indices_)
        n_out = len(self.feature_names_)
        expected = (
            f"internal coordinates for {n} atoms ({n - 1} bond lengths, {n - 2} angles, and "
            f"sin and cos of {n - 3} torsions)"
        )
        arrays, is_list = _decoded_arrays(X, n_out, expected, np.float64)
        md = None
        if self.topology_ is not None:
            md = import_md("mdtraj", feature="InternalCoordinates.inverse_transform")
        out = []
        for arr in arrays:
            a, b, c = n - 1, 2 * n - 3, 3 * n - 6
            torsions = np.arctan2(arr[:, b:c], arr[:, c:])
            xyz = cartesian_from_internal(arr[:, :a], arr[:, a:b], torsions, self.zmatrix_)
            xyz = _kabsch(xyz - xyz.mean(axis=1, keepdims=True), self.reference_xyz_)
            if md is None:
                out.append(xyz.reshape(len(xyz), 3 * n))
            else:
                time = float(dt) * np.arange(len(xyz))
                out.append(md.Trajectory(xyz.astype(np.float32), self.topology_, time=time))
        return as_output_form(out, is_list)


class _IndexOnlyTopology:
    """Just enough of a topology for :func:`_select` to check an array of atom indices."""

    def __init__(self, n_atoms):
        self.n_atoms = n_atoms


class TrajectoryFeatureUnion(FeatureUnion):
    """:class:`sklearn.pipeline.FeatureUnion` that keeps lists of trajectories apart.

    scikit-learn's ``FeatureUnion`` stacks its transformers' outputs side by side, which
    works for one ``mdtraj.Trajectory`` but not for a list of them. This union featurises
    each trajectory of a list separately and returns a list of arrays (one per
    trajectory); a single trajectory gives a single 2-D array. The parameters are those of
    ``FeatureUnion``.

    See Also
    --------
    make_encoder_features

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import PairwiseDistances, Torsions, TrajectoryFeatureUnion
    >>> structure = alanine_dipeptide_structure()
    >>> union = TrajectoryFeatureUnion(
    ...     [("torsions", Torsions()), ("distances", PairwiseDistances("heavy"))]
    ... )
    >>> [x.shape for x in union.fit_transform([structure, structure])]
    [(1, 49), (1, 49)]
    """

    def fit_transform(self, X, y=None, **params):
        """Fit every featuriser on ``X`` and concatenate their features."""
        return self.fit(X, y, **params).transform(X)

    def transform(self, X, **params):
        """Concatenate the features of every featuriser, trajectory by trajectory.

        Parameters
        ----------
        X : mdtraj.Trajectory or list of mdtraj.Trajectory

        Returns
        -------
        features : ndarray of shape (n_frames, n_features_out) or list of them
        """
        if isinstance(X, (list, tuple)):
            return [super(TrajectoryFeatureUnion, self).transform(x, **params) for x in X]
        return super().transform(X, **params)


def make_encoder_features(selection="name CA", *, angles="all", exclude_neighbors=0):
    """The LSS paper's encoder input: torsions (sin/cos) plus pairwise distances.

    Parameters
    ----------
    selection : str or array-like of int, default="name CA"
        Atoms for the pairwise distances (see :class:`PairwiseDistances`); ``"heavy"`` for a
        molecule as small as alanine dipeptide.
    angles : "all", "backbone", "sidechain" or list of str, default="all"
        Torsions to include (see :class:`Torsions`).
    exclude_neighbors : int, default=0
        Passed to :class:`PairwiseDistances`.

    Returns
    -------
    union : TrajectoryFeatureUnion
        With steps ``"torsions"`` and ``"distances"``.

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> from sklss.features import make_encoder_features
    >>> features = make_encoder_features("heavy")
    >>> features.fit_transform(alanine_dipeptide_structure()).shape  # 2 x 2 + 45
    (1, 49)
    """
    return TrajectoryFeatureUnion(
        [
            ("torsions", Torsions(angles)),
            ("distances", PairwiseDistances(selection, exclude_neighbors=exclude_neighbors)),
        ]
    )
