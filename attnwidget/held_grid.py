"""Grids of attention at hand: `from_attention` (`AttentionGrid.from_attention`) and `show` draw
tensors the user holds; `stream` draws layers handed over by the user's own loop as they come.

A stream's run reads `LiveLayers` on a thread of its own, so each `add_layer` is drawn (streamed to the
front-end like a model's run) before it returns, while the user's loop keeps the kernel's main thread.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from .arrays import attention_layers, check_values, shape_text
from .contract import SHARE_KINDS
from .held import CheckedLayers, HeldAttention, LayoutOptions, held_layout
from .images import ImageLike

if TYPE_CHECKING:
    from .widget import AttentionGrid

#: The colormap each kind of values opens with: signed values get the diverging one.
SIGNED_COLORMAP = "rdbu_r"


def from_attention(attention: Any, tokens: Sequence[str] | None = None, **options: Any) -> AttentionGrid:
    """An `AttentionGrid` of attention already at hand, drawn (see `AttentionGrid.from_attention`)."""
    from .adapters import transformer_lens

    if transformer_lens.is_activation_cache(attention):
        options.setdefault("causal", transformer_lens.is_causal(attention.model))
    layers = attention_layers(attention, batch_index=options.pop("batch_index", 0))
    check_values(layers, options.get("values", "attention"))
    widget = empty_grid((len(layers), *layers[0].shape), tokens, **options)
    widget.run(CheckedLayers(layers))
    return widget


def show(attention: Any, tokens: Sequence[str] | None = None, **options: Any) -> AttentionGrid:
    """Display a grid of attention already at hand and return it; arguments as `from_attention`."""
    from IPython.display import display

    widget = from_attention(attention, tokens, **options)
    display(widget)
    return widget


def stream(layer_count: int, tokens: Sequence[str] | None = None, **options: Any) -> AttentionStream:
    """An `AttentionStream` of `layer_count` layers: hand each to `add_layer` as your code makes it.

    `options` are those of `from_attention`, plus `display=False` to keep the grid from being
    displayed when its first layer arrives. As a context manager it ends the stream on leaving.
    """
    return AttentionStream(layer_count, tokens, **options)


def empty_grid(
    shape: tuple[int, ...],
    tokens: Sequence[str] | None = None,
    *,
    query_tokens: Sequence[str] | None = None,
    key_tokens: Sequence[str] | None = None,
    head_names: Sequence[str] | None = None,
    causal: bool = False,
    values: str = "attention",
    image: ImageLike | None = None,
    grid: tuple[int, int] | None = None,
    prefix_tokens: int | Sequence[str] = 0,
    crop_box: tuple[float, float, float, float] = (0.0, 0.0, 1.0, 1.0),
    query_shares: Any = None,
    name: str = "attention",
    **widget_options: Any,
) -> AttentionGrid:
    """A grid, not run yet, for held attention of `shape` [layers, heads, queries, keys], checked
    before anything shows: token counts, the picture's grid, `values`, `head_names`.

    `tokens` name the keys, which are the queries; `query_tokens` and `key_tokens` name both sides of
    cross attention (indices when not given). `causal` greys each query's later keys. `values` is
    "attention" (probabilities) or signed "scores", "attribution", "difference" (the diverging
    colormap, mean pooling). `image` with `grid` (rows, columns), `prefix_tokens` (a count or names)
    and `crop_box` (x0, y0, x1, y1 as fractions of the picture) lay patches over a picture; with
    `query_tokens` its queries are other tokens (a vision-language model's generated tokens over the
    image tokens), and `query_shares` [query tokens, layers, `contract.SHARE_KINDS`] says where each
    one's attention went per layer (shares of its image, text and sink tokens). `name` is the status
    line's; `widget_options` go to `AttentionGrid`."""
    from .widget import AttentionGrid

    check_values([], values)
    layers, heads, queries, keys = shape
    options = LayoutOptions(tokens, query_tokens, key_tokens, causal, image, grid, prefix_tokens, crop_box)
    layout, picture = held_layout(queries, keys, options)
    if head_names is not None and len(head_names) != heads:
        raise ValueError(f"head_names: {len(head_names)} given, but the attention has {heads} heads")
    shares = b"" if query_shares is None else share_bytes(query_shares, len(layout.query_labels), layers)
    source = HeldAttention((layers, heads, queries, keys), layout, picture, values=values, name=name)
    if values != "attention":  # signed: max-pooling would hide the negative values
        widget_options.setdefault("colormap", SIGNED_COLORMAP)
        widget_options.setdefault("pooling", "mean")
    widget = AttentionGrid(source, value_kind=values, **widget_options)
    widget.head_names = [str(head) for head in head_names or ()]
    widget.query_shares = shares
    return widget


