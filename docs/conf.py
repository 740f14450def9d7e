"""Sphinx configuration for the flowlib documentation.

Built by ``make docs`` with warnings treated as errors. Pages are plain
reStructuredText; myst-parser renders the few Markdown pages (performance.md).
"""

from __future__ import annotations

import os
import sys

# Build against the working tree even when flowlib is not installed.
sys.path.insert(0, os.path.abspath(".."))

project = "flowlib"
author = "the flowlib developers"
copyright = "the flowlib developers"

try:
    from importlib.metadata import version as _version

    release = _version("flowlib")
except Exception:  # not installed: the docs still build
    release = "0.1.0"
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# Document what is really importable; a missing module is an error, not a mock.
autodoc_mock_imports: list[str] = []
autodoc_default_options = {
    "members": True,
    "show-inheritance": True,
}
autodoc_member_order = "bysource"
autodoc_typehints = "description"

html_theme = "alabaster"
html_static_path: list[str] = []
html_title = f"flowlib {release}"
