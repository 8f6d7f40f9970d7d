"""A bqplot panel of per-head statistics beside the grid, linked to it both ways.

One dot per head: layer on x, mean attention distance in pixels (the figure of Dosovitskiy et al.,
2020) or attention entropy on y. Clicking a dot selects that head in the grid and opens its
overlay; selecting a head in the grid highlights its dot. The grid's front-end keeps the two
selections in step (its `head_dots` trait), so the link also works in saved notebooks and exported
HTML, where there is no kernel.
"""

from __future__ import annotations

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from .methods import HeadStatistics
from .widget import AttentionGrid

METRICS = {
    "distance": "mean attention distance (px)",
    "entropy": "attention entropy (nats)",
}


class HeadStatsPanel(ipywidgets.VBox):
    """Per-head statistics of `grid`'s picture, one dot per head, linked to the grid's selection."""

    metric = t.Enum(tuple(METRICS), "distance")

    def __init__(self, grid: AttentionGrid, metric: str = "distance"):
        self.grid = grid
        self.statistics: HeadStatistics | None = None
        self._x = bqplot.LinearScale()
        self._y = bqplot.LinearScale()
        self.dots = bqplot.Scatter(
            x=np.zeros(0),
            y=np.zeros(0),
            scales={"x": self._x, "y": self._y},
            default_size=48,
            colors=["#3b528b"],
            selected_style={"fill": "#fde725", "stroke": "black", "opacity": 1.0},
            unselected_style={"opacity": 0.6},
            interactions={"click": "select"},
            tooltip=bqplot.Tooltip(fields=["x", "y"], labels=["layer", "value"], formats=["d", ".3g"]),
        )
        self._x_axis = bqplot.Axis(scale=self._x, label="layer", tick_format="d")
        self._y_axis = bqplot.Axis(scale=self._y, side="left", label=METRICS[metric])
        self.figure = bqplot.Figure(
            marks=[self.dots],
            axes=[self._x_axis, self._y_axis],
            fig_margin={"top": 16, "bottom": 44, "left": 60, "right": 12},
            layout=ipywidgets.Layout(width="360px", height="320px"),
        )
        self.metric_picker = ipywidgets.ToggleButtons(
            options=[(label.split(" (")[0], name) for name, label in METRICS.items()],
            value=metric,
            style={"button_width": "auto"},
        )
        super().__init__([self.metric_picker, self.figure], metric=metric)
        t.link((self.metric_picker, "value"), (self, "metric"))
        grid.head_dots = self.dots
        grid.observe(self._grid_ran, names=["status", "image_count"])
        self.refresh()

    def refresh(self) -> None:
        """Show the statistics: the mean over the pictures of `run_many`, else the picture's own."""
        if self.grid.status != "done":
            return
        mean = self.grid.mean_statistics
        self.statistics = mean if mean is not None else self.grid.head_statistics()
        self._draw()

    def _draw(self) -> None:
        if self.statistics is None:
            return
        values = getattr(self.statistics, self.metric)
        layers, heads = values.shape
        # Heads of a layer spread a little around its x so that dots with equal values stay apart.
        spread = (np.arange(heads) - (heads - 1) / 2) * (0.5 / max(heads, 1))
        with self.dots.hold_sync():
            self.dots.x = (np.arange(1, layers + 1)[:, None] + spread[None]).ravel()
            self.dots.y = values.ravel()
        frame = self.grid.dataset_statistics
        pictures = frame.attrs["pictures"] if frame is not None else 1
        self._y_axis.label = METRICS[self.metric] + (f", mean of {pictures} pictures" if pictures > 1 else "")

    @t.observe("metric")
    def _metric_changed(self, change: dict) -> None:
        self._draw()

    def _grid_ran(self, change: dict) -> None:
        self.refresh()  # the grid keeps each picture's statistics: refreshing is cheap
