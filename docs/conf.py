"""Sphinx configuration of the rds documentation.

Build (warnings are errors)::

    python -m sphinx -W -b html docs docs/_build/html
"""

from __future__ import annotations

import os
import sys
from importlib.metadata import PackageNotFoundError, version

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)  # the checkout's rds and analysis, even without an install
sys.path.insert(0, HERE)  # _dataset_tables, _gallery_scrapers
os.environ.setdefault("MPLBACKEND", "Agg")

import rds  # noqa: E402

project = "rds"
author = "the rds developers"
copyright = "2026, the rds developers"
try:
    release = version("rds")
except PackageNotFoundError:  # pragma: no cover - building from a bare checkout
    release = rds.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "api_intro.rst", "analyses/tables", "**.ipynb_checkpoints",
                    "gallery/README.rst", "tutorials/README.rst"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"

# --- API reference: one page per public module, generated from the modules and their __all__ ---------------------
# (autosummary's :recursive: cannot be used: analysis.escape_times, analysis.degenerate_stability, ... are both a
# module and the function the package re-exports under the same name.)


def _public_modules():
    import importlib
    import pkgutil

    names = []
    for pkg_name in ("rds", "analysis"):
        pkg = importlib.import_module(pkg_name)
        names.append(pkg_name)
        for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
            if not any(part.startswith("_") for part in info.name.split(".")):
                names.append(info.name)
    return sorted(names)


def _write_if_changed(path, text):
    if not os.path.exists(path) or open(path).read() != text:
        with open(path, "w") as f:
            f.write(text)


def _write_api_pages(app):
    """Write docs/api/<module>.rst: each public object documented once, under its shortest public name."""
    import importlib
    import inspect

    modules = {name: importlib.import_module(name) for name in _public_modules()}
    canonical = {}  # id(obj) -> (module name, member name), the shortest public path
    for name, mod in modules.items():
        for m in getattr(mod, "__all__", []):
            obj = getattr(mod, m, None)
            if obj is None or inspect.ismodule(obj) or not (inspect.isclass(obj) or callable(obj)):
                continue
            key = id(obj)
            if key not in canonical or len(name) < len(canonical[key][0]):
                canonical[key] = (name, m)
    out = os.path.join(HERE, "api")
    os.makedirs(out, exist_ok=True)
    index = ["API reference", "=============", "", ".. include:: ../api_intro.rst", "",
             ".. toctree::", "   :maxdepth: 1", ""]
    for name, mod in modules.items():
        own = {"Classes": [], "Functions": []}
        elsewhere, constants = [], []
        for m in getattr(mod, "__all__", []):
            obj = getattr(mod, m, None)
            if obj is None or inspect.ismodule(obj):
                continue
            if not (inspect.isclass(obj) or callable(obj)):
                constants.append(m)
            elif canonical[id(obj)][0] == name:
                own["Classes" if inspect.isclass(obj) else "Functions"].append(m)
            else:
                elsewhere.append(".".join(canonical[id(obj)]))
        # rds.models.fukumizu_amari, analysis.escape_times, ...: a module and a function share the name; the
        # function keeps the index entry
        clash = any(".".join(v) == name for v in canonical.values())
        lines = [name, "=" * len(name), "", f".. automodule:: {name}", "   :no-members:"]
        lines += ["   :no-index:", ""] if clash else [""]
        lines += [f".. currentmodule:: {name}", ""]
        for title, items in own.items():
            if items:
                lines += [f".. rubric:: {title}", "", ".. autosummary::", "   :toctree: ../generated",
                          "   :nosignatures:"]
                if title == "Classes":
                    lines += ["   :template: autosummary/class.rst"]
                lines += [""] + [f"   {m}" for m in items] + [""]
        if elsewhere:
            lines += [".. rubric:: Also here (documented under their public name)", ""]
            lines += [f"- :py:obj:`{full}`" for full in elsewhere] + [""]
        if constants:
            lines += [".. rubric:: Constants", ""] + [f"- ``{m}``" for m in constants] + [""]
        _write_if_changed(os.path.join(out, name + ".rst"), "\n".join(lines))
        index.append(f"   {name}")
    _write_if_changed(os.path.join(out, "index.rst"), "\n".join(index) + "\n")


