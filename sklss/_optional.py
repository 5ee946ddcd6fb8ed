"""Optional dependencies: mdtraj and OpenMM, the ``md`` extra, imported when first needed.

``import sklss`` works without them; what needs them imports them through :func:`import_md`,
whose error says which feature needs what and how to install it.
"""

import importlib

_MD_EXTRA = 'pip install "sklss[md]"'


def import_md(name="mdtraj", *, feature="this function"):
    """Import ``mdtraj`` or ``openmm`` (the ``md`` extra), with an ImportError saying what to do.

    Parameters
    ----------
    name : {"mdtraj", "openmm", "openmm.app", "openmm.unit"}
        Module to import.
    feature : str
        What needs it, for the error message.
    """
    try:
        return importlib.import_module(name)
    except ImportError as exc:
        top = name.split(".")[0]
        raise ImportError(
            f"{feature} needs the optional package {top!r}, which is not installed. Install the "
            f"molecular extra with: {_MD_EXTRA}"
        ) from exc
