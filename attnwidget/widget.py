"""`AttentionGrid`: the layer x head grid widget and its kernel side."""

from __future__ import annotations

import base64
import contextlib
import io
import itertools
import json
import math
import threading
import time
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anywidget
import ipywidgets
import numpy as np
import torch
import traitlets as t
from PIL import Image
from torch import nn

from .bundle import read_bundle
from .capture import BlockCallback, StopCapture
from .encode import decode_rows, encode_rows, float32_bytes
from .explain import METHODS, PER_LAYER_METHODS, Prediction, class_index, explain, predictions
from .images import ImageLike, encode_jpeg, image_sources, load_image
from .methods import HeadStatistics, head_statistics
from .models import TokenLayout, UnsupportedModelError, VisionModel
from .reduce import LayerBlocks, matrix_size_for_budget, pool_columns, pool_rows
from .render import export_png, grid_picture, overlay_figure
from .text import TextModel

COLORMAPS = ("viridis", "magma", "inferno", "gray")
#: Largest side of a token x token matrix sent in reply to `request_head`.
FULL_MATRIX_LIMIT = 1024
SAVED_DETAILS = ("maps", "pooled", "full")
#: Largest state of full-resolution matrices ("full"); beyond it they are pooled, with a message, so no
#: update grows past what browsers, notebook files and the server's message limits take.
FULL_STATE_LIMIT = 256 * 1024**2
#: Streamed layers finishing closer together than this are sent in one message.
STREAM_INTERVAL_S = 0.02


