"""A bqplot panel of per-head statistics over a dataset, with their confidence intervals, that follows
a run while it counts.

    panel = attnwidget.DatasetStatisticsPanel()
    display(panel)
    frame = attnwidget.head_statistics_over(model, "pictures/", on_update=panel.update)

One dot per head (layer on x, heads spread around it) at the mean over the pictures counted so far,
with a bar over its interval (`_low` to `_high`); a picker chooses the statistic; hovering a dot
names the head, its mean, interval and picture count.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import bqplot
import ipywidgets
import numpy as np
import traitlets as t

from .dataset_statistics import CONFIDENCE

if TYPE_CHECKING:
    import pandas

UNITS = {"distance": "px", "entropy": "nats"}


class DatasetStatisticsPanel(ipywidgets.VBox):
    """Per-head means and intervals of a `head_statistics_over` frame; `update(frame)` redraws."""

    statistic = t.Unicode("distance")

    def __init__(self, frame: pandas.DataFrame | None = None, statistic: str = "distance"):
        self.frame: pandas.DataFrame | None = None
        x, y = bqplot.LinearScale(), bqplot.LinearScale()
        self.dots = bqplot.Scatter(
            x=np.zeros(0), y=np.zeros(0), scales={"x": x, "y": y}, default_size=36, colors=["#3b528b"]
        )
        self.intervals = bqplot.Lines(
            x=np.zeros((0, 2)),
            y=np.zeros((0, 2)),
            scales={"x": x, "y": y},
            colors=["#5ec962"],
            stroke_width=2,
        )
        self._y_axis = bqplot.Axis(scale=y, side="left", label=statistic)
        self.figure = bqplot.Figure(
            marks=[self.intervals, self.dots],
            axes=[bqplot.Axis(scale=x, label="layer", tick_format="d"), self._y_axis],
            fig_margin={"top": 16, "bottom": 44, "left": 60, "right": 12},
            layout=ipywidgets.Layout(width="420px", height="320px"),
        )
        self.picker = ipywidgets.ToggleButtons(
            options=[statistic], value=statistic, style={"button_width": "auto"}
        )
        self.caption = ipywidgets.Label("no pictures counted yet")
        super().__init__([self.picker, self.figure, self.caption], statistic=statistic)
        t.link((self.picker, "value"), (self, "statistic"))
        self.dots.observe(self._hovered, names="hovered_point")
        if frame is not None:
            self.update(frame)

    def update(self, frame: pandas.DataFrame) -> None:
        """Show `frame` (a `head_statistics_over` result, final or so far)."""
        names = statistic_names(frame)
        if not names:
            raise ValueError("the frame has no statistics: give the result of head_statistics_over")
        self.frame = frame
        if tuple(self.picker.options) != names:
            self.picker.options = names
        if self.statistic not in names:
            self.statistic = names[0]
        self._draw()

    def _draw(self) -> None:
        frame, name = self.frame, self.statistic
        if frame is None:
            return
        layers, heads = frame["layer"].to_numpy(), frame["head"].to_numpy()
        count = int(heads.max())
        # Heads of a layer spread a little around its x, so equal values stay apart.
        x = layers + (heads - (count + 1) / 2) * (0.6 / max(count, 1))
        low, high = frame[f"{name}_low"].to_numpy(), frame[f"{name}_high"].to_numpy()
        known = np.isfinite(low) & np.isfinite(high)  # one picture has no interval yet
        with self.dots.hold_sync(), self.intervals.hold_sync():
            self.dots.x, self.dots.y = x, frame[name].to_numpy()
            self.intervals.x = np.stack([x[known], x[known]], axis=1)
            self.intervals.y = np.stack([low[known], high[known]], axis=1)
        unit = f" ({UNITS[name]})" if name in UNITS else ""
        confidence = frame.attrs.get("confidence", CONFIDENCE)
        self._y_axis.label = f"{name}{unit}, {confidence:.0%} interval"
        self.caption.value = self._summary()

    def _summary(self) -> str:
        attrs = self.frame.attrs
        parts = [f"{attrs.get('pictures', 0)} pictures"]
        if attrs.get("skipped"):
            parts.append(f"{len(attrs['skipped'])} skipped")
        if attrs.get("failed"):
            parts.append(f"{len(attrs['failed'])} failed")
        if attrs.get("interrupted"):
            parts.append("interrupted")
        return ", ".join(parts)

    def _hovered(self, change: dict) -> None:
        index = change["new"]
        if self.frame is None or index is None or not 0 <= index < len(self.frame):
            self.caption.value = self._summary() if self.frame is not None else self.caption.value
            return
        row, name = self.frame.iloc[index], self.statistic
        self.caption.value = (
            f"layer {int(row['layer'])}, head {int(row['head'])}: {row[name]:.4g} "
            f"({row[f'{name}_low']:.4g} to {row[f'{name}_high']:.4g}), {int(row['pictures'])} pictures"
        )

    @t.observe("statistic")
    def _statistic_changed(self, change: dict) -> None:
        self._draw()


def statistic_names(frame: pandas.DataFrame) -> tuple[str, ...]:
    """The statistics of a `head_statistics_over` frame, in its column order."""
    return tuple(
        name
        for name in frame.columns
        if name not in ("layer", "head", "pictures") and f"{name}_low" in frame and f"{name}_high" in frame
    )
