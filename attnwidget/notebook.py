"""`explore`: show a grid in the notebook and run it, the quickest way in."""

from __future__ import annotations

from typing import Any

from .images import ImageLike
from .widget import AttentionGrid


def explore(
    image: ImageLike | None = None, model: Any = None, *, panel: bool = False, **kwargs: Any
) -> AttentionGrid:
    """Display an `AttentionGrid` and run it on `image`, so the grid fills in while the model runs.

    With `panel=True` a `HeadStatsPanel` (mean attention distance or entropy per head, linked to the
    grid's selection) is shown beside it. Keep the returned widget (`grid = explore(...)`) to run it
    on other images: `grid.run(other)`.
    """
    from IPython.display import display

    widget = AttentionGrid(model, **kwargs)
    if panel:
        import ipywidgets

        from .panel import HeadStatsPanel

        # The panel goes beside the grid where there is room, else below it.
        wrap = ipywidgets.Layout(flex_flow="row wrap", align_items="flex-start")
        display(ipywidgets.HBox([widget, HeadStatsPanel(widget)], layout=wrap))
    else:
        display(widget)
    if image is not None:
        widget.run(image)
    return widget
