"""A toy molecule with known answers: a chain of beads whose shape follows a latent variable.

The chain has three stiff arms joined by two hinges. The opening angle of the first hinge
follows the first latent coordinate, which diffuses in a double well, so the molecule switches
between a closed and an open state. With two latent coordinates the second one sets the
dihedral angle between the outer arms. Bond lengths, the second hinge and the bond directions
carry thermal noise.

Everything is defined by construction, so the distribution of configurations for any latent
value is known exactly: :func:`bead_chain_configurations` draws from it. That makes the chain a
test of decoders, which must generate configurations consistent with a latent point.

Lengths are in nm and angles in radians.
"""

import numpy as np
from sklearn.utils import Bunch

from ._base import check_int, check_positive, check_rng

__all__ = [
    "bead_chain",
    "bead_chain_configurations",
    "chain_fidelity",
    "bond_lengths",
    "end_to_end_distance",
    "radius_of_gyration",
]

BOND_LENGTH = 0.38  # nm, mean C-alpha to C-alpha distance
BOND_LENGTH_SD = 0.01  # nm
BOND_DIRECTION_SD = 0.08  # rad, jitter of each bond about its arm's axis
HINGE_MEAN = 1.9  # rad, opening angle of the first hinge at latent 0
HINGE_AMPLITUDE = 0.7  # rad, the angle spans HINGE_MEAN -/+ HINGE_AMPLITUDE
HINGE_SD = 0.08  # rad
SECOND_HINGE = 2.1  # rad, fixed opening angle of the second hinge
SECOND_HINGE_SD = 0.08  # rad
DIHEDRAL_MEAN = 1.0  # rad
DIHEDRAL_AMPLITUDE = 0.8  # rad, used when the dihedral follows the second latent coordinate
DIHEDRAL_SD = 0.15  # rad


def hinge_angle_mean(latent):
    """Mean opening angle (rad) of the first hinge given the first latent coordinate."""
    return HINGE_MEAN + HINGE_AMPLITUDE * np.tanh(np.asarray(latent, dtype=np.float64))


def _unit(v):
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


def _arm_axes(hinge, second_hinge, dihedral):
    """Axes of the three arms, shape (n, 3, 3), from the angles at the two hinges.

    An opening angle of pi is a straight chain; the dihedral is the angle between the first
    and last arms seen along the middle one.
    """
    n = len(hinge)
    a = np.tile([1.0, 0.0, 0.0], (n, 1))
    bend = np.pi - hinge
    b = np.stack([np.cos(bend), np.sin(bend), np.zeros(n)], axis=1)
    # Unit vectors perpendicular to b: n1 in the plane of a and b (pointing back along a), n2.
    n1 = _unit(a - np.sum(a * b, axis=1, keepdims=True) * b)
    n2 = np.cross(b, n1)
    bend2 = np.pi - second_hinge
    c = np.cos(bend2)[:, None] * b + np.sin(bend2)[:, None] * (
        np.cos(dihedral)[:, None] * -n1 + np.sin(dihedral)[:, None] * n2
    )
    return np.stack([a, b, c], axis=1)


