"""Sphinx configuration of xpcnn's documentation site (``nox -s docs`` builds it into
``docs/_build/html`` with warnings as errors).

Sphinx rather than MkDocs: the docstrings are reStructuredText already (``:class:`` and
``:func:`` cross-references, ``::`` literal blocks), which autodoc renders and checks as they
are; the Markdown pages (this folder, README-style) go through MyST, with ``$...$`` math for
the equations page; MyST-NB executes the chapter notebooks (examples/chapters) so that the site
shows them with their figures.  Theme: furo (maintained, readable on a phone).
"""

from __future__ import annotations

import glob
import os
import shutil
import sys

sys.path.insert(0, os.path.abspath(".."))
HERE = os.path.dirname(os.path.abspath(__file__))

# The chapter notebooks live in examples/chapters (their tests and generator are there); the
# site executes copies of them, with their figures (MyST-NB).
CHAPTERS = os.path.join(HERE, "chapters")
shutil.rmtree(CHAPTERS, ignore_errors=True)
os.makedirs(CHAPTERS)
for notebook in sorted(glob.glob(os.path.join(HERE, "..", "examples", "chapters", "*.ipynb"))):
    shutil.copy(notebook, CHAPTERS)

import xpcnn  # noqa: E402

project = "xpcnn"
author = "The xpcnn developers"
copyright = "2026, The xpcnn developers"  # noqa: A001
release = version = xpcnn.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "myst_nb",  # MyST Markdown pages and the notebooks, executed at build time
]
nb_execution_mode = "force"
nb_execution_timeout = 180
nb_execution_raise_on_error = True
myst_enable_extensions = ["dollarmath", "amsmath"]
myst_heading_anchors = 3
source_suffix = {".rst": "restructuredtext", ".md": "myst-nb", ".ipynb": "myst-nb"}
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