class AttentionGrid(anywidget.AnyWidget):
    """Layer x head grid of a vision transformer's attention, streamed while the model runs.

    `model` is a hub id, a local directory, a loaded transformers model (pass its `processor` too
    unless it can be loaded from `model.name_or_path`), a `VisionModel`, or None for the built-in
    default. `layers` and `heads` are numbered from 1, like the `l=` and `h=` labels.
    """

    # The module's text, not its path: for a path anywidget keeps every instance alive (to reload the
    # file when it changes), so closed widgets would never be freed.
    _esm = read_bundle("widget.js")

    # Data, written by the kernel (see docs/architecture.md).
    model_name = t.Unicode("").tag(sync=True)
    layer_count = t.Int(0).tag(sync=True)
    head_count = t.Int(0).tag(sync=True)
    layers = t.List(t.Int()).tag(sync=True)
    heads = t.List(t.Int()).tag(sync=True)
    grid = t.List(t.Int(), default_value=[0, 0]).tag(sync=True)
    special_tokens = t.List(t.Unicode()).tag(sync=True)
    token_count = t.Int(0).tag(sync=True)
    query = t.List(t.Int()).tag(sync=True)
    maps = t.Bytes(b"").tag(sync=True)
    maps_range = t.Bytes(b"").tag(sync=True)
    specials = t.Bytes(b"").tag(sync=True)
    matrix_size = t.Int(0).tag(sync=True)
    matrices = t.Bytes(b"").tag(sync=True)
    matrices_range = t.Bytes(b"").tag(sync=True)
    run_id = t.Int(0).tag(sync=True)
    layers_done = t.Int(0).tag(sync=True)
    status = t.Unicode("empty").tag(sync=True)
    message = t.Unicode("").tag(sync=True)
    image = t.Bytes(b"").tag(sync=True)
    image_size = t.List(t.Int(), default_value=[0, 0]).tag(sync=True)
    crop_box = t.List(t.Float(), default_value=[0.0, 0.0, 1.0, 1.0]).tag(sync=True)
    input_size = t.List(t.Int(), default_value=[0, 0]).tag(sync=True)
    patch_size = t.Int(0).tag(sync=True)
    predictions = t.List(t.Dict()).tag(sync=True)
    explanation = t.Bytes(b"").tag(sync=True)
    explanation_title = t.Unicode("").tag(sync=True)
    image_count = t.Int(0).tag(sync=True)
    token_labels = t.List(t.Unicode()).tag(sync=True)
    """Text models: every token as text (shown as text, never as HTML); the keys of cross attention."""
    query_labels = t.List(t.Unicode()).tag(sync=True)
    """Cross attention: the query (decoder) tokens as text; empty when the queries are the keys."""
    causal = t.Bool(False).tag(sync=True)
    """Text decoders: each query sees only itself and earlier keys; the grid marks the rest."""
    saved_bytes = t.Int(0).tag(sync=True)
    """What the widget adds to a notebook saved with widget state, in bytes (binary data as base64)."""

    # View, written by the front-end or by Python.
    view = t.Enum(("query", "matrix"), "query").tag(sync=True)
    colormap = t.Enum(COLORMAPS, "viridis").tag(sync=True)
    normalize = t.Enum(("head", "layer", "global"), "head").tag(sync=True)
    selected = t.List(t.Int()).tag(sync=True)
    overlay_open = t.Bool(False).tag(sync=True)
    alpha = t.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    interpolation = t.Enum(("bilinear", "nearest"), "bilinear").tag(sync=True)
    method = t.Enum(tuple(METHODS), "attention").tag(sync=True)
    target = t.Unicode("").tag(sync=True)
    mask_mass = t.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    rollout_fusion = t.Enum(("mean", "max", "min"), "mean").tag(sync=True)
    discard_ratio = t.Float(0.0, min=0.0, max=0.99).tag(sync=True)
    start_layer = t.Int(1).tag(sync=True)
    image_index = t.Int(0).tag(sync=True)
    saved_detail = t.Enum(SAVED_DETAILS, "pooled").tag(sync=True)
    """What the state (saved notebooks, exported HTML) holds besides the query -> patch maps: no
    token x token matrices ("maps"), matrices max-pooled to fit `matrix_budget` ("pooled"), or every
    token x token matrix at full resolution ("full"). The live matrix view always gets exact values
    from the kernel on request."""
    head_dots = t.Instance(ipywidgets.Widget, allow_none=True).tag(
        sync=True, **ipywidgets.widget_serialization
    )
    """A bqplot `Scatter` of one dot per head (dot `i` is head `divmod(i, head_count)`, from 1): the
    front-end keeps its selection and the grid's in step, with no kernel needed (see `HeadStatsPanel`)."""

    def __init__(
        self,
        model: str | Path | nn.Module | VisionModel | None = None,
        image: ImageLike | None = None,
        *,
        processor: Any = None,
        layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
        matrix_budget: int = 640 * 1024,
        pooling: str = "max",
        cache_budget: int = 256 * 1024**2,
        block_bytes: int = 256 * 1024**2,
        **view: Any,
    ) -> None:
        super().__init__(**view)
        self._owns_layout = "layout" not in view  # its own Layout widget, closed with it
        self._model = as_model(model, processor)
        self._matrix_budget = matrix_budget
        self._pooling = pooling
        self._cache_budget = cache_budget
        self._block_bytes = block_bytes
        self._input: _Input | None = None
        self._cache: list[torch.Tensor] | None = None
        self._busy = False
        self._closed = False
        self._run_lock = threading.RLock()
        self._tickets = itertools.count(1)
        self._newest_ticket = 0
        self._gallery: list[_Snapshot] = []
        self._statistics: tuple[torch.Tensor, HeadStatistics] | None = None  # (pixel values, theirs)
        self.mean_statistics: HeadStatistics | None = None
        """Per-head statistics averaged over the pictures of the last `run_many`, else None."""
        with self.hold_trait_notifications():
            if isinstance(self._model, TextModel) and "view" not in view:
                self.view = "matrix"  # token x token: the text's own picture
            self.model_name = self._model.name
            self.layer_count = self._model.layer_count
            self.head_count = self._model.head_count
            self.layers = _numbered(layers, self.layer_count, "layer")
            self.heads = _numbered(heads, self.head_count, "head")
        self.on_msg(self._handle_message)
        if image is not None:
            self.run(image)

    @property
    def vision_model(self) -> VisionModel:
        if not isinstance(self._model, VisionModel):
            raise TypeError("this grid shows a text model: see grid.text_model")
        return self._model

    @property
    def text_model(self) -> TextModel:
        if not isinstance(self._model, TextModel):
            raise TypeError("this grid shows a vision model: see grid.vision_model")
        return self._model

    def run(
        self, image: ImageLike | str, *, query: Sequence[int] | None = None, decoder_text: str | None = None
    ) -> AttentionGrid:
        """Run the model on `image` (a text, for a text model) and stream its attention into the grid,
        layer by layer.

        A single run ends the set of pictures of `run_many` (the slider goes away).

        `query` lists token indices whose attention rows are averaged (default: CLS, or every
        patch for models without one; for text, the last token of a decoder). `decoder_text` is the
        decoder's text of an encoder-decoder. The widget keeps its state if the input or the query is bad.
        """
        self._check_open()
        if isinstance(self._model, TextModel):
            return self._run_text(image, query, decoder_text)
        picture = load_image(image)
        pixel_values, geometry = self._model.prepare(picture)
        layout = self._model.layout(pixel_values)
        query = list(query) if query is not None else layout.default_query
        layout.check_query(query)
        picture_state = {
            "image": encode_jpeg(picture),
            "image_size": list(picture.size),
            "crop_box": list(geometry.crop_box),
            "input_size": [int(pixel_values.shape[-2]), int(pixel_values.shape[-1])],
            "patch_size": self._model.patch_size[0],
        }
        if self._gallery:
            self._gallery, self.mean_statistics = [], None
            picture_state = {**picture_state, "image_count": 0, "image_index": 0}
        self._compute(_Input(pixel_values, layout, query), rerun=True, picture_state=picture_state)
        return self

    def _run_text(self, text: Any, query: Sequence[int] | None, decoder_text: str | None) -> AttentionGrid:
        inputs = self._model.prepare(text, decoder_text)
        layout = self._model.layout(inputs)
        query = list(query) if query is not None else layout.default_query
        layout.check_query(query)
        text_state = {
            "image": b"",
            "image_size": [0, 0],
            "crop_box": [0.0, 0.0, 1.0, 1.0],
            "input_size": [0, 0],
            "patch_size": 0,
            "token_labels": list(layout.labels),
            "query_labels": list(layout.query_labels),
            "causal": layout.causal,
        }
        self._compute(_Input(inputs, layout, query), rerun=True, picture_state=text_state)
        return self

    def run_many(self, images: Iterable[ImageLike] | str | Path, *, progress: bool = True) -> AttentionGrid:
        """Run the model on every picture (a list, any iterable, or a folder of image files).

        Each picture's grid is kept, so `image_index` (or the widget's slider) browses them without
        running the model again; `mean_statistics` averages the per-head mean attention distance
        and entropy over them. A progress bar (tqdm) shows unless `progress` is False.
        """
        from tqdm.auto import tqdm

        self._check_open()
        sources = image_sources(images)
        gallery: list[_Snapshot] = []
        statistics: list[HeadStatistics] = []
        for source in tqdm(sources, desc="attnwidget", unit="picture", disable=not progress):
            self.run(source)
            gallery.append(self._snapshot())
            statistics.append(self.head_statistics())
        if not gallery:
            raise ValueError("no pictures to run: give a non-empty list, iterable or folder of images")
        self.mean_statistics = HeadStatistics.mean(statistics)
        with self.hold_sync():
            self.image_count = len(gallery)  # listeners (the statistics panel) see the new set
            self.image_index = len(gallery) - 1  # the picture on screen (set before the gallery: no redraw)
        self._gallery = gallery
        return self

    def head_statistics(self) -> HeadStatistics:
        """Mean attention distance (pixels) and entropy of every head for the picture shown."""
        if self._input is None:
            raise RuntimeError("run the widget on an image first: widget.run(image)")
        if isinstance(self._model, TextModel):
            raise TypeError("mean attention distance is measured in pixels: it is for vision models")
        pixel_values = self._input.model_input
        if self._statistics is None or self._statistics[0] is not pixel_values:
            layout = self._input.layout
            attentions = [self.full_attention(layer) for layer in range(1, self.layer_count + 1)]
            self._statistics = (
                pixel_values,
                head_statistics(attentions, layout.special_count, layout.grid, self._model.patch_size),
            )
        return self._statistics[1]

    def _snapshot(self) -> _Snapshot:
        return _Snapshot(
            traits={name: getattr(self, name) for name in _PICTURE_TRAITS},
            source=self._input,
            selection=(list(self.layers), list(self.heads)),
        )

    @t.observe("image_index")
    def _image_index_changed(self, change: dict) -> None:
        if not self._gallery or self._busy:
            return
        if not 0 <= change["new"] < len(self._gallery):
            self.message = f"error: picture {change['new']} is out of range: there are {len(self._gallery)}"
            self.image_index = change["old"]
            return
        snapshot = self._gallery[change["new"]]
        self._input, self._cache = snapshot.source, None  # exact values are recomputed on request
        if snapshot.selection != (self.layers, self.heads) or snapshot.source.query != self.query:
            self._compute(snapshot.source, rerun=True)  # the selection changed since: recompute
            self._gallery[change["new"]] = self._snapshot()
            return
        # As for a run: the front-end takes every data trait as current once the status is "done",
        # also those equal to the previous picture's (no change is sent for them).
        self.status = "running"
        with self.hold_sync():
            self.run_id += 1
            for name, value in snapshot.traits.items():
                setattr(self, name, value)
            self.status = "done"
        self._update_explanation()

    def full_attention(self, layer: int) -> torch.Tensor:
        """Attention of layer `layer` (1-based) for the last image, [heads, tokens, tokens], on the CPU."""
        if self._input is None:
            raise RuntimeError("run the widget on an image first: widget.run(image)")
        (index,) = _numbered([layer], self.layer_count, "layer")
        if self._cache is not None:
            return self._cache[index - 1]
        blocks: list[torch.Tensor] = []

        def keep(position: int, first_query: int, weights: torch.Tensor) -> None:
            if position == index - 1:
                blocks.append(weights.float().cpu())
                if first_query + weights.shape[1] == self._input.layout.query_count:
                    raise StopCapture

        self._replay(keep)
        return torch.cat(blocks, dim=1)

    def head_region(
        self, layer: int, head: int, rows: tuple[int, int], columns: tuple[int, int], limit: int = 1024
    ) -> torch.Tensor:
        """One head's attention from queries `rows` = (first, stop) to keys `columns` for the last input,
        on the CPU: exact when the region is at most `limit` tokens a side, max-pooled to fit otherwise.

        Only the region is kept while the model runs (a block of queries at a time for long contexts).
        """
        if self._input is None:
            raise RuntimeError("run the widget first: widget.run(...)")
        (layer,), (head,) = (
            _numbered([layer], self.layer_count, "layer"),
            _numbered([head], self.head_count, "head"),
        )
        queries, keys = self._input.layout.query_count, self._input.layout.token_count
        (first_row, stop_row), (first_column, stop_column) = rows, columns
        if not (0 <= first_row < stop_row <= queries and 0 <= first_column < stop_column <= keys):
            raise ValueError(
                f"region rows {rows}, columns {columns} is not inside the {queries} x {keys} tokens"
            )
        height, width = min(stop_row - first_row, limit), min(stop_column - first_column, limit)
        pieces: list[torch.Tensor] = []

        def keep(position: int, first_query: int, weights: torch.Tensor) -> None:
            if position != layer - 1:
                return
            low, high = max(first_row, first_query), min(stop_row, first_query + weights.shape[1])
            if low < high:
                block = weights[
                    head - 1 : head, low - first_query : high - first_query, first_column:stop_column
                ]
                pieces.append(pool_columns(block, width, self._pooling))
            if first_query + weights.shape[1] >= stop_row:
                raise StopCapture

        self._replay(keep)
        return pool_rows(torch.cat(pieces, dim=1), height, self._pooling)[0].cpu()

    def to_png(self, path: str | Path | None = None, *, dpi: int = 144, **options: Any) -> bytes:
        """The grid as it is shown (view, colormap, normalisation) as PNG bytes; written to `path` if given.

        `options` go to `attnwidget.render.grid_picture` (`tile_size`, `gap`, `font_size`); `dpi`
        is recorded in the file.
        """
        if self.status != "done" or not self.maps:
            raise RuntimeError("the grid is empty: run the widget on an image first (widget.run(image))")
        rows, cols = len(self.layers), len(self.heads)
        if self.view == "matrix":
            queries = len(self.query_labels) or self.token_count  # the decoder's tokens, for cross attention
            height, width = min(queries, self.matrix_size), min(self.token_count, self.matrix_size)
            tiles = decode_rows(self.matrices, self.matrices_range, width).reshape(rows, cols, height, width)
        else:
            gh, gw = self.grid
            tiles = decode_rows(self.maps, self.maps_range, gh * gw).reshape(rows, cols, gh, gw)
        picture = grid_picture(
            tiles, self.layers, self.heads, colormap=self.colormap, normalize=self.normalize, **options
        )
        return export_png(picture, path, dpi=dpi)

    def overlay_to_png(
        self,
        path: str | Path | None = None,
        *,
        layer: int | None = None,
        head: int | None = None,
        dpi: int = 144,
        **options: Any,
    ) -> bytes:
        """The overlay as PNG bytes: one head's attention from the query over the picture (the
        selected head unless `layer` and `head` are given) or, with a method other than "attention",
        that method's map. Exact values, the widget's colormap, opacity and interpolation; written
        to `path` if given. `options` go to `attnwidget.render.overlay_figure` (`size`, `font_size`).
        """
        if self.status != "done" or self._input is None:
            raise RuntimeError("the grid is empty: run the widget on an image first (widget.run(image))")
        if isinstance(self._model, TextModel):
            raise TypeError("a text has no picture to overlay: use to_png() with view='matrix'")
        gh, gw = self.grid
        if self.method == "attention" or layer is not None or head is not None:
            if layer is None or head is None:
                if len(self.selected) != 2:
                    raise ValueError(
                        "select a head first (grid.selected = [layer, head]) or give layer= and head="
                    )
                layer, head = self.selected
            special = self._input.layout.special_count
            rows = self._head_reductions(layer, head, 0).query_rows()[0]
            values = rows[special:].reshape(gh, gw).numpy()
            title = f"l={layer} h={head} · attention from the query"
        else:
            values = np.frombuffer(self.explanation, dtype="<f4").reshape(gh, gw)
            title = self.explanation_title
        with Image.open(io.BytesIO(self.image)) as source:
            picture = source.convert("RGB")
        figure = overlay_figure(
            picture,
            values,
            tuple(self.crop_box),
            title=title,
            alpha=self.alpha,
            colormap=self.colormap,
            interpolation=self.interpolation,
            **options,
        )
        return export_png(figure, path, dpi=dpi)

    def _repr_mimebundle_(self, **kwargs: Any) -> tuple[dict, dict] | None:
        """The widget, and a PNG of the grid for places that cannot show widgets (GitHub, nbviewer,
        nbconvert without widget state) once the grid has data."""
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is None or self.status != "done" or not self.maps:
            return bundle
        data, metadata = bundle
        try:
            picture = self.to_png()
        except Exception as error:  # the widget still shows; only the static fallback is missing
            warnings.warn(f"attnwidget: no PNG of the grid for this output ({error})", stacklevel=2)
            return bundle
        return {**data, "image/png": base64.b64encode(picture).decode("ascii")}, metadata

    # -- computation ---------------------------------------------------------------------------

    def _compute(self, source: _Input, *, rerun: bool, picture_state: dict | None = None) -> None:
        """`_compute_now`, one run at a time: a run asked for while another streams (from another
        thread: a button's callback, a background task) cancels it. The earlier run stops at its next
        layer and publishes nothing, so no grid ever mixes the layers of two inputs."""
        ticket = next(self._tickets)
        self._newest_ticket = ticket
        with self._run_lock:
            if ticket == self._newest_ticket:  # else a newer run came while this one waited
                self._compute_now(source, ticket, rerun=rerun, picture_state=picture_state)

    def _compute_now(
        self, source: _Input, ticket: int, *, rerun: bool, picture_state: dict | None = None
    ) -> None:
        """Reduce every selected layer for `source`, streaming rows, then publish the final state.

        `picture_state` (the picture's traits, for a new image) is published in the same update as
        the maps, so the front-end never pairs new maps with the previous picture.
        """
        layout, rows = source.layout, [layer - 1 for layer in self.layers]
        heads = torch.tensor([head - 1 for head in self.heads])
        every_head = len(self.heads) == self.head_count  # the heads are sorted: no copy needed
        size = self._matrix_side(layout, len(rows) * len(heads))
        reduced = _Reduced()
        stream = _Stream(self, self.run_id + 1)
        keep_cache = not self._in_blocks(layout) and self._cache_bytes(layout) <= self._cache_budget
        cache: list[torch.Tensor] = []
        layer_blocks: dict[int, LayerBlocks] = {}

        def on_block(layer: int, first_query: int, weights: torch.Tensor) -> None:
            if self._newest_ticket != ticket:
                raise _RunCancelled
            if rerun and keep_cache:
                cache.append(weights.float().cpu())  # whole layers: blocks come only beyond block_bytes
            if layer not in rows:
                return
            selected = weights if every_head else weights.index_select(0, heads.to(weights.device))
            queries = layout.query_count
            blocks = layer_blocks.setdefault(
                layer, LayerBlocks(source.query, size, self._pooling, queries=queries)
            )
            blocks.add(first_query, selected)
            if not blocks.complete:
                return
            del layer_blocks[layer]
            query_rows = blocks.query_rows()
            maps = encode_rows(query_rows[:, layout.special_count :])
            specials = float32_bytes(query_rows[:, : layout.special_count])
            reduced.maps.append(maps)
            reduced.specials.append(specials)
            if size:
                reduced.matrices.append(encode_rows(blocks.matrices().flatten(0, 1)))
            stream.add(maps, specials)

        self._busy = True
        previous_layout = (self.grid, self.special_tokens, self.token_count)
        with self.hold_sync():
            self.run_id, self.status, self.layers_done = stream.run_id, "running", 0
            self.message = self._pooled_notice(layout, size)
            self._publish_layout(layout)
        try:
            if rerun:
                outputs = self._run(source, on_block)
                top = self._predictions(outputs)
                picture_state = {
                    **(picture_state or {}),
                    "predictions": [{"label": p.label, "probability": p.probability} for p in top],
                }
            else:
                for layer, attention in enumerate(self._cache or []):
                    on_block(layer, 0, attention)
            stream.flush()
        except _RunCancelled:
            return  # the newer run, waiting for this one, publishes its own state
        except Exception as error:
            self._restore_after_failure(previous_layout, error)
            raise
        finally:
            self._busy = False
        if rerun:
            self._cache = cache if keep_cache else None
        self._input = source
        data = {
            "maps": b"".join(data for data, _ in reduced.maps),
            "maps_range": b"".join(ranges for _, ranges in reduced.maps),
            "specials": b"".join(reduced.specials),
            "matrices": b"".join(data for data, _ in reduced.matrices),
            "matrices_range": b"".join(ranges for _, ranges in reduced.matrices),
        }
        with self.hold_sync():
            self.query = source.query
            self.matrix_size = size
            for name, value in data.items():
                setattr(self, name, value)
            self.layers_done = len(rows)
            for name, value in (picture_state or {}).items():
                setattr(self, name, value)
            self.saved_bytes = self._saved_size()
            self.status = "done"  # last: observers of the status see the whole new state
        self._update_explanation()

    def _predictions(self, outputs: Any) -> list[Prediction]:
        """A classifier's top classes, or a language model's most probable next tokens."""
        if isinstance(self._model, TextModel):
            return self._model.next_token_predictions(outputs)
        logits = getattr(outputs, "logits", None)
        labels = dict(getattr(self._model.model.config, "id2label", None) or {})
        return predictions(logits, labels) if logits is not None and logits.ndim == 2 else []

    def _matrix_side(self, layout: TokenLayout, tiles: int) -> int:
        """Side of the token x token matrices the state holds (0 for none), as `saved_detail` says."""
        if self.saved_detail == "maps":
            return 0
        if self.saved_detail == "full" and self._full_state_bytes(layout) <= FULL_STATE_LIMIT:
            return max(layout.token_count, layout.query_count)
        return matrix_size_for_budget(layout.token_count, tiles, self._matrix_budget)

    def _pooled_notice(self, layout: TokenLayout, size: int) -> str:
        """Says why full-resolution matrices were pooled, or ""."""
        if self.saved_detail != "full" or size >= max(layout.token_count, layout.query_count):
            return ""
        return (
            f"saved_detail='full' would put {_mib(self._full_state_bytes(layout))} of matrices in the "
            f"widget's state (over {_mib(FULL_STATE_LIMIT)}); they are pooled to {size} x {size}. Exact "
            "values of any head still come from the kernel when it is opened"
        )

    def _full_state_bytes(self, layout: TokenLayout) -> int:
        return len(self.layers) * len(self.heads) * layout.token_count * layout.query_count

    def _saved_size(self) -> int:
        """Bytes of this widget's state in a saved notebook: JSON, plus binary traits as base64."""
        state = self.get_state()
        binary = {name for name, value in state.items() if isinstance(value, (bytes, bytearray, memoryview))}
        text = json.dumps({name: value for name, value in state.items() if name not in binary})
        return len(text) + sum(4 * math.ceil(memoryview(state[name]).nbytes / 3) for name in binary)

    def close(self) -> None:
        """Close the widget (its views go away) and let go of the attention it keeps."""
        self._closed = True
        self._cache, self._gallery, self._statistics = None, [], None
        if getattr(self, "_owns_layout", False):  # ipywidgets keeps every open widget alive
            self.layout.close()
        super().close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this AttentionGrid was closed (widget.close()), so nothing would show a run: create "
                "a new one, e.g. attnwidget.AttentionGrid(model), and display it"
            )

    def _run(self, source: _Input, on_block: BlockCallback) -> Any:
        """Run the model on `source`, handing each layer's weights to `on_block(layer, first_query,
        weights [H, queries, keys])`: whole layers, or blocks of queries when a layer is larger than
        `block_bytes` (text models; outputs stay those of eager attention)."""
        if self._in_blocks(source.layout):
            return self._model.run_in_blocks(
                source.model_input,
                lambda layer, first, weights: on_block(layer, first, weights[0]),
                self._block_bytes,
            )
        return self._model.run(source.model_input, lambda layer, weights: on_block(layer, 0, weights[0]))

    def _replay(self, on_block: BlockCallback) -> None:
        """Hand the last input's attention to `on_block` again: from the cache, or by running the model
        until `on_block` raises `StopCapture` (it has what it needs)."""
        with contextlib.suppress(StopCapture):
            if self._cache is None:
                self._run(self._input, on_block)
            for layer, attention in enumerate(self._cache or []):
                on_block(layer, 0, attention)

    def _head_reductions(self, layer: int, head: int, matrix_size: int) -> LayerBlocks:
        """One head's exact query rows and its matrix pooled to `matrix_size`, for the last input."""
        (layer,), (head,) = (
            _numbered([layer], self.layer_count, "layer"),
            _numbered([head], self.head_count, "head"),
        )
        queries = self._input.layout.query_count
        reductions = LayerBlocks(self._input.query, matrix_size, self._pooling, queries=queries)

        def keep(position: int, first_query: int, weights: torch.Tensor) -> None:
            if position == layer - 1:
                reductions.add(first_query, weights[head - 1 : head])
                if reductions.complete:
                    raise StopCapture

        self._replay(keep)
        return reductions

    def _in_blocks(self, layout: TokenLayout) -> bool:
        layer_bytes = self.head_count * layout.query_count * layout.token_count * 4
        return isinstance(self._model, TextModel) and layer_bytes > self._block_bytes

    def _restore_after_failure(self, layout: tuple, error: Exception) -> None:
        """Show the last good grid again: the front-end has hidden it behind the failed run's rows, and
        takes the data traits (unchanged) as current again once the status is "done"."""
        with self.hold_sync():
            self.grid, self.special_tokens, self.token_count = layout
            self.status = "error" if self._input is None else "done"
            self.layers_done = len(self.layers) if self._input is not None else 0
            self.message = f"error: {error}"

    def _publish_layout(self, layout: TokenLayout) -> None:
        self.grid = list(layout.grid)
        self.special_tokens = list(layout.special_tokens)
        self.token_count = layout.token_count

    def _cache_bytes(self, layout: TokenLayout) -> int:
        return self.layer_count * self.head_count * layout.query_count * layout.token_count * 4

    def _recompute(self) -> None:
        if self._input is None or self._busy:
            return
        self._compute(self._input, rerun=self._cache is None)

    # -- reactions to the front-end and to Python assignments ------------------------------------

    @t.validate("layers")
    def _valid_layers(self, proposal: dict) -> list[int]:
        return _numbered(proposal["value"], self.layer_count, "layer")

    @t.validate("heads")
    def _valid_heads(self, proposal: dict) -> list[int]:
        return _numbered(proposal["value"], self.head_count, "head")

    @t.observe("saved_detail")
    def _saved_detail_changed(self, change: dict) -> None:
        if hasattr(self, "_input"):  # not while the constructor sets it
            self._recompute()

    @t.observe("layers", "heads")
    def _selection_changed(self, change: dict) -> None:
        self._recompute()

    @t.observe("query")
    def _query_changed(self, change: dict) -> None:
        if self._input is None or self._busy or change["new"] == self._input.query:
            return
        try:
            self._input.layout.check_query(change["new"])
        except ValueError as error:
            self.message = f"error: {error}"
            self.query = change["old"]
            return
        self._input = _Input(self._input.model_input, self._input.layout, list(change["new"]))
        self._recompute()

    @t.observe("method", "target", "selected", "rollout_fusion", "discard_ratio", "start_layer")
    def _explanation_inputs_changed(self, change: dict) -> None:
        if change["name"] == "selected" and self.method not in PER_LAYER_METHODS:
            return
        if self._input is None or self._busy:
            return
        try:
            if change["name"] == "target" and change["new"]:
                class_index(self._model, change["new"])
            self._update_explanation()
        except ValueError as error:  # a bad class or method for this model: keep the previous one
            if change["name"] in ("target", "method", "start_layer"):
                setattr(self, change["name"], change["old"])
            self.message = f"error: {error}"

    def _update_explanation(self) -> None:
        """Compute the chosen method's map for the current input (nothing for per-head attention)."""
        if self.method == "attention" or self._input is None:
            self.explanation, self.explanation_title = b"", ""
            return
        if isinstance(self._model, TextModel):
            raise ValueError(f"the method {self.method!r} is for vision models; a text model shows each head")
        layer = self.selected[0] if self.method in PER_LAYER_METHODS and self.selected else None
        result = explain(
            self._model,
            self._input.model_input,
            self.method,
            layer=layer,
            target=self.target or None,
            attentions=self._cache,
            fusion=self.rollout_fusion,
            discard_ratio=self.discard_ratio,
            start_layer=self.start_layer,
        )
        with self.hold_sync():
            self.explanation = float32_bytes(result.map.flatten())
            self.explanation_title = result.title
            if self.message.startswith("error:"):
                self.message = ""

    def _handle_message(self, widget: Any, content: dict, buffers: list) -> None:
        try:
            if content.get("type") == "request_head":
                self._send_head(int(content["layer"]), int(content["head"]))
            elif content.get("type") == "request_region":
                self._send_region(content)
        except Exception as error:  # a bad request must not break the kernel or the widget
            self.message = f"error: {error}"

    def _send_head(self, layer: int, head: int) -> None:
        layout = self._input.layout
        size = min(max(layout.token_count, layout.query_count), FULL_MATRIX_LIMIT)
        reductions = self._head_reductions(layer, head, size)
        exact_map = reductions.query_rows()[0, layout.special_count :]
        matrix = reductions.matrices()[0]
        height, width = matrix.shape
        reply = {"type": "head", "layer": layer, "head": head, "height": height, "width": width}
        self.send(
            {**reply, "run_id": self.run_id, "query": self._input.query},
            buffers=[float32_bytes(exact_map), float32_bytes(matrix)],
        )

    def _send_region(self, request: dict) -> None:
        """A region of one head's matrix: exact up to FULL_MATRIX_LIMIT tokens a side, pooled beyond."""
        layer, head = int(request["layer"]), int(request["head"])
        rows = (int(request["rows"][0]), int(request["rows"][1]))
        columns = (int(request["columns"][0]), int(request["columns"][1]))
        region = self.head_region(layer, head, rows, columns, FULL_MATRIX_LIMIT)
        reply = {"type": "region", "layer": layer, "head": head, "rows": list(rows), "columns": list(columns)}
        self.send(
            {**reply, "height": region.shape[0], "width": region.shape[1], "run_id": self.run_id},
            buffers=[float32_bytes(region)],
        )


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


