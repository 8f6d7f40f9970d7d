"""`explore` and `explore_many`: show a grid in the notebook and run it, the quickest way in."""

from __future__ import annotations

from typing import Any

from .gallery import DEFAULT_SAMPLE
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


def explore_many(
    images: Any,
    model: Any = None,
    *,
    sample: int = DEFAULT_SAMPLE,
    batch_size: int = 32,
    num_workers: int = 0,
    progress: bool = True,
    **kwargs: Any,
) -> AttentionGrid:
    """Display an `AttentionGrid` beside a `DatasetStatisticsPanel` and run the grid over a dataset
    (`AttentionGrid.run_many`): the panel draws each head's statistics and intervals as the batches are
    counted, and the grid then browses a sample of `sample` pictures. `images` is anything
    `head_statistics_over` takes; the frame is `grid.dataset_statistics`."""
    import ipywidgets
    from IPython.display import display

    from .dataset_panel import DatasetStatisticsPanel

    widget = AttentionGrid(model, **kwargs)
    panel = DatasetStatisticsPanel()
    wrap = ipywidgets.Layout(flex_flow="row wrap", align_items="flex-start")
    display(ipywidgets.HBox([widget, panel], layout=wrap))
    return widget.run_many(
        images,
        sample=sample,
        batch_size=batch_size,
        num_workers=num_workers,
        progress=progress,
        on_update=panel.update,
    )
