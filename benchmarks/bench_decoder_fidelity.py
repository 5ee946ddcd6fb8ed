"""Decoder fidelity on a toy molecule with known answers: the bead chain.

A `CWGANDecoder` with the paper's architecture (3 x 200 swish units, 50 noise dimensions)
learns the configurations of a 10-bead chain (30 coordinates) from its latent coordinate, the
hinge-driving variable of `sklss.datasets._bead_chain`. Fresh configurations are then drawn
both from the decoder and from the chain's exact conditional distribution at the same
held-out latent points, and compared:

- mean bond length within 0.005 nm, and bond-length spread within 20%;
- end-to-end distance distribution in each of 8 latent bins: Jensen-Shannon divergence (bits,
  25 histogram bins) of at most 0.05 on average;
- radius of gyration, mean and standard deviation, within 5%.

Two references calibrate the numbers: a second exact sample (the noise floor of the
estimates) and real configurations shuffled across latent points (a decoder that ignores the
latent point).

Usage::

    python benchmarks/bench_decoder_fidelity.py            # full size, about 10 min on 2 cores
    python benchmarks/bench_decoder_fidelity.py --epochs 20 --frames 5000   # quick look
    python benchmarks/bench_decoder_fidelity.py --quick --output /tmp/fidelity.json  # smoke run
"""

import argparse
import time
from pathlib import Path

import numpy as np
from _common import RESULTS, start_run, write_result

from sklss.datasets._bead_chain import bead_chain, bead_chain_configurations, chain_fidelity
from sklss.decoder import CWGANDecoder

TARGETS = {
    "bond_mean_error": (0.005, "mean bond length error (nm)"),
    "bond_sd_rel_error": (0.20, "bond-length spread, relative error"),
    "end_to_end_js": (0.05, "end-to-end JS divergence per latent bin (bits)"),
    "rg_mean_rel_error": (0.05, "radius of gyration mean, relative error"),
    "rg_sd_rel_error": (0.05, "radius of gyration spread, relative error"),
}


def _summary(report):
    return {k: v for k, v in report.items() if not isinstance(v, list)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beads", type=int, default=10)
    parser.add_argument("--frames", type=int, default=20_000, help="training frames")
    parser.add_argument("--test-frames", type=int, default=10_000)
    parser.add_argument("--epochs", type=int, default=150)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS / "decoder_fidelity.json")
    parser.add_argument(
        "--quick", action="store_true", help="3 epochs, 2,000 training and 1,000 test frames"
    )
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.frames, args.test_frames = 3, 2000, 1000
    run = start_run()

    train = bead_chain(args.frames, n_beads=args.beads, random_state=args.seed)
    latent = bead_chain(args.test_frames, n_beads=args.beads, random_state=args.seed + 1).latent
    real = bead_chain_configurations(latent, n_beads=args.beads, random_state=args.seed + 2)
    second = bead_chain_configurations(latent, n_beads=args.beads, random_state=args.seed + 3)
    shuffled = real[np.random.default_rng(args.seed).permutation(len(real))]

    decoder = CWGANDecoder(max_epochs=args.epochs, random_state=args.seed)
    start = time.perf_counter()
    decoder.fit(train.latent, train.coordinates)
    fit_s = time.perf_counter() - start
    generated = decoder.sample(latent, random_state=args.seed)

    report = chain_fidelity(latent, real, generated)
    floor = chain_fidelity(latent, real, second)
    control = chain_fidelity(latent, real, shuffled)
    passed = {k: report[k] <= limit for k, (limit, _) in TARGETS.items()}

    print(
        f"Bead chain: {args.beads} beads, {args.frames} training frames, "
        f"{args.test_frames} test frames; fit {fit_s:.0f} s for {args.epochs} epochs"
    )
    print(f"{'measure':<48}{'decoder':>10}{'target':>9}{'floor':>9}{'control':>9}  ok")
    for key, (limit, label) in TARGETS.items():
        print(
            f"{label:<48}{report[key]:>10.4f}{limit:>9.3f}{floor[key]:>9.4f}"
            f"{control[key]:>9.4f}  {'yes' if passed[key] else 'NO'}"
        )
    print(
        f"bond length (nm): real {report['bond_mean_real']:.4f} +- {report['bond_sd_real']:.4f}, "
        f"generated {report['bond_mean_generated']:.4f} +- {report['bond_sd_generated']:.4f}"
    )
    print(
        f"radius of gyration (nm): real {report['rg_mean_real']:.4f} +- "
        f"{report['rg_sd_real']:.4f}, generated {report['rg_mean_generated']:.4f} +- "
        f"{report['rg_sd_generated']:.4f}"
    )
    print(f"score (negative sliced Wasserstein): {decoder.score(latent, real):.4f}")

    result = {
        "benchmark": "decoder_fidelity",
        "system": {
            "n_beads": args.beads,
            "train_frames": args.frames,
            "test_frames": args.test_frames,
            "seed": args.seed,
        },
        "decoder": {k: v for k, v in decoder.get_params().items() if k != "verbose"},
        "fit_seconds": fit_s,
        "targets": {k: limit for k, (limit, _) in TARGETS.items()},
        "passed": passed,
        "all_passed": all(passed.values()),
        "decoder_report": report,
        "noise_floor_report": _summary(floor),
        "latent_ignored_control_report": _summary(control),
        "score": decoder.score(latent, real),
        "history_last_epoch": {k: v[-1] for k, v in decoder.history_.items()},
    }
    write_result(args.output, result, run)
    print(f"all targets met: {result['all_passed']}; wrote {args.output}")


if __name__ == "__main__":
    main()
