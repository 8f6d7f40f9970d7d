"""The front-end bundle that `js/` builds into `attnwidget/static/`: read it, or say how to build it."""

from __future__ import annotations

import warnings
from pathlib import Path

STATIC = Path(__file__).parent / "static"
#: The TypeScript sources, present in a source checkout (not in an installed wheel).
SOURCES = Path(__file__).parent.parent / "js"
#: A file of the package that the bundle imports.
COLOUR_TABLES = Path(__file__).parent / "colormaps.json"
BUILD_COMMAND = "bash scripts/setup_env.sh"


class FrontendBundleMissingError(ImportError):
    """A file of the front-end bundle is missing: the front-end was never built here."""


class StaleFrontendBundleWarning(UserWarning):
    """The bundle is older than a file of `js/`: the browser would run code that is not the source's."""


def read_bundle(name: str) -> str:
    """The text of `attnwidget/static/<name>`; refuses with the build command when it is missing."""
    path = STATIC / name
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FrontendBundleMissingError(
            f"attnwidget's front-end bundle {path} is missing. In a source checkout, build it with "
            f"`{BUILD_COMMAND}` (or `npm ci && npm run build` in js/), then restart the kernel; "
            "an installed wheel of attnwidget carries it."
        ) from None
    newest = newest_input(SOURCES)
    if newest is not None and newest.stat().st_mtime > path.stat().st_mtime:
        warnings.warn(
            f"{path} is older than {newest}: the widget runs an old build of its front-end. "
            f"Rebuild it with `{BUILD_COMMAND}` (or `npm run build` in js/).",
            StaleFrontendBundleWarning,
            stacklevel=2,
        )
    return text


def newest_input(sources: Path) -> Path | None:
    """The most recently modified input of the bundle (the files under `sources` outside `node_modules`,
    and the colour tables), or None where there are no sources (an installed wheel)."""
    if not (sources / "package.json").is_file():
        return None
    files = [
        path
        for path in sources.rglob("*")
        if "node_modules" not in path.relative_to(sources).parts and path.is_file()
    ]
    return max([*files, COLOUR_TABLES], key=lambda path: path.stat().st_mtime)