def _arm_of_bond(n_beads):
    """Index of the arm (0, 1 or 2) that each of the ``n_beads - 1`` bonds belongs to."""
    n_bonds = n_beads - 1
    return np.minimum(np.arange(n_bonds) * 3 // n_bonds, 2)


def _build(hinge, second_hinge, dihedral, lengths, jitter, n_beads):
    axes = _arm_axes(hinge, second_hinge, dihedral)[:, _arm_of_bond(n_beads)]
    directions = _unit(axes + jitter)
    bonds = lengths[:, :, None] * directions
    xyz = np.concatenate([np.zeros((len(hinge), 1, 3)), np.cumsum(bonds, axis=1)], axis=1)
    return xyz - xyz.mean(axis=1, keepdims=True)


def _reference(n_beads):
    """The noise-free chain at latent 0, centred: the frame every configuration is aligned to."""
    one = np.ones(1)
    return _build(
        HINGE_MEAN * one,
        SECOND_HINGE * one,
        DIHEDRAL_MEAN * one,
        np.full((1, n_beads - 1), BOND_LENGTH),
        np.zeros((1, n_beads - 1, 3)),
        n_beads,
    )[0]


def _superpose(xyz, reference):
    """Rotate each centred configuration onto ``reference`` (Kabsch, no reflections)."""
    h = np.einsum("nki,kj->nij", xyz, reference)
    u, _, vt = np.linalg.svd(h)
    d = np.sign(np.linalg.det(u @ vt))
    u[:, :, 2] *= d[:, None]
    return xyz @ (u @ vt)


def _check_latent(latent):
    latent = np.asarray(latent, dtype=np.float64)
    if latent.ndim == 1:
        latent = latent[:, None]
    if latent.ndim != 2 or latent.shape[1] not in (1, 2):
        raise ValueError(
            f"latent must have shape (n_frames, 1) or (n_frames, 2); got {latent.shape}."
        )
    if not np.isfinite(latent).all():
        raise ValueError("latent contains NaN or inf values.")
    return latent


def bead_chain_configurations(latent, *, n_beads=10, random_state=None, return_angles=False):
    """Draw one configuration of the bead chain for each latent point.

    This is the chain's exact conditional distribution ``p(configuration | latent)``:

    - bond lengths are independent ``N(0.38, 0.01^2)`` nm;
    - the first hinge opens to ``1.9 + 0.7 tanh(z_1) + N(0, 0.08^2)`` rad;
    - the second hinge opens to ``2.1 + N(0, 0.08^2)`` rad;
    - the dihedral between the outer arms is ``1.0 + 0.8 tanh(z_2) + N(0, 0.15^2)`` rad with
      two latent coordinates, and ``1.0 + N(0, 0.15^2)`` rad with one;
    - every bond direction is jittered about its arm's axis by about 0.08 rad.

    Configurations are centred and superposed (Kabsch) on the noise-free chain at latent 0, so
    the frame removes translation and rotation the same way for every frame.

    Parameters
    ----------
    latent : array-like of shape (n_frames,), (n_frames, 1) or (n_frames, 2)
        Latent coordinates.
    n_beads : int, default=10
        Number of beads; the arms split the ``n_beads - 1`` bonds in three.
    random_state : None, int, numpy RandomState or Generator, default=None
        Seeds the thermal noise; numpy's global random state is never used.
    return_angles : bool, default=False
        Also return the drawn angles.

    Returns
    -------
    coordinates : ndarray of shape (n_frames, 3 * n_beads)
        Flattened aligned coordinates in nm, ``x0, y0, z0, x1, ...``.
    angles : dict of ndarray, only with ``return_angles=True``
        ``"hinge"``, ``"second_hinge"`` and ``"dihedral"``, each of shape (n_frames,).
    """
    latent = _check_latent(latent)
    n_beads = check_int("n_beads", n_beads, low=4)
    rng = check_rng(random_state)
    n = len(latent)
    hinge = hinge_angle_mean(latent[:, 0]) + HINGE_SD * rng.standard_normal(n)
    second_hinge = SECOND_HINGE + SECOND_HINGE_SD * rng.standard_normal(n)
    dihedral = DIHEDRAL_MEAN + DIHEDRAL_SD * rng.standard_normal(n)
    if latent.shape[1] == 2:
        dihedral += DIHEDRAL_AMPLITUDE * np.tanh(latent[:, 1])
    lengths = BOND_LENGTH + BOND_LENGTH_SD * rng.standard_normal((n, n_beads - 1))
    jitter = BOND_DIRECTION_SD * rng.standard_normal((n, n_beads - 1, 3))
    xyz = _build(hinge, second_hinge, dihedral, lengths, jitter, n_beads)
    coordinates = _superpose(xyz, _reference(n_beads)).reshape(n, 3 * n_beads)
    if return_angles:
        angles = {"hinge": hinge, "second_hinge": second_hinge, "dihedral": dihedral}
        return coordinates, angles
    return coordinates


def _latent_trajectory(n_frames, n_latent, dt, stride, rng):
    """Overdamped Langevin dynamics (kT = 1): ``z_1`` in the double well ``(z^2 - 1)^2``,
    ``z_2`` in the harmonic well ``z^2 / 2``."""
    kicks = np.sqrt(2.0 * dt) * rng.standard_normal((n_frames, stride, 2))
    z1, z2 = float(rng.choice([-1.0, 1.0])), 0.0
    out = np.empty((n_frames, 2))
    # A plain-float loop: numpy's per-call overhead would dominate these scalar updates.
    for frame in range(n_frames):
        for k1, k2 in kicks[frame].tolist():
            z1 += -4.0 * dt * z1 * (z1 * z1 - 1.0) + k1
            z2 += -dt * z2 + k2
        out[frame, 0] = z1
        out[frame, 1] = z2
    return out[:, :n_latent]


def bead_chain(
    n_frames=10000,
    *,
    n_beads=10,
    n_latent=1,
    n_trajectories=1,
    stride=10,
    dt=0.01,
    random_state=None,
):
    """Trajectories of the toy bead chain and of the latent variable that drives its shape.

    The first latent coordinate diffuses in the double well ``V(z) = (z^2 - 1)^2`` (in kT, by
    overdamped Langevin dynamics with unit friction), so the first hinge switches between a
    closed state (about 1.4 rad at ``z = -1``) and an open one (about 2.4 rad at ``z = 1``).
    A second latent coordinate, if asked for, diffuses in a harmonic well and sets the
    dihedral between the outer arms. Each frame's configuration is then drawn from the exact
    conditional distribution described in :func:`bead_chain_configurations`.

    Parameters
    ----------
    n_frames : int, default=10000
        Frames per trajectory.
    n_beads : int, default=10
        Beads in the chain.
    n_latent : {1, 2}, default=1
        Number of latent coordinates.
    n_trajectories : int, default=1
        With more than one, the fields are lists with one array per trajectory.
    stride : int, default=10
        Integration steps between saved frames.
    dt : float, default=0.01
        Integration time step (reduced time units).
    random_state : None, int, numpy RandomState or Generator, default=None
        Seeds the dynamics and the thermal noise; numpy's global random state is never used.

    Returns
    -------
    data : :class:`~sklearn.utils.Bunch`
        - ``latent``: ndarray of shape (n_frames, n_latent), the latent coordinates;
        - ``coordinates``: ndarray of shape (n_frames, 3 * n_beads), flattened aligned
          coordinates in nm;
        - ``hinge``: ndarray of shape (n_frames,), the first hinge's opening angle in rad;
        - ``n_beads``: the number of beads.

    Examples
    --------
    >>> from sklss.datasets._bead_chain import bead_chain, bond_lengths
    >>> data = bead_chain(1000, n_beads=10, random_state=0)
    >>> data.latent.shape, data.coordinates.shape
    ((1000, 1), (1000, 30))
    >>> round(float(bond_lengths(data.coordinates).mean()), 2)
    0.38
    """
    n_beads = check_int("n_beads", n_beads, low=4)
    n_frames = check_int("n_frames", n_frames)
    n_trajectories = check_int("n_trajectories", n_trajectories)
    stride = check_int("stride", stride)
    dt = check_positive("dt", dt)
    if n_latent not in (1, 2):
        raise ValueError(f"The 'n_latent' parameter must be 1 or 2. Got {n_latent!r}.")
    rng = check_rng(random_state)
    latents, coordinates, hinges = [], [], []
    for _ in range(n_trajectories):
        z = _latent_trajectory(n_frames, n_latent, dt, stride, rng)
        xyz, angles = bead_chain_configurations(
            z, n_beads=n_beads, random_state=rng, return_angles=True
        )
        latents.append(z)
        coordinates.append(xyz)
        hinges.append(angles["hinge"])
    if n_trajectories == 1:
        latents, coordinates, hinges = latents[0], coordinates[0], hinges[0]
    return Bunch(latent=latents, coordinates=coordinates, hinge=hinges, n_beads=n_beads)


def _as_xyz(coordinates):
    coordinates = np.asarray(coordinates, dtype=np.float64)
    if coordinates.ndim != 2 or coordinates.shape[1] % 3:
        raise ValueError(
            f"coordinates must have shape (n_frames, 3 * n_beads); got {coordinates.shape}."
        )
    return coordinates.reshape(len(coordinates), -1, 3)


def bond_lengths(coordinates):
    """Distances between consecutive beads, shape (n_frames, n_beads - 1), in nm."""
    xyz = _as_xyz(coordinates)
    return np.linalg.norm(np.diff(xyz, axis=1), axis=2)


def end_to_end_distance(coordinates):
    """Distance between the first and last beads, shape (n_frames,), in nm."""
    xyz = _as_xyz(coordinates)
    return np.linalg.norm(xyz[:, -1] - xyz[:, 0], axis=1)


def radius_of_gyration(coordinates):
    """Radius of gyration with equal bead masses, shape (n_frames,), in nm."""
    xyz = _as_xyz(coordinates)
    centred = xyz - xyz.mean(axis=1, keepdims=True)
    return np.sqrt((centred**2).sum(axis=2).mean(axis=1))


def chain_fidelity(latent, real, generated, *, n_latent_bins=8, n_distance_bins=25):
    """Compare generated chain configurations with real ones drawn at the same latent points.

    Parameters
    ----------
    latent : array-like of shape (n_frames,) or (n_frames, n_latent)
        Latent points; the first coordinate is cut into ``n_latent_bins`` bins of equal
        population.
    real, generated : array-like of shape (n_frames, 3 * n_beads)
        Configurations for the same latent points, frame by frame.
    n_latent_bins : int, default=8
    n_distance_bins : int, default=25
        Histogram bins of the end-to-end distance within each latent bin, spanning the range
        of the real sample in that bin; generated values outside it count in the edge bins.

    Returns
    -------
    report : dict
        ``bond_mean_real``, ``bond_mean_generated``, ``bond_mean_error`` (nm);
        ``bond_sd_real``, ``bond_sd_generated``, ``bond_sd_rel_error``; ``rg_mean_*``,
        ``rg_sd_*`` and their relative errors; ``end_to_end_js`` (bits, mean over latent
        bins) and ``end_to_end_js_per_bin``.
    """
    from ..metrics import js_divergence

    z = np.asarray(latent, dtype=np.float64).reshape(len(real), -1)[:, 0]
    out = {}
    b_real, b_gen = bond_lengths(real), bond_lengths(generated)
    out["bond_mean_real"] = float(b_real.mean())
    out["bond_mean_generated"] = float(b_gen.mean())
    out["bond_mean_error"] = abs(out["bond_mean_generated"] - out["bond_mean_real"])
    out["bond_sd_real"] = float(b_real.std())
    out["bond_sd_generated"] = float(b_gen.std())
    out["bond_sd_rel_error"] = abs(out["bond_sd_generated"] / out["bond_sd_real"] - 1.0)
    r_real, r_gen = radius_of_gyration(real), radius_of_gyration(generated)
    for stat, fn in (("mean", np.mean), ("sd", np.std)):
        a, b = float(fn(r_real)), float(fn(r_gen))
        out[f"rg_{stat}_real"], out[f"rg_{stat}_generated"] = a, b
        out[f"rg_{stat}_rel_error"] = abs(b / a - 1.0)
    e_real, e_gen = end_to_end_distance(real), end_to_end_distance(generated)
    edges = np.quantile(z, np.linspace(0, 1, n_latent_bins + 1))
    which = np.clip(np.searchsorted(edges, z, side="right") - 1, 0, n_latent_bins - 1)
    per_bin = []
    for k in range(n_latent_bins):
        a, b = e_real[which == k], e_gen[which == k]
        lo, hi = a.min(), a.max()
        p, _ = np.histogram(a, bins=n_distance_bins, range=(lo, hi))
        q, _ = np.histogram(np.clip(b, lo, hi), bins=n_distance_bins, range=(lo, hi))
        per_bin.append(js_divergence(p, q))
    out["end_to_end_js"] = float(np.mean(per_bin))
    out["end_to_end_js_per_bin"] = per_bin
    return out
