"""PNG pictures of a grid as it is shown: the layer x head grid, one overlay, and the static picture
in the widget's output for places that cannot show widgets (GitHub, nbviewer)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from .contract import HIGH_NORM_FACTOR, VALUE_KIND_LABELS
from .encode import decode_rows
from .render import export_png, grid_picture, normalize_tiles, overlay_figure
from .render_marks import OverlayMarks, grid_coverage

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
        tiles,
        grid.layers,
        grid.heads,
        colormap=grid.colormap,
        normalize=grid.normalize,
        head_names=grid.head_names,
        caption=value_caption(grid),
        **options,
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
    special = run.layout.special_count
    high_norm_factor = None
    value_range = None
    if grid.method == "attention" or layer is not None or head is not None:
        if layer is None or head is None:
            if len(grid.selected) != 2:
                raise ValueError(
                    "select a head first (grid.selected = [layer, head]) or give layer= and head="
                )
            layer, head = grid.selected
        rows = grid._head_reductions(layer, head, 0).query_rows()[0]
        values = rows[special:].reshape(gh, gw).numpy()
        title = f"l={layer} h={head} · {value_caption(grid) or 'attention'} from the query"
        value_range = _tile_range(grid, layer, head)
    else:
        values = np.frombuffer(grid.explanation, dtype="<f4").reshape(gh, gw)
        title = grid.explanation_title
        high_norm_factor = HIGH_NORM_FACTOR if grid.method == "token-norms" else None
    marks = OverlayMarks(
        mask_mass=grid.mask_mass,
        high_norm_factor=high_norm_factor,
        query_patches=tuple(token - special for token in grid.query if token >= special),
    )
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
        value_range=value_range,
        coverage=grid_coverage(grid.grid, grid.input_size, grid.patch_size),
        marks=marks,
        caption=value_caption(grid),
        **options,
    )
    return export_png(figure, path, dpi=dpi)


def value_caption(grid: AttentionGrid) -> str:
    """What the grid's values are, in words, where they are not attention weights (else "")."""
    return "" if grid.value_kind == "attention" else VALUE_KIND_LABELS[grid.value_kind]


def _tile_range(grid: AttentionGrid, layer: int, head: int) -> tuple[float, float] | None:
    """The range the front-end colours a head's overlay with: the grid's normalisation of its tile, or
    `None` (the map's own range) per head and for a head the grid does not show."""
    if grid.normalize == "head" or layer not in grid.layers or head not in grid.heads:
        return None
    own = np.frombuffer(grid.maps_range, dtype="<f4").astype(np.float64)
    ranges = normalize_tiles(own.reshape(len(grid.layers), len(grid.heads), 1, 2), grid.normalize)[1]
    low, high = ranges[grid.layers.index(layer), grid.heads.index(head)]
    return float(low), float(high)
