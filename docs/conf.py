"""Sphinx configuration: MyST Markdown pages, the furo theme, autodoc + napoleon for the API
reference, and the local ``mlp_cli`` extension that renders the command line from its parser.

Build (from the repository root; zero warnings, nitpicky)::

    python -m sphinx -W -n --keep-going -b html docs docs/_build/html
"""

from __future__ import annotations

import importlib
import sys
from importlib import metadata
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# The checkout's packages (mlp, backends, benchmarks) and the local extension, importable even
# where the project is not installed.
sys.path[:0] = [str(ROOT), str(HERE / "_ext")]

project = "array-api-mlp"
author = "array-api-mlp contributors"
try:
    release = metadata.version(project)
except metadata.PackageNotFoundError:  # a clone that is not installed
    from mlp import __version__ as release
version = ".".join(release.split(".")[:2])
copyright = "the array-api-mlp contributors"

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "mlp_cli",
]

source_suffix = {".md": "markdown"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]
root_doc = "index"

# MyST: `{eval-rst}` and `{autodoc}`-style directives, `#heading` links between pages (the
# same slugs GitHub renders), and fences like ```{code-block} python for examples not run.
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

# autodoc: the documented objects in source order, their signatures' types in the description.
autodoc_member_order = "bysource"
autodoc_typehints = "description"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

html_theme = "furo"
html_title = f"array-api-mlp {release}"

# Nitpicky mode without intersphinx (the build works offline): references to other projects'
# objects, which only an inventory could resolve, are not warnings. Only these prefixes.
nitpick_ignore_regex = [
    ("py:class", r"(numpy|os|pathlib|collections\.abc|contextlib|typing|sklearn)\..*"),
    ("py:(mod|func)", r"sklearn\..*"),
]
nitpick_ignore = [
    # mlp._xp.Array: the type alias the annotations use for "an array of any array-API
    # library" (typing.Any), not a class to link.
    ("py:class", "Array"),
    # Internal objects that public docstrings mention, outside the reference on purpose.
    *[("py:class", name) for name in (
        "mlp.inputs.DeviceData", "DeviceData", "backends.ops.Buffers",
        "backends.ops.AdamConstants", "mlp.sklearn.base.BaseMLP")],
    *[("py:data", name) for name in (
        "mlp.schema.DROPOUT", "mlp.schema.LABEL_SMOOTHING", "mlp.schema.WARMUP")],
    ("py:func", "mlp.files.atomic_write"),
    ("py:class", "mlp.train.DeviceData"),
    ("py:class", "Communicator"),
    ("py:mod", "backends.collectives"),  # mlp.distributed's collective, behind Distributed
    ("py:func", "schedule_from_config"),
    # mlp.steps.choose's return annotation, imported for type checking only: Sphinx 9 links it
    # to mlp.model.Step through _resolve_short_names, Sphinx 8 cannot.
    ("py:class", "Step"),
    ("py:meth", "AdamConstants.of"),
]

def _fix_docstrings(app, what, name, obj, options, lines):
    """Before napoleon: keep the first line of an attribute's or property's docstring as
    prose. The project writes those as sentences
    ("Number of classes: 10."), never napoleon's ``type: description`` form, which would
    turn "Number of classes" into a type to link."""
    if what in ("attribute", "property", "data") and lines:
        lines[:0] = ["..", ""]  # an empty comment: napoleon reads it as the "type: desc" line


def _canonical(target):
    """``backends.GenericOps.dropout`` -> ``backends.ops.GenericOps.dropout``: a name a package
    re-exports, by the module that defines it; ``None`` when it is not importable."""
    parts = target.split(".")
    for i in range(len(parts) - 1, 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        for j, part in enumerate(parts[i:], i):
            obj = getattr(obj, part, None)
            if isinstance(obj, type):
                rest = ".".join(parts[j + 1:])
                name = f"{obj.__module__}.{obj.__qualname__}"
                return f"{name}.{rest}" if rest else name
            if obj is None:
                return None
        return None
    return None


def _resolve_short_names(app, env, node, contnode):
    """A Python reference by a short name that the current module imports (``Schedule``,
    ``DataError``) resolves to the one documented object of that name; none or several: it
    stays unresolved (and warns)."""
    if node.get("refdomain") != "py" or node.get("refspecific"):
        return None
    domain = env.get_domain("py")
    if "." in node["reftarget"]:
        canonical = _canonical(node["reftarget"])
        if canonical is None or canonical == node["reftarget"]:
            return None
        return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                                   canonical, node, contnode)
    matches = domain.find_obj(env, None, None, node["reftarget"], node["reftype"], 1)
    if len({(entry.docname, entry.node_id) for _, entry in matches}) != 1:  # aliases: one
        return None
    node["refspecific"] = True
    return domain.resolve_xref(env, node["refdoc"], app.builder, node["reftype"],
                               node["reftarget"], node, contnode)


#: Links between pages are written as GitHub renders them (``../benchmarks/REPORT.md``); in the
#: site they lead to the report's rendered copy (``docs/reports/``).
REPORT_LINKS = {"](../benchmarks/REPORT.md)": "](reports/cpu.md)",
                "](../benchmarks/gpu/REPORT.md)": "](reports/gpu.md)"}


def _report_links(app, docname, source):
    for old, new in REPORT_LINKS.items():
        source[0] = source[0].replace(old, new)


def setup(app):
    app.connect("source-read", _report_links)
    app.connect("autodoc-process-docstring", _fix_docstrings, priority=400)
    app.connect("missing-reference", _resolve_short_names)
