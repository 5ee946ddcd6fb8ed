"""Molecular dynamics of alanine dipeptide in implicit solvent, run with OpenMM and cached.

The molecule is Ace-Ala-Nme (22 atoms) with the AMBER ff96 force field and the OBC2
generalised-Born implicit solvent (OpenMM's ``amber96.xml`` and ``amber96_obc.xml``), the
system of the ``AlanineDipeptideImplicit`` test system that openmmtools ships. The starting
structure, ``data/alanine_dipeptide.pdb``, was built from standard internal coordinates,
given hydrogens by OpenMM and energy-minimised (see :func:`_build_structure`).
"""

import hashlib
import json
import os
import tempfile
import warnings
from importlib import resources
from pathlib import Path

import numpy as np

from .._optional import import_md
from .._random import seed_entropy, spawn_seeds
from ._base import check_int, check_positive

__all__ = ["alanine_dipeptide", "alanine_dipeptide_structure", "default_cache_dir"]

_FORCE_FIELD = ("amber96.xml", "amber96_obc.xml")
_PDB = "alanine_dipeptide.pdb"
# Raise when the simulation protocol changes, so that old cache entries are not reused.
_PROTOCOL = 2
# Energy minimisation tolerance of the starting structure, kJ/mol/nm.
_MINIMIZE_TOLERANCE = 1.0


