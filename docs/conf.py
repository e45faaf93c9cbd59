"""Sphinx configuration of xpcnn's documentation site (``nox -s docs`` builds it into
``docs/_build/html`` with warnings as errors).

Sphinx rather than MkDocs: the docstrings are reStructuredText already (``:class:`` and
``:func:`` cross-references, ``::`` literal blocks), which autodoc renders and checks as they
are; the Markdown pages (this folder, README-style) go through MyST, with ``$...$`` math for
the equations page.  Theme: furo (maintained, readable on a phone).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.abspath(".."))

import xpcnn  # noqa: E402

project = "xpcnn"
author = "The xpcnn developers"
copyright = "2026, The xpcnn developers"  # noqa: A001
release = version = xpcnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_parser",
]
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"xpcnn {release}"
autodoc_member_order = "bysource"
autodoc_default_options = {"members": True, "show-inheritance": True}
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False
nitpicky = False
suppress_warnings = ["myst.xref_missing"]
