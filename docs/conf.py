"""Sphinx configuration of the sklss documentation (``make docs``)."""

import os
import sys

# Build against the source tree, installed or not.
sys.path.insert(0, os.path.abspath(".."))

import sklss  # noqa: E402

project = "sklss"
author = "the sklss developers"
copyright = "2025, the sklss developers"
version = release = sklss.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "numpydoc",
]

templates_path = ["_templates"]
exclude_patterns = ["_build"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

# API pages are generated from the docstrings into api/ at every build.
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

html_theme = "alabaster"
html_static_path = ["_static"]
html_title = f"sklss {release}"
html_theme_options = {
    "description": "Molecular latent space simulators with a scikit-learn API",
    "fixed_sidebar": True,
}
