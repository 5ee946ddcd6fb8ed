"""Command-line interface: ``sklss demo`` (and ``python -m sklss demo``)."""

import argparse
import sys
import time


def _demo(args):
    import numpy as np

    from . import SRVTransformer
    from .datasets import four_well, four_well_reference

    stride = 10
    lag = 10  # frames, that is 100 integration steps as in the paper's four-well test
    print(f"Simulating the four-well potential: {args.n_steps:,} Brownian dynamics steps ...")
    t0 = time.perf_counter()
    X = four_well(args.n_steps, n_trajectories=10, stride=stride, random_state=args.seed)
    X_test = four_well(
        args.n_steps // 5, n_trajectories=4, stride=stride, random_state=args.seed + 1
    )
    t_sim = time.perf_counter() - t0
    print(f"  {sum(len(x) for x in X):,} frames in {t_sim:.1f} s")

    print(f"Fitting SRVTransformer(lag_time={lag}, n_components=3) ...")
    t0 = time.perf_counter()
    srv = SRVTransformer(
        lag_time=lag,
        n_components=3,
        batch_size=4096,
        max_epochs=args.max_epochs,
        random_state=args.seed,
        verbose=args.verbose,
    ).fit(X)
    t_fit = time.perf_counter() - t0
    ref = four_well_reference(stride=stride)
    print(
        f"  trained for {srv.n_iter_} epochs in {t_fit:.1f} s; "
        f"held-out VAMP-2 = {srv.score(X_test):.3f}"
    )
    print()
    print("Implied timescales in integration steps (frames x stride):")
    print(f"  {'process':>8} {'SRV':>10} {'reference':>10} {'error':>8}")
    for i, (learned, exact) in enumerate(zip(srv.timescales_, ref.timescales), start=1):
        err = (learned - exact) / exact
        print(f"  {i:>8} {learned * stride:>10.0f} {exact * stride:>10.0f} {err:>+8.1%}")
    worst = np.max(np.abs(srv.timescales_[:2] / ref.timescales[:2] - 1))
    return 0 if worst <= 0.1 else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sklss", description="Molecular latent space simulators with a scikit-learn API."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit an SRV encoder to the four-well system and compare its timescales "
        "with the exact ones",
    )
    demo.add_argument(
        "--n-steps",
        type=int,
        default=500_000,
        help="integration steps per training trajectory (10 trajectories)",
    )
    demo.add_argument("--max-epochs", type=int, default=30, help="maximum training epochs")
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--verbose", type=int, default=0, help="0 silent, 1 a line per epoch")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
