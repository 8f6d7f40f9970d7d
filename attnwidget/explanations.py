"""The grid's explanation: the map of its `method` (rollout, Grad-CAM, ...) for the input shown,
computed by the source when it offers that method."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .contract import PER_LAYER_METHODS
from .encode import float32_bytes
from .source import ExplainingSource, Source

if TYPE_CHECKING:
    from .widget import AttentionGrid


def update_explanation(grid: AttentionGrid) -> None:
    """Compute the chosen method's map for the current input (nothing for per-head attention); a
    ValueError when the source does not offer the method."""
    run = grid._session.input
    if grid.method == "attention" or run is None:
        grid.explanation, grid.explanation_title = b"", ""
        return
    source = explaining(grid.source)
    if grid.method not in source.methods:
        raise ValueError(f"{source.name} offers no {grid.method!r} map (the methods are for vision models)")
    layer = grid.selected[0] if grid.method in PER_LAYER_METHODS and grid.selected else None
    result = source.explain(
        run.model_input,
        grid.method,
        layer=layer,
        target=grid.target or None,
        attentions=grid._session.cache,
        fusion=grid.rollout_fusion,
        discard_ratio=grid.discard_ratio,
        start_layer=grid.start_layer,
    )
    with grid.hold_sync():
        grid.explanation = float32_bytes(result.map.flatten())
        grid.explanation_title = result.title
        if grid.message.startswith("error:"):
            grid.message = ""


def explaining(source: Source) -> ExplainingSource:
    """`source` as one that explains (it names methods); a ValueError for one that offers none."""
    if not source.methods:
        raise ValueError(
            f"{source.name} has no explanation methods (they are for vision models from transformers): "
            "it shows each head's attention"
        )
    return source  # type: ignore[return-value]  # a source that names methods explains them
