"""Which OpenMM platform runs the alanine dipeptide dataset fastest on one core.

``sklss.datasets.alanine_dipeptide`` simulates 22 atoms in implicit solvent (AMBER ff96 +
OBC2, 4 fs with hydrogen mass repartitioning, Langevin at 400 K). For a system this small
the per-step overhead of a platform matters more than its arithmetic, so the choice is
measured, not assumed: the Reference platform (plain double-precision loops) against the
CPU platform with one thread (vectorised single-precision kernels), the same system, the
same number of steps, one untimed warm-up and alternating timed repetitions.

Prints a Markdown table and writes ``results/md_platforms.json``.

    python benchmarks/bench_md_platforms.py
"""

import argparse
from importlib import resources

import numpy as np
from _common import RESULTS, start_run, time_interleaved, timing_note, write_result

from sklss.datasets._alanine_dipeptide import _build_system, _pdb_path


def make_stepper(platform_name, properties, n_steps):
    import openmm
    import openmm.app as app
    import openmm.unit as unit

    with resources.as_file(_pdb_path()) as path:
        pdb = app.PDBFile(str(path))
    system = _build_system(app, unit, pdb.topology, hydrogen_mass=4.0)
    integrator = openmm.LangevinMiddleIntegrator(
        400 * unit.kelvin, 1 / unit.picosecond, 4 * unit.femtosecond
    )
    integrator.setRandomNumberSeed(1)
    platform = openmm.Platform.getPlatformByName(platform_name)
    context = openmm.Context(system, integrator, platform, properties)
    context.setPositions(pdb.positions)
    openmm.LocalEnergyMinimizer.minimize(context, 1.0)
    context.setVelocitiesToTemperature(400 * unit.kelvin, 2)

    def run():
        # Frames every 1 ps (250 steps), read back as the dataset reads them.
        for _ in range(n_steps // 250):
            integrator.step(250)
            context.getState(getPositions=True).getPositions(asNumpy=True)

    return run


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--ps", type=float, default=20.0, help="simulated ps per timed call")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--output", default=None)
    args = p.parse_args()
    run = start_run()
    n_steps = int(round(args.ps * 250))
    fns = {
        "Reference": make_stepper("Reference", {}, n_steps),
        "CPU, 1 thread": make_stepper("CPU", {"Threads": "1"}, n_steps),
    }
    timing = time_interleaved(fns, warmup=1, repeats=args.repeats)
    per_ns = {
        name: {stat: t[stat] * 1000.0 / args.ps for stat in ("best", "median")}
        for name, t in timing.items()
    }
    print(f"alanine dipeptide, {args.ps:g} ps per call; {timing_note(1, args.repeats)}\n")
    print("| platform | s per ns, median | s per ns, best |")
    print("|---|---|---|")
    for name, v in per_ns.items():
        print(f"| {name} | {v['median']:.1f} | {v['best']:.1f} |")
    ratio = per_ns["CPU, 1 thread"]["median"] / per_ns["Reference"]["median"]
    print(f"\nReference is {ratio:.1f}x as fast as the CPU platform (medians)")
    result = {
        "system": "alanine dipeptide, AMBER ff96 + OBC2, 4 fs, HMR 4 amu, 400 K",
        "ps_per_call": args.ps,
        "warmup": 1,
        "repeats": args.repeats,
        "seconds_per_ns": per_ns,
        "seconds_per_call": timing,
        "cpu_over_reference_median": float(np.round(ratio, 3)),
    }
    out = write_result(args.output or RESULTS / "md_platforms.json", result, run)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
