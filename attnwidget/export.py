"""Standalone interactive HTML: widgets with their state and every script they need, in one file.

The page works offline and fetches nothing: it inlines RequireJS, the Jupyter widgets HTML manager
(both copied next to the widget bundle when the front-end is built), the JavaScript of every widget
package the widgets use (from the package's installed notebook extension: anywidget, bqplot,
bqscales, ...) and the widgets' saved state, binary data included. Clicking a tile opens its
overlay and the statistics panel stays linked to the grid, as in the notebook; what needs a kernel
(a new query, another picture) says so.
"""

from __future__ import annotations

import html
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import ipywidgets
from ipywidgets.embed import dependency_state, embed_data, escape_script

from .bundle import FrontendBundleMissingError, read_bundle
from .render import write_atomically

#: Modules the HTML manager has built in: no script to add for them.
BUILT_IN_MODULES = ("@jupyter-widgets/base", "@jupyter-widgets/controls", "@jupyter-widgets/output")

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="generator" content="attnwidget">
<title>{title}</title>
<style>body {{ font-family: system-ui, sans-serif; margin: 16px; }}</style>
<script type="application/json" id="attnwidget-scripts">{scripts}</script>
<script>
// RequireJS, each widget package's module and the widgets' HTML manager, run from memory in that
// order: the page fetches nothing. The manager renders the views below once the page has loaded.
(function () {{
  var scripts = JSON.parse(document.getElementById("attnwidget-scripts").textContent);
  function url(source) {{
    return URL.createObjectURL(new Blob([source], {{ type: "text/javascript" }}));
  }}
  function run(source, then) {{
    var script = document.createElement("script");
    script.src = url(source);
    script.onload = then;
    document.head.appendChild(script);
  }}
  run(scripts.requirejs, function () {{
    var paths = {{}};
    Object.keys(scripts.modules).forEach(function (name) {{ paths[name] = url(scripts.modules[name]); }});
    window.requirejs.config({{ paths: paths }});
    run(scripts.htmlManager, function () {{}});
  }});
}})();
</script>
<script type="application/vnd.jupyter.widget-state+json">
{state}
</script>
</head>
<body>
<h1 style="font-size: 1.2em">{title}</h1>
{views}
</body>
</html>
"""


VIEW = '<script type="application/vnd.jupyter.widget-view+json">{}</script>'


class MissingScriptError(FileNotFoundError):
    """A script the standalone page needs is not installed; the message says how to get it."""


def to_html(
    widgets: ipywidgets.Widget | Sequence[ipywidgets.Widget], path: str | Path, *, title: str = ""
) -> Path:
    """Write `widgets` (one or a list, shown one below the other) to `path` as a standalone HTML page.

    Everything the page needs is inside it (typically 4 to 6 MB), so it opens offline and can be
    sent as one file. The file is written whole or not at all. Returns the path.
    """
    views = [widgets] if isinstance(widgets, ipywidgets.Widget) else list(widgets)
    if not views:
        raise ValueError("nothing to export: give a widget or a list of widgets")
    # Defaults are kept: the front-ends need them (anywidget its module source, `_esm`).
    data = embed_data(views=views, state=dependency_state(views, drop_defaults=False))
    state = data["manager_state"]
    scripts = {
        "requirejs": _static_script("require.js"),
        "modules": {name: module_source(name) for name in sorted(_third_party_modules(state))},
        "htmlManager": _static_script("embed-amd.js"),
    }
    page = PAGE.format(
        title=html.escape(title or "attnwidget"),
        scripts=escape_script(json.dumps(scripts)),
        state=escape_script(json.dumps(state)),
        views="\n".join(VIEW.format(escape_script(json.dumps(view))) for view in data["view_specs"]),
    )
    return write_atomically(Path(path), page.encode("utf-8"))


def module_source(name: str) -> str:
    """The AMD JavaScript of widget package `name`, from its installed notebook extension."""
    for root in _extension_roots():
        script = root / name / "index.js"
        if script.is_file():
            return script.read_text(encoding="utf-8")
    raise MissingScriptError(
        f"the JavaScript of the widget package {name!r} is not installed, so the page could not show its "
        f"widgets offline: install the Python package that provides it (pip install {name})"
    )


def _third_party_modules(state: dict) -> set[str]:
    names = set()
    for model in state["state"].values():
        for key in ("model_module", "view_module"):
            name = model.get(key) or model["state"].get(f"_{key}")
            if name and name not in BUILT_IN_MODULES:
                names.add(name)
    return names


def _extension_roots() -> list[Path]:
    """Folders that hold notebook extensions: this environment's first, then Jupyter's data paths."""
    roots = [Path(sys.prefix) / "share" / "jupyter" / "nbextensions"]
    try:
        from jupyter_core.paths import jupyter_path
    except ImportError:
        return roots
    return [*roots, *(Path(folder) for folder in jupyter_path("nbextensions"))]


def _static_script(name: str) -> str:
    try:
        return read_bundle(name)
    except FrontendBundleMissingError as error:
        raise MissingScriptError(str(error)) from None