def _write_generated(app, config):
    _write_api_pages(app)
    # the stubs of exactly these pages (autosummary's own scan misses pages new since the last incremental build)
    import glob

    pages = glob.glob(os.path.join(HERE, "api", "*.rst"))
    config.autosummary_generate = sorted(os.path.relpath(p, HERE) for p in pages)
    from _dataset_tables import write_tables

    write_tables(os.path.join(HERE, "analyses", "tables"))


def _escape_pipes(app, what, name, obj, options, lines):
    """Docstrings write |x| for absolute values; reST would read |x| as a substitution. Escape the bars outside
    literal blocks, doctests and inline literals."""
    literal_indent = None
    in_doctest = False
    for i, line in enumerate(lines):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if in_doctest:
            in_doctest = bool(stripped)  # a doctest block ends at a blank line
            continue
        if literal_indent is not None:
            if stripped and indent <= literal_indent:
                literal_indent = None
            else:
                continue
        if stripped.startswith(">>>"):
            in_doctest = True
            continue
        if "|" in line:
            parts = line.split("``")
            for k in range(0, len(parts), 2):  # even parts are outside ``inline literals``
                parts[k] = parts[k].replace("\\|", "|").replace("|", "\\|")
            lines[i] = "``".join(parts)
        if stripped.endswith("::"):
            literal_indent = indent


def setup(app):
    app.connect("autodoc-process-docstring", _escape_pipes)
    app.connect("config-inited", _write_generated)  # before the sources are listed


# --- autodoc / autosummary / numpydoc ---------------------------------------------------------------------------
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "inherited-members": False, "show-inheritance": False}
autodoc_typehints = "none"  # numpydoc shows the documented types; signatures stay readable
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False
numpydoc_validation_checks: set[str] = set()

# --- math: MathJax from the CDN, or a local copy when RDS_DOCS_MATHJAX names one (offline builds) -------------------
# e.g. RDS_DOCS_MATHJAX=file:///usr/share/javascript/mathjax/MathJax.js (Debian's libjs-mathjax, MathJax 2)
if os.environ.get("RDS_DOCS_MATHJAX"):
    mathjax_path = os.environ["RDS_DOCS_MATHJAX"]
    if mathjax_path.split("?")[0].endswith("MathJax.js"):  # MathJax 2
        if "?" not in mathjax_path:
            mathjax_path += "?config=TeX-AMS-MML_HTMLorMML"
        mathjax2_config = {"tex2jax": {"inlineMath": [["\\(", "\\)"]], "displayMath": [["\\[", "\\]"]],
                                       "processEscapes": True, "ignoreClass": "document",
                                       "processClass": "math|output_area"}}

# --- gallery -------------------------------------------------------------------------------------------------------
sphinx_gallery_conf = {
    "examples_dirs": ["tutorials", "gallery"],
    "gallery_dirs": ["auto_tutorials", "auto_gallery"],
    "filename_pattern": r"/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "remove_config_comments": True,
    "matplotlib_animations": False,
    "image_scrapers": ("_gallery_scrapers.figures",),  # the one scraper: pyplot and bare Figures, each once
    "reset_modules": ("matplotlib",),
    "show_memory": False,
    "capture_repr": ("_repr_html_", "__repr__"),
    "abort_on_example_error": True,
    "min_reported_time": 1,
}

# --- HTML ----------------------------------------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"rds {release}"
html_static_path = ["_static"]
html_css_files = ["rds.css"]
html_theme_options = {
    "navigation_depth": 2,
    "collapse_navigation": True,
    "show_toc_level": 2,
    "navbar_align": "left",
    # no right-hand sidebar on API and gallery pages: their code and tables get the width
    "secondary_sidebar_items": {p: ["page-toc", "sourcelink"] for p in ("*", "analyses/*", "api/*", "auto_tutorials/*")}
    | {"generated/*": [], "auto_gallery/*": []},
    "footer_start": ["copyright"],
    "footer_end": ["sphinx-version"],
}
html_context = {"default_mode": "light"}
html_show_sourcelink = True