def as_model(model: Any, processor: Any = None) -> VisionModel | TextModel:
    """A `VisionModel` from an id, a directory, a loaded model or None (the built-in default), or
    the `TextModel` given."""
    if isinstance(model, (VisionModel, TextModel)):
        return model
    if model is None:
        from .default_model import default_model

        return default_model()
    if isinstance(model, (str, Path)):
        return VisionModel.from_pretrained(model, processor)
    from .pretrained import ImageClassifier

    if isinstance(model, ImageClassifier):
        raise UnsupportedModelError(
            f"{type(model.model).__name__} is a CNN: it has no attention for the grid to show. "
            "Its Grad-CAM: `classifier.grad_cam(image)`"
        )
    return VisionModel(model, processor)


@dataclass
class _Input:
    model_input: Any
    """Pixel values [1, 3, H, W] of a picture, or a tokenized text (`TextInput`)."""
    layout: TokenLayout
    query: list[int]


#: Traits that make up one picture's view: what the gallery of `run_many` keeps per picture.
_PICTURE_TRAITS = (
    "maps",
    "maps_range",
    "specials",
    "matrix_size",
    "matrices",
    "matrices_range",
    "query",
    "grid",
    "special_tokens",
    "token_count",
    "image",
    "image_size",
    "crop_box",
    "input_size",
    "predictions",
    "token_labels",
    "query_labels",
    "causal",
)


