"""The demo report: ``metrics.md`` and ``metrics.json``."""

import json

import numpy as np


def _write_report(out, report, args):
    """Write ``metrics.json`` (the metrics, checks and files) and ``metrics.md`` (the tables)."""
    from ... import __version__

    data = {
        "sklss_version": __version__,
        "system": report["system"],
        "seed": args.seed,
        "seconds": report["seconds"],
        **_plain(report["metrics"]),
        "checks": _plain(report["checks"]),
        "files": report["files"],
    }
    (out / "metrics.json").write_text(json.dumps(data, indent=2) + "\n")
    (out / "metrics.md").write_text("\n".join(_markdown(out, report, args.seed)))


def _plain(value):
    """``value`` with numpy arrays and scalars as lists and Python numbers, for JSON."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _markdown(out, report, seed):
    """The lines of ``metrics.md``: a table per section, the targets and the files."""
    from ... import __version__

    lines = [f"# {report['title']}", ""]
    lines.append(
        f"Written by `sklss demo` (sklss {__version__}, seed {seed}) in {report['seconds']:.0f} s."
    )
    for section in report["sections"]:
        lines += ["", f"## {section['title']}", "", section["text"], ""]
        lines.append("| " + " | ".join(section["columns"]) + " |")
        lines.append("|" + "---|" * len(section["columns"]))
        for row in section["rows"]:
            lines.append("| " + " | ".join(row) + " |")
    lines += ["", "## Targets", ""]
    for check in report["checks"]:
        lines.append(
            f"- {'met' if check['passed'] else 'MISSED'}: {check['name']}, {check['text']}"
        )
    lines += ["", "## Files", ""]
    for name in report["files"]:
        lines.append(f"- `{name}`" + (f"\n\n  ![{name}]({name})" if name.endswith(".png") else ""))
    lines += [
        "",
        "The simulator in `model/` runs on its own:",
        "",
        "```bash",
        f"sklss sample {out / 'model'} -n 4 --n-steps 10000 -o samples.npy",
        "```",
        "",
    ]
    return lines