def default_cache_dir():
    """Where sklss caches generated data: ``$SKLSS_CACHE``, else ``$XDG_CACHE_HOME/sklss``, else
    ``~/.cache/sklss``."""
    if os.environ.get("SKLSS_CACHE"):
        return Path(os.environ["SKLSS_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "sklss"


def _pdb_path():
    return resources.files("sklss.datasets").joinpath("data", _PDB)


def alanine_dipeptide_structure():
    """The energy-minimised starting structure of :func:`alanine_dipeptide`.

    Returns
    -------
    structure : mdtraj.Trajectory
        One frame of the 22 atoms of Ace-Ala-Nme, coordinates in nm. Its ``topology`` is the
        topology of every trajectory :func:`alanine_dipeptide` returns, and it serves as a
        reference structure for superposition.

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_structure
    >>> structure = alanine_dipeptide_structure()
    >>> structure.n_atoms, [r.name for r in structure.topology.residues]
    (22, ['ACE', 'ALA', 'NME'])
    """
    md = import_md("mdtraj", feature="alanine_dipeptide_structure")
    with resources.as_file(_pdb_path()) as path:
        return md.load_pdb(str(path))


def _seeds(random_state, n_trajectories):
    """Per-trajectory seed pairs (velocities, Langevin noise) in [1, 2**31 - 1).

    Trajectory ``i`` gets the same seeds whatever ``n_trajectories`` is, so a longer request
    reuses the cached trajectories of a shorter one. Returns ``None`` as the cache tag when
    ``random_state`` is None (fresh entropy, nothing cached).
    """
    entropy = seed_entropy(random_state)
    return spawn_seeds(entropy, n_trajectories, 2), None if random_state is None else entropy


def _build_system(app, unit, topology, *, hydrogen_mass):
    forcefield = app.ForceField(*_FORCE_FIELD)
    kwargs = {} if hydrogen_mass is None else {"hydrogenMass": hydrogen_mass * unit.amu}
    return forcefield.createSystem(
        topology, nonbondedMethod=app.NoCutoff, constraints=app.HBonds, **kwargs
    )


def _simulate(params, seeds, *, progress):
    """One trajectory: minimise, equilibrate, then record ``n_frames`` frames (nm, float32)."""
    openmm = import_md("openmm", feature="alanine_dipeptide")
    app = import_md("openmm.app", feature="alanine_dipeptide")
    unit = import_md("openmm.unit", feature="alanine_dipeptide")
    with resources.as_file(_pdb_path()) as path:
        pdb = app.PDBFile(str(path))
    system = _build_system(app, unit, pdb.topology, hydrogen_mass=params["hydrogen_mass"])
    dt = params["timestep_fs"] * unit.femtosecond
    integrator = openmm.LangevinMiddleIntegrator(
        params["temperature"] * unit.kelvin, params["friction"] / unit.picosecond, dt
    )
    integrator.setRandomNumberSeed(seeds[1])
    # The Reference platform: for 22 atoms its plain loops beat the CPU platform's vectorised
    # kernels, whose per-step overhead dominates (12 against 55 s/ns on one
    # core, benchmarks/bench_md_platforms.py).
    platform = openmm.Platform.getPlatformByName("Reference")
    context = openmm.Context(system, integrator, platform)
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context, _MINIMIZE_TOLERANCE)
    context.setVelocitiesToTemperature(params["temperature"] * unit.kelvin, seeds[0])

    stride = params["steps_per_frame"]
    n_frames = params["n_frames"]
    n_atoms = system.getNumParticles()
    xyz = np.empty((n_frames, n_atoms, 3), dtype=np.float32)
    try:
        integrator.step(params["equilibration_steps"])
        for frame in range(n_frames):
            integrator.step(stride)
            state = context.getState(getPositions=True)
            xyz[frame] = state.getPositions(asNumpy=True).value_in_unit(unit.nanometer)
            progress.update(1)
    except openmm.OpenMMException as exc:
        raise RuntimeError(
            f"The alanine dipeptide simulation became unstable ({exc}). With "
            f"timestep_fs={params['timestep_fs']} and hydrogen_mass={params['hydrogen_mass']}, "
            "use a smaller timestep_fs or a larger hydrogen_mass."
        ) from exc
    if not np.isfinite(xyz).all():
        frame = int(np.argmax(~np.isfinite(xyz).all(axis=(1, 2))))
        raise RuntimeError(
            f"The alanine dipeptide simulation became unstable: NaN coordinates at frame {frame} "
            f"with timestep_fs={params['timestep_fs']}; use a smaller timestep_fs."
        )
    return xyz


def _simulation_parameters(
    n_ns, temperature, timestep_fs, save_every_ps, friction, hydrogen_mass, equilibration_ps
):
    """Validate the physical parameters; return everything that determines a trajectory
    (which is also the cache key, with the seed and the trajectory's index)."""
    n_ns = check_positive("n_ns", n_ns)
    temperature = check_positive("temperature", temperature)
    timestep_fs = check_positive("timestep_fs", timestep_fs)
    save_every_ps = check_positive("save_every_ps", save_every_ps)
    friction = check_positive("friction", friction)
    equilibration_ps = check_positive("equilibration_ps", equilibration_ps, allow_zero=True)
    if hydrogen_mass is not None:
        hydrogen_mass = check_positive("hydrogen_mass", hydrogen_mass)
    steps_per_frame = save_every_ps * 1000.0 / timestep_fs
    if abs(steps_per_frame - round(steps_per_frame)) > 1e-6 or round(steps_per_frame) < 1:
        raise ValueError(
            f"The 'save_every_ps' parameter must be a whole number of time steps: "
            f"save_every_ps={save_every_ps!r} ps with timestep_fs={timestep_fs!r} fs gives "
            f"{steps_per_frame:g} steps per frame."
        )
    n_frames = round(1000.0 * n_ns / save_every_ps)
    if n_frames < 1:
        raise ValueError(
            f"The 'n_ns' parameter must give at least one frame: n_ns={n_ns!r} with "
            f"save_every_ps={save_every_ps!r} gives {n_frames}."
        )
    return {
        "n_frames": n_frames,
        "temperature": temperature,
        "timestep_fs": timestep_fs,
        "steps_per_frame": round(steps_per_frame),
        "friction": friction,
        "hydrogen_mass": hydrogen_mass,
        "equilibration_steps": round(equilibration_ps * 1000.0 / timestep_fs),
        "force_field": list(_FORCE_FIELD),
    }


def _cache_file(cache_dir, params, tag, index):
    key = dict(params, random_state=tag, trajectory=index, protocol=_PROTOCOL)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return Path(cache_dir) / "alanine_dipeptide" / f"{digest}.npz", key


def _load_cached(path, n_frames, n_atoms):
    try:
        with np.load(path) as data:
            xyz = data["xyz"]
    except Exception as exc:  # any unreadable entry is regenerated, never returned
        warnings.warn(
            f"Ignoring the unreadable cache file {str(path)!r} ({exc}); regenerating it.",
            stacklevel=3,
        )
        return None
    if xyz.shape != (n_frames, n_atoms, 3) or not np.isfinite(xyz).all():
        warnings.warn(
            f"Ignoring the cache file {str(path)!r}: it holds an array of shape {xyz.shape}, "
            f"expected {(n_frames, n_atoms, 3)} with finite values; regenerating it.",
            stacklevel=3,
        )
        return None
    return xyz


def _save_atomic(path, xyz, key):
    """Write to a temporary file in the cache directory, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".npz", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, xyz=xyz, key=json.dumps(key, sort_keys=True))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def alanine_dipeptide(
    n_ns=1.0,
    *,
    n_trajectories=1,
    temperature=300.0,
    timestep_fs=4.0,
    save_every_ps=1.0,
    friction=1.0,
    hydrogen_mass=4.0,
    equilibration_ps=100.0,
    random_state=0,
    cache_dir=None,
    verbose=1,
):
    """Molecular dynamics trajectories of alanine dipeptide in implicit solvent (OpenMM).

    Langevin dynamics (OpenMM's ``LangevinMiddleIntegrator``) of Ace-Ala-Nme with AMBER ff96
    and OBC2 implicit solvent, bonds to hydrogen constrained, on OpenMM's Reference platform
    (double precision, one thread; for a system this small it runs about four times as fast
    as the CPU platform). Each trajectory starts from the energy-minimised structure
    (:func:`alanine_dipeptide_structure`) with velocities drawn at ``temperature``, is
    equilibrated for ``equilibration_ps``, and is then recorded every ``save_every_ps``.
    One nanosecond takes about 15 s of one CPU core.

    Trajectories are cached on disk, one file per trajectory, under a key made of every
    parameter that changes the result (and the trajectory's index), so a repeated call, or
    one that asks for more trajectories, reuses what was generated. Cache files are written
    to a temporary file and renamed, so an interrupted run never leaves a corrupt entry.

    Parameters
    ----------
    n_ns : float, default=1.0
        Recorded length of each trajectory, in ns.
    n_trajectories : int, default=1
        Number of independent trajectories.
    temperature : float, default=300.0
        Temperature of the Langevin thermostat, in K.
    timestep_fs : float, default=4.0
        Integration time step, in fs. 4 fs needs the hydrogen mass repartitioning below.
    save_every_ps : float, default=1.0
        Time between saved frames, in ps; must be a whole number of time steps.
    friction : float, default=1.0
        Langevin friction coefficient, in 1/ps.
    hydrogen_mass : float or None, default=4.0
        Hydrogen mass in amu after repartitioning (mass moved from the bonded heavy atom);
        ``None`` keeps the natural masses (use ``timestep_fs=2.0`` then).
    equilibration_ps : float, default=100.0
        Unrecorded equilibration before the first frame, in ps.
    random_state : int, RandomState instance, Generator or None, default=0
        Seeds the initial velocities and the Langevin noise of every trajectory. ``None``
        draws fresh entropy and bypasses the cache. (OpenMM's Reference platform is
        deterministic for a fixed seed on the same machine and OpenMM version.)
    cache_dir : path-like or None, default=None
        Cache directory; ``None`` means :func:`default_cache_dir` (``$SKLSS_CACHE``, else
        ``~/.cache/sklss``).
    verbose : int, default=1
        0 is silent; 1 shows a progress bar while simulating.

    Returns
    -------
    traj : mdtraj.Trajectory or list of mdtraj.Trajectory
        One trajectory when ``n_trajectories == 1``, else a list. Each holds
        ``round(1000 * n_ns / save_every_ps)`` frames of all 22 atoms in nm, with ``time`` in
        ps from the end of equilibration.

    Raises
    ------
    ImportError
        If OpenMM or mdtraj is missing (``pip install "sklss[md]"``).

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide
    >>> traj = alanine_dipeptide(0.01, verbose=0)  # 10 ps, 10 frames  # doctest: +SKIP
    >>> traj.n_frames, traj.n_atoms  # doctest: +SKIP
    (10, 22)
    """
    md = import_md("mdtraj", feature="alanine_dipeptide")
    import_md("openmm", feature="alanine_dipeptide")
    n_trajectories = check_int("n_trajectories", n_trajectories)
    params = _simulation_parameters(
        n_ns, temperature, timestep_fs, save_every_ps, friction, hydrogen_mass, equilibration_ps
    )
    n_frames = params["n_frames"]
    seeds, tag = _seeds(random_state, n_trajectories)
    cache_dir = default_cache_dir() if cache_dir is None else Path(cache_dir)
    structure = alanine_dipeptide_structure()

    from tqdm.auto import tqdm

    trajs = []
    with tqdm(
        total=n_frames * n_trajectories,
        desc="alanine dipeptide MD",
        unit="ps" if save_every_ps == 1.0 else "frame",
        disable=not verbose,
    ) as progress:
        for i, seed_pair in enumerate(seeds):
            xyz = None
            if tag is not None:
                path, key = _cache_file(cache_dir, params, tag, i)
                if path.is_file():
                    xyz = _load_cached(path, n_frames, structure.n_atoms)
                    if xyz is not None:
                        progress.update(n_frames)
            if xyz is None:
                xyz = _simulate(params, seed_pair, progress=progress)
                if tag is not None:
                    _save_atomic(path, xyz, key)
            time_ps = save_every_ps * np.arange(1, n_frames + 1)
            trajs.append(md.Trajectory(xyz, structure.topology, time=time_ps))
    return trajs[0] if n_trajectories == 1 else trajs


def _build_structure(path, *, phi=-80.0, psi=75.0):
    """Write the starting structure: heavy atoms from internal coordinates, hydrogens from
    OpenMM, then energy minimisation with the dataset's force field (run once, by hand)."""
    openmm = import_md("openmm")
    app = import_md("openmm.app")
    unit = import_md("openmm.unit")

    def place(a, b, c, bond, angle, torsion):
        # Atom d with |cd| = bond, angle bcd and torsion abcd (Angstrom, degrees).
        angle, torsion = np.radians(angle), np.radians(torsion)
        bc = (c - b) / np.linalg.norm(c - b)
        n = np.cross(b - a, bc)
        n /= np.linalg.norm(n)
        m = np.cross(n, bc)
        return c + bond * (
            -np.cos(angle) * bc
            + np.sin(angle) * np.cos(torsion) * m
            + np.sin(angle) * np.sin(torsion) * n
        )

    x = {"ACE CH3": np.zeros(3), "ACE C": np.array([1.52, 0.0, 0.0])}
    x["ALA N"] = place(np.array([0.0, 1.0, 0.0]), x["ACE CH3"], x["ACE C"], 1.33, 116, 180)
    x["ALA CA"] = place(x["ACE CH3"], x["ACE C"], x["ALA N"], 1.46, 122, 180)
    x["ALA C"] = place(x["ACE C"], x["ALA N"], x["ALA CA"], 1.52, 111, phi)
    x["NME N"] = place(x["ALA N"], x["ALA CA"], x["ALA C"], 1.33, 116, psi)
    x["NME C"] = place(x["ALA CA"], x["ALA C"], x["NME N"], 1.46, 122, 180)
    x["ACE O"] = place(x["ALA CA"], x["ALA N"], x["ACE C"], 1.23, 123, 0)
    x["ALA O"] = place(x["NME C"], x["NME N"], x["ALA C"], 1.23, 123, 0)
    # Improper N-C-CA-CB of +122.7 degrees makes the L enantiomer.
    x["ALA CB"] = place(x["ALA N"], x["ALA C"], x["ALA CA"], 1.53, 110, 122.7)

    topology = app.Topology()
    chain = topology.addChain("A")
    positions = []
    previous = None
    for number, (res, names) in enumerate(
        [("ACE", ["CH3", "C", "O"]), ("ALA", ["N", "CA", "C", "O", "CB"]), ("NME", ["N", "C"])],
        start=1,
    ):
        residue = topology.addResidue(res, chain, id=str(number))
        atoms = {}
        for name in names:
            element = app.Element.getBySymbol(name[0])
            atoms[name] = topology.addAtom(name, element, residue)
            positions.append(openmm.Vec3(*x[f"{res} {name}"]) * 0.1)
        if res == "ALA":
            for a, b in [("N", "CA"), ("CA", "C"), ("C", "O"), ("CA", "CB")]:
                topology.addBond(atoms[a], atoms[b])
        if res == "ACE":
            topology.addBond(atoms["CH3"], atoms["C"])
            topology.addBond(atoms["C"], atoms["O"])
        if res == "NME":
            topology.addBond(atoms["N"], atoms["C"])
        if previous is not None:
            topology.addBond(previous, atoms["N"])
        previous = atoms.get("C") if res != "NME" else None
    modeller = app.Modeller(topology, positions * unit.nanometer)
    forcefield = app.ForceField(*_FORCE_FIELD)
    modeller.addHydrogens(forcefield)
    system = _build_system(app, unit, modeller.topology, hydrogen_mass=None)
    context = openmm.Context(
        system,
        openmm.VerletIntegrator(0.001),
        openmm.Platform.getPlatformByName("Reference"),
    )
    context.setPositions(modeller.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 0.1)
    positions = context.getState(getPositions=True).getPositions()
    with open(path, "w") as f:
        f.write("REMARK   1 ACE-ALA-NME, AMBER ff96 + OBC2 energy minimum (sklss)\n")
        app.PDBFile.writeModel(modeller.topology, positions, f)
        app.PDBFile.writeFooter(modeller.topology, f)


#: Seeds of the two independent sets of :func:`alanine_dipeptide_rare_event`.
RARE_EVENT_SEEDS = {"train": 400, "validation": 401}


def alanine_dipeptide_rare_event(
    subset="train", *, n_ns=10.0, n_trajectories=6, cache_dir=None, verbose=1
):
    """Alanine dipeptide at 400 K: the phi flip into alpha_L / C7ax as a rare event.

    At 300 K this force field (AMBER ff96, OBC2) leaves alpha_L and C7ax (the states with a
    positive backbone dihedral phi) nearly unvisited: two visits in 50 ns. At 400 K the
    molecule enters them about 0.8 times per nanosecond and stays about 10 ps each time, so
    about 1 % of frames have phi > 0. Each entry is a rare event against lag times of a few
    picoseconds, while the set still holds enough of them (about 50 in 60 ns) to measure
    their rate, their stays and the population of the state. A simulator trained on it must
    produce those excursions at the right rate and for the right time, and invent no others.
    (Because the stays are short, the flip does not show as a long implied timescale: count
    entries and stays, for instance with :func:`sklss.metrics.excursion_statistics`.)

    ``"train"`` and ``"validation"`` are independent sets: the same simulation settings as
    :func:`alanine_dipeptide` at ``temperature=400.0`` with seeds ``400`` and ``401``, so no
    trajectory, and no frame, is shared between them. Use the validation set only to judge
    a model, from start frames taken from it. Trajectories are cached like those of
    :func:`alanine_dipeptide`; one nanosecond costs about 15 s of one CPU core.

    Parameters
    ----------
    subset : {"train", "validation"}, default="train"
        Which of the two independent sets.
    n_ns : float, default=10.0
        Recorded length of each trajectory, in ns (frames every 1 ps).
    n_trajectories : int, default=6
        Number of trajectories; trajectory ``i`` is the same whatever the number asked.
    cache_dir : path-like or None, default=None
        As in :func:`alanine_dipeptide`.
    verbose : int, default=1
        0 is silent; 1 shows a progress bar while simulating.

    Returns
    -------
    trajs : list of mdtraj.Trajectory
        ``n_trajectories`` trajectories of all 22 atoms, in nm, time in ps.

    Examples
    --------
    >>> from sklss.datasets import alanine_dipeptide_rare_event
    >>> train = alanine_dipeptide_rare_event("train", verbose=0)  # doctest: +SKIP
    >>> held_out = alanine_dipeptide_rare_event("validation", verbose=0)  # doctest: +SKIP
    >>> len(train), train[0].n_frames  # doctest: +SKIP
    (6, 10000)
    """
    if subset not in RARE_EVENT_SEEDS:
        raise ValueError(f"subset must be 'train' or 'validation'; got {subset!r}.")
    trajs = alanine_dipeptide(
        n_ns,
        n_trajectories=check_int("n_trajectories", n_trajectories),
        temperature=400.0,
        random_state=RARE_EVENT_SEEDS[subset],
        cache_dir=cache_dir,
        verbose=verbose,
    )
    return trajs if isinstance(trajs, list) else [trajs]
