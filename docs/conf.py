"""Sphinx configuration of the sklss documentation (``make docs``)."""

import os
import sys
from pathlib import Path

# Build against the source tree, installed or not; docs/ itself holds _gallery.py.
sys.path.insert(0, os.path.abspath(".."))
sys.path.insert(0, os.path.abspath("."))

# The tutorials run at CI size (tiny data, seconds) unless SKLSS_SMALL says otherwise:
# `make docs SKLSS_SMALL=0` renders them at full size.
os.environ.setdefault("SKLSS_SMALL", "1")

from _gallery import rerun_if_size_changed  # noqa: E402

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
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
# The gallery's header is read by sphinx-gallery, not as a page of its own.
exclude_patterns = ["_build", "tutorials/GALLERY_HEADER.rst"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

# API pages are generated from the docstrings into api/ at every build.
autosummary_generate = True
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# The tutorials: every script in tutorials/ runs, and its page (prose, code, printed output,
# figures, and the script and a notebook to download) is written into auto_tutorials/.
rerun_if_size_changed(Path(__file__).parent / "auto_tutorials", os.environ["SKLSS_SMALL"])
sphinx_gallery_conf = {
    "examples_dirs": "tutorials",
    "gallery_dirs": "auto_tutorials",
    "filename_pattern": r".*\.py$",  # execute every script, not only plot_*.py
    "within_subsection_order": "_gallery.TutorialOrder",
    "capture_repr": (),  # show what the scripts print, not the values of expressions
    "remove_config_comments": True,
    "download_all_examples": False,
    "show_memory": False,
    "min_reported_time": 1,
}

html_theme = "pydata_sphinx_theme"
html_static_path = ["_static"]
html_css_files = ["sklss.css"]
html_title = f"sklss {release}"
# The theme's colour mode on a first visit ("" would make its script log an error).
html_context = {"default_mode": "auto"}
html_theme_options = {
    "navbar_align": "left",
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc", "sg_download_links"],
}
