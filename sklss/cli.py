"""Command-line interface: ``sklss demo`` (and ``python -m sklss demo``)."""

import argparse
import sys
import time


def _demo(args):
    import numpy as np

    from . import LatentSpaceSimulator, MDNPropagator, SRVTransformer
    from .datasets import four_well, four_well_reference
    from .metrics import free_energy_profile, free_energy_rmse, markov_timescales

    print("sklss demo: the four-well system of Sidky, Chen & Ferguson (2020), section 3.1")
    t0 = time.perf_counter()
    # 1. The encoder: 10^7 Brownian steps saved every 100th, lag 3 frames (300 steps).
    stride = 100
    X = four_well(args.n_steps // 20, n_trajectories=20, stride=stride, random_state=args.seed)
    srv = SRVTransformer(
        lag_time=3,
        n_components=3,
        batch_size=1024,
        max_epochs=30,
        random_state=args.seed,
        verbose=args.verbose,
    ).fit(X)
    ref = four_well_reference(stride=stride)
    print(
        f"\n1. SRVTransformer on {sum(len(x) for x in X):,} frames "
        f"({time.perf_counter() - t0:.0f} s). Implied timescales in integration steps:"
    )
    print(f"   {'process':>8} {'SRV':>8} {'exact':>8} {'error':>8}")
    for i, (learned, exact) in enumerate(zip(srv.timescales_, ref.timescales), start=1):
        print(
            f"   {i:>8} {learned * stride:>8.0f} {exact * stride:>8.0f} "
            f"{learned / exact - 1:>+8.1%}"
        )

    # 2. A latent space simulator in x itself (encoder and decoder passthrough).
    t0 = time.perf_counter()
    stride, lag = 10, 10
    x = four_well(args.n_steps // 5, stride=stride, random_state=args.seed)
    lss = LatentSpaceSimulator(
        "passthrough",
        MDNPropagator(n_kernels=8, hidden_layer_sizes=(100, 100), max_epochs=30, patience=6),
        "passthrough",
        lag_time=lag,
        random_state=args.seed,
        verbose=args.verbose,
    ).fit(x)
    syn = lss.sample(x[:1], len(x), random_state=args.seed).latent[0]
    ref = four_well_reference(stride=stride)
    edges = np.linspace(-1.1, 1.1, 51)
    exact = np.histogram(ref.grid, edges, weights=ref.stationary_density)[0]
    F_exact = -np.log(exact / exact.max())
    F_syn, _ = free_energy_profile(syn, bins=edges)
    rmse = free_energy_rmse(F_exact, F_syn, max_free_energy=4.0)
    t_lss = markov_timescales(syn, edges, 1)[0] * lag * stride
    t_exact = ref.timescales[0] * stride
    print(
        f"\n2. LatentSpaceSimulator(MDN, C=8, tau=100 steps) trained on {len(x):,} frames "
        f"and run for as many ({time.perf_counter() - t0:.0f} s):"
    )
    print(f"   free-energy RMSE against the exact profile: {rmse:.3f} kT (F <= 4 kT)")
    print(
        f"   slowest timescale: LSS {t_lss:.0f} steps, exact {t_exact:.0f} steps "
        f"({t_lss / t_exact - 1:+.1%})"
    )
    ok = abs(srv.timescales_[0] / four_well_reference(stride=100).timescales[0] - 1) <= 0.1
    return 0 if ok and rmse <= 0.2 else 1


def build_parser():
    parser = argparse.ArgumentParser(
        prog="sklss", description="Molecular latent space simulators with a scikit-learn API."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser(
        "demo",
        help="fit an SRV encoder and a latent space simulator to the four-well system and "
        "compare them with the exact answers",
    )
    demo.add_argument(
        "--n-steps",
        type=int,
        default=10_000_000,
        help="Brownian dynamics steps for the encoder (a fifth for the LSS)",
    )
    demo.add_argument("--seed", type=int, default=0, help="random seed")
    demo.add_argument("--verbose", type=int, default=0, help="0 silent, 1 a line per epoch")
    demo.set_defaults(func=_demo)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
