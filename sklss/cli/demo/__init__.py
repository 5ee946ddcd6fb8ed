"""``sklss demo``: fit latent space simulators to systems with known answers and write a report.

The toy demo runs the four-well system (an SRV encoder, and an MDN propagator on x itself) and
SRV + MDN + cWGAN on the hidden-coordinate toy; ``--system alanine-dipeptide`` runs on real
OpenMM MD. The report folder holds ``metrics.md``, ``metrics.json``, PNG figures and the saved
model.
"""

import sys
import time
from pathlib import Path

from .._errors import CommandError
from ._report import _write_report
from .alanine import _demo_alanine
from .toy import _demo_toy


def run_demo(args):
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise CommandError(f"--out '{out}' exists and is not a folder")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    if args.system == "alanine-dipeptide":
        report = _demo_alanine(args, out)
    else:
        report = _demo_toy(args, out)
    report["seconds"] = time.perf_counter() - t0
    _write_report(out, report, args)
    failed = [c for c in report["checks"] if not c["passed"]]
    print(f"\nReport written to '{out}' in {report['seconds']:.0f} s:")
    for name in ["metrics.md", "metrics.json"] + report["files"]:
        print(f"   {out / name}")
    for check in report["checks"]:
        print(f"   [{'ok' if check['passed'] else 'MISSED'}] {check['name']}: {check['text']}")
    if failed and args.check:
        print(f"sklss demo: {len(failed)} fidelity target(s) missed", file=sys.stderr)
        return 1
    return 0