def share_bytes(shares: Any, queries: int, layers: int) -> bytes:
    """`query_shares` as the trait holds it: float32 little-endian [queries, layers, SHARE_KINDS],
    checked (shape, finite, never negative)."""
    values = np.asarray(shares.detach().cpu() if isinstance(shares, torch.Tensor) else shares, dtype="<f4")
    expected = (queries, layers, len(SHARE_KINDS))
    if queries == 0:
        raise ValueError("query_shares are the shares of query tokens: give query_tokens= too")
    if values.shape != expected:
        raise ValueError(
            f"query_shares: expected [query tokens, layers, {'/'.join(SHARE_KINDS)}] = "
            f"{shape_text(expected)}, given {shape_text(values.shape)}"
        )
    if not np.isfinite(values).all() or (values < 0).any():
        raise ValueError("query_shares: shares are finite and never negative")
    return values.tobytes()


class LiveLayers(CheckedLayers):
    """Layers arriving one at a time (`put`), read in order by a run, which waits for each."""

    def __init__(self, count: int):
        super().__init__()
        self.count = count
        self.read = 0
        """Layers the run has finished with: it asked for the next one."""
        self.ended = ""
        self._changed = threading.Condition()

    def put(self, weights: torch.Tensor) -> None:
        with self._changed:
            self.layers.append(weights)
            self._changed.notify_all()

    def end(self, reason: str) -> None:
        """No more layers will come: a run waiting for one fails, naming `reason`."""
        with self._changed:
            self.ended = reason
            self._changed.notify_all()

    def wait_read(self, count: int, running: threading.Thread) -> None:
        """Wait until the run has finished with `count` layers, or has stopped."""
        with self._changed:
            while self.read < count and running.is_alive():
                self._changed.wait(0.05)

    def __iter__(self) -> Iterator[torch.Tensor]:
        for index in range(self.count):
            with self._changed:
                self.read = index
                self._changed.notify_all()
                self._changed.wait_for(lambda: len(self.layers) > index or bool(self.ended))  # noqa: B023
                if len(self.layers) <= index:
                    raise RuntimeError(
                        f"the stream ended with {len(self.layers)} of its {self.count} layers ({self.ended})"
                    )
                weights = self.layers[index]
            yield weights
        with self._changed:
            self.read = self.count
            self._changed.notify_all()


class AttentionStream:
    """Layers handed over by your own loop, drawn in an `AttentionGrid` as they arrive.

    The grid is made (and displayed) when the first layer arrives, from its shape; `grid` is None
    before. Each layer is checked before it is drawn: a bad one raises and is not drawn, the layers
    before it stay. Ending the stream before every layer came leaves the grid as it was before the run.
    """

    def __init__(self, layer_count: int, tokens: Sequence[str] | None = None, **options: Any):
        if layer_count < 1:
            raise ValueError(f"layer_count must be at least 1, not {layer_count}")
        self.layer_count = layer_count
        self._display = options.pop("display", True)
        self._batch_index = options.pop("batch_index", 0)
        self._options = {"tokens": tokens, "name": "stream", **options}
        self.grid: AttentionGrid | None = None
        self._live = LiveLayers(layer_count)
        self._run: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def complete(self) -> bool:
        return len(self._live.layers) == self.layer_count

    def add_layer(self, layer: int, weights: Any) -> None:
        """Draw layer `layer` (numbered from 0, as the model's code numbers its blocks; the grid labels
        it l=layer+1), given in any layout `attnwidget.arrays` takes for one layer; layers come in order."""
        expected = len(self._live.layers)
        if self._live.ended or expected == self.layer_count:
            raise RuntimeError(f"this stream has ended ({self._live.ended or 'every layer came'})")
        if layer != expected:
            raise ValueError(f"layers come in order: expected layer {expected}, got layer {layer}")
        if self.grid is None:
            self._start(weights)
        source = self.grid.source
        assert isinstance(source, HeldAttention)
        checked = source.check_layer(weights, layer, batch_index=self._batch_index)
        self._live.put(checked)
        assert self._run is not None
        self._live.wait_read(layer + 1, self._run)
        if self.complete:
            self._run.join()
        if self._error is not None:
            raise self._error

    def close(self, reason: str = "closed early") -> None:
        """End the stream; a grid still missing layers goes back to what it showed before."""
        if self._run is None or not self._run.is_alive():
            return
        self._live.end(reason)
        self._run.join()

    def __enter__(self) -> AttentionStream:
        return self

    def __exit__(self, kind: type | None, error: BaseException | None, traceback: Any) -> None:
        missing = self.layer_count - len(self._live.layers)
        self.close("the loop raised" if kind is not None else "the stream was closed")
        if kind is None and missing:
            raise RuntimeError(
                f"the stream was closed with {missing} of its {self.layer_count} layers missing: "
                "nothing of it is drawn; hand every layer to add_layer"
            )

    def _start(self, weights: Any) -> None:
        """Make the grid from the first layer's shape and start the run that reads the layers."""
        (first,) = attention_layers([weights], batch_index=self._batch_index)
        self.grid = empty_grid((self.layer_count, *first.shape), **self._options)
        if self._display:
            from IPython.display import display

            display(self.grid)
        self._run = threading.Thread(target=self._read, name="attnwidget stream", daemon=True)
        self._run.start()

    def _read(self) -> None:
        try:
            assert self.grid is not None
            self.grid.run(self._live)
        except BaseException as error:  # handed to add_layer, on the user's thread
            self._error = error