@dataclass
class _Snapshot:
    traits: dict[str, Any]
    source: _Input
    selection: tuple[list[int], list[int]]


class _RunCancelled(Exception):
    """A newer run was asked for: this one stops where it is."""


@dataclass
class _Reduced:
    maps: list[tuple[bytes, bytes]] = field(default_factory=list)
    specials: list[bytes] = field(default_factory=list)
    matrices: list[tuple[bytes, bytes]] = field(default_factory=list)


class _Stream:
    """Sends finished grid rows to the front-end, coalescing rows that finish close together."""

    def __init__(self, widget: AttentionGrid, run_id: int):
        self.widget, self.run_id = widget, run_id
        self.sent = 0
        self.pending: list[tuple[tuple[bytes, bytes], bytes]] = []
        self.last_send = 0.0

    def add(self, maps: tuple[bytes, bytes], specials: bytes) -> None:
        self.pending.append((maps, specials))
        if time.perf_counter() - self.last_send >= STREAM_INTERVAL_S:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        buffers = [
            b"".join(maps[0] for maps, _ in self.pending),
            b"".join(maps[1] for maps, _ in self.pending),
            b"".join(specials for _, specials in self.pending),
        ]
        content = {"type": "layers", "run_id": self.run_id, "first": self.sent, "count": len(self.pending)}
        self.widget.send(content, buffers=buffers)
        self.sent += len(self.pending)
        self.pending.clear()
        self.last_send = time.perf_counter()


def _mib(count: int) -> str:
    return f"{count / 2**20:.0f} MiB"


def _numbered(values: Sequence[int] | None, count: int, what: str) -> list[int]:
    """Validate 1-based layer / head numbers; None means all of them. Sorted, without repeats."""
    if values is None:
        return list(range(1, count + 1))
    if isinstance(values, int):
        values = [values]
    chosen = sorted(set(values))
    if not chosen:
        raise t.TraitError(f"choose at least one {what} (numbered 1..{count})")
    bad = [value for value in chosen if not isinstance(value, int) or not 1 <= value <= count]
    if bad:
        raise t.TraitError(
            f"{what} {bad} out of range: this model has {what}s 1..{count} "
            f"(numbered from 1, as in the {what[0]}= labels)"
        )
    return chosen
