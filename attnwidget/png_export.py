"""PNG pictures of a grid as it is shown: the layer x head grid, one overlay, and the static picture
in the widget's output for places that cannot show widgets (GitHub, nbviewer)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .encode import decode_rows
from .render import export_png, grid_picture, overlay_figure

if TYPE_CHECKING:
    from .widget import AttentionGrid


def grid_png(grid: AttentionGrid, path: str | Path | None, *, dpi: int, **options: Any) -> bytes:
    """`AttentionGrid.to_png`: the tiles as shown (view, colormap, normalisation)."""
    if grid.status != "done" or not grid.maps:
        raise RuntimeError("the grid is empty: run the widget on an image first (widget.run(image))")
    rows, cols = len(grid.layers), len(grid.heads)
    if grid.view == "matrix":
        queries = len(grid.query_labels) or grid.token_count  # the decoder's tokens, for cross attention
        height, width = min(queries, grid.matrix_size), min(grid.token_count, grid.matrix_size)
        tiles = decode_rows(grid.matrices, grid.matrices_range, width).reshape(rows, cols, height, width)
    else:
        gh, gw = grid.grid
        tiles = decode_rows(grid.maps, grid.maps_range, gh * gw).reshape(rows, cols, gh, gw)
    picture = grid_picture(
        tiles, grid.layers, grid.heads, colormap=grid.colormap, normalize=grid.normalize, **options
    )
    return export_png(picture, path, dpi=dpi)


def overlay_png(
    grid: AttentionGrid,
    path: str | Path | None,
    *,
    layer: int | None,
    head: int | None,
    dpi: int,
    **options: Any,
) -> bytes:
    """`AttentionGrid.overlay_to_png`: one head's map (or the method's) over the picture."""
    if grid.status != "done" or grid._session.input is None:
        raise RuntimeError("the grid is empty: run the widget on an image first (widget.run(image))")
    run = grid._session.input
    if run.prepared.picture is None:
        raise TypeError("this input has no picture to overlay (a text): use to_png() with view='matrix'")
    gh, gw = grid.grid
    if grid.method == "attention" or layer is not None or head is not None:
        if layer is None or head is None:
            if len(grid.selected) != 2:
                raise ValueError(
                    "select a head first (grid.selected = [layer, head]) or give layer= and head="
                )
            layer, head = grid.selected
        rows = grid._head_reductions(layer, head, 0).query_rows()[0]
        values = rows[run.layout.special_count :].reshape(gh, gw).numpy()
        title = f"l={layer} h={head} · attention from the query"
    else:
        values = np.frombuffer(grid.explanation, dtype="<f4").reshape(gh, gw)
        title = grid.explanation_title
    with Image.open(io.BytesIO(grid.image)) as source:
        picture = source.convert("RGB")
    figure = overlay_figure(
        picture,
        values,
        tuple(grid.crop_box),
        title=title,
        alpha=grid.alpha,
        colormap=grid.colormap,
        interpolation=grid.interpolation,
        **options,
    )
    return export_png(figure, path, dpi=dpi)
