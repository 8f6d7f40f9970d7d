"""`AttentionGrid`: the layer x head grid widget, its traits and their observers.

The work behind them lives in modules of their own: runs, the attention cache and replay in
`session`, streaming in `streaming`, the pictures of `run_many` in `gallery`, replies to the
front-end in `replies`, PNG export in `png_export`, the state's size in `sizing`. What the grid shows
comes from a `source.Source`; the widget never asks which kind of model it is.
"""

from __future__ import annotations

import base64
import warnings
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
import traitlets as t

from . import contract
from .dataset_statistics import Statistic
from .explanations import explaining, update_explanation
from .gallery import DEFAULT_SAMPLE, Gallery
from .grid_traits import GridTraits, numbered
from .images import ImageLike
from .loading import as_source
from .methods import HeadStatistics, head_statistics
from .models import VisionModel
from .png_export import grid_png, overlay_png
from .reduce import LayerBlocks
from .replies import handle_message
from .session import RunInput, RunSession
from .source import GeneratingSource, Source
from .streaming import input_traits, stream_run
from .text import TextModel
from .vlm.looked import WhereItLooked, where_it_looked
from .vlm.model import Generation
from .vlm.streaming import generate_into

if TYPE_CHECKING:
    import pandas

#: What `grid_kind` a source yields -> the view the grid opens with.
DEFAULT_VIEWS = {"patches": "query", "tokens": "matrix"}


class AttentionGrid(GridTraits):
    """Layer x head grid of a vision transformer's attention, streamed while the model runs.

    `model` is a hub id, a local directory, a loaded transformers model (pass its `processor` too
    unless it can be loaded from `model.name_or_path`), a `VisionModel`, a `TextModel` or any other
    `attnwidget.source.Source`, or None for the built-in default. `layers` and `heads` are numbered
    from 1, like the `l=` and `h=` labels.
    """

    def __init__(
        self,
        model: str | Path | Any | Source | None = None,
        image: ImageLike | None = None,
        *,
        processor: Any = None,
        layers: Sequence[int] | None = None,
        heads: Sequence[int] | None = None,
        matrix_budget: int = 640 * 1024,
        pooling: str = "max",
        cache_budget: int = 256 * 1024**2,
        block_bytes: int = 256 * 1024**2,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
        **view: Any,
    ) -> None:
        super().__init__(**view)
        self._owns_layout = "layout" not in view  # its own Layout widget, closed with it
        self._source = as_source(model, processor)
        self._session = RunSession(
            self._source, pooling=pooling, cache_budget=cache_budget, block_bytes=block_bytes
        )
        self._matrix_budget = matrix_budget
        self._closed = False
        self._gallery = Gallery()
        self._statistics: tuple[Any, HeadStatistics] | None = None  # (model input, its statistics)
        with self.hold_trait_notifications():
            if "view" not in view:
                self.view = DEFAULT_VIEWS[self._source.grid_kind]
            self.pooling = pooling
            self.model_name = self._source.name
            self.layer_count = self._source.layer_count
            self.head_count = self._source.head_count
            self.layers = numbered(layers, self.layer_count, "layer")
            self.heads = numbered(heads, self.head_count, "head")
        self._prompt = {"prompt": prompt, "max_new_tokens": max_new_tokens}
        self.on_msg(self._handle_message)
        if image is not None:
            self.run(image)

    @classmethod
    def from_attention(
        cls, attention: Any, tokens: Sequence[str] | None = None, **options: Any
    ) -> AttentionGrid:
        """A grid of attention already at hand, drawn: the layouts of BertViz, CircuitsVis and Inspectus,
        TransformerLens caches; numpy, torch, `__array__` or DLPack arrays. `options`: `query_tokens`,
        `key_tokens`, `head_names`, `causal`, `batch_index`, `values`, `image`, `grid`, `prefix_tokens`,
        `crop_box`, `query_shares` (see `attnwidget.held_grid.empty_grid`) and the widget's. A
        vision-language model's generated tokens over a picture: `query_tokens` with `image` and `grid`.
        Bad input raises a ValueError naming the expected and the given shape; nothing is drawn."""
        from .held_grid import from_attention

        return from_attention(attention, tokens, **options)

    @property
    def source(self) -> Source:
        """What the grid shows: the model (or other source of attention) it was given."""
        return self._source

    @property
    def vision_model(self) -> VisionModel:
        """The `VisionModel` shown; a TypeError for another source."""
        return _source_as(self._source, VisionModel, "this grid shows a text model: see grid.text_model")

    @property
    def text_model(self) -> TextModel:
        """The `TextModel` shown; a TypeError for another source."""
        return _source_as(self._source, TextModel, "this grid shows a vision model: see grid.vision_model")

    @property
    def mean_statistics(self) -> HeadStatistics | None:
        """Per-head statistics averaged over the pictures of the last `run_many`, else None."""
        return self._gallery.mean_statistics

    @property
    def dataset_statistics(self) -> pandas.DataFrame | None:
        """The last `run_many`'s statistics over every picture (as `head_statistics_over`), else None."""
        return self._gallery.frame

    def run(
        self,
        image: ImageLike | str,
        *,
        query: Sequence[int] | None = None,
        decoder_text: str | None = None,
        prompt: str | None = None,
        max_new_tokens: int | None = None,
    ) -> AttentionGrid:
        """Run the model on `image` (a text, for a text model) and stream its attention into the grid,
        layer by layer.

        A single run ends the set of pictures of `run_many` (the slider goes away).

        `query` lists token indices whose attention rows are averaged (default: CLS, or every
        patch for models without one; for text, the last token of a decoder). `decoder_text` is the
        decoder's text of an encoder-decoder. A vision-language model generates from `prompt` (default:
        the grid's) up to `max_new_tokens`, streaming each token; its queries are the generated tokens
        (default: the latest). The widget keeps its state if the input or the query is bad.
        """
        self._check_open()
        options: dict[str, Any] = {"decoder_text": decoder_text} if decoder_text is not None else {}
        if isinstance(self._source, GeneratingSource):
            options = {
                "prompt": prompt if prompt is not None else self._prompt["prompt"],
                "max_new_tokens": max_new_tokens or self._prompt["max_new_tokens"],
            }
            prepared = self._source.prepare_input(image, **options)
            if len(self._gallery):
                self._gallery.clear()
            chosen = list(query) if query is not None else None
            self._session.exclusive(lambda ticket: generate_into(self, prepared, chosen, ticket))
            return self
        prepared = self._source.prepare_input(image, **options)
        query = list(query) if query is not None else prepared.layout.default_query
        prepared.layout.check_query(query)
        input_state = input_traits(prepared)
        if len(self._gallery):
            self._gallery.clear()
            input_state = {**input_state, "image_count": 0, "image_index": 0}
        self._compute(RunInput(prepared, query), rerun=True, input_state=input_state)
        return self

    def run_many(
        self,
        images: Any,
        *,
        sample: int = DEFAULT_SAMPLE,
        batch_size: int = 32,
        num_workers: int = 0,
        statistics: Mapping[str, Statistic] | None = None,
        progress: bool = True,
        on_update: Callable[[pandas.DataFrame], None] | None = None,
    ) -> AttentionGrid:
        """Run the model over every picture of `images` in batches: a folder, list or iterable, a torch
        or Hugging Face dataset or a DataLoader, as `head_statistics_over` takes them.

        `dataset_statistics` is then `head_statistics_over`'s frame over every picture, and
        `mean_statistics` its mean distance and entropy per head. A seeded random sample of at most
        `sample` pictures is kept for `image_index` (the widget's slider) to browse, with their
        attention while it fits in `cache_budget`, so browsing does not run the model again (beyond
        it: once per picture shown). Unreadable pictures are skipped and named
        (`dataset_statistics.attrs["skipped"]`); Ctrl-C keeps what was counted and the pictures kept.
        `on_update(frame so far)` follows the run (`DatasetStatisticsPanel.update`); a tqdm progress
        bar shows unless `progress` is False.
        """
        self._check_open()
        self._gallery.run_many(
            self,
            images,
            sample=sample,
            batch_size=batch_size,
            num_workers=num_workers,
            statistics=statistics,
            progress=progress,
            on_update=on_update,
        )
        return self

    def head_statistics(self) -> HeadStatistics:
        """Mean attention distance (pixels) and entropy of every head for the picture shown."""
        run = self._current()
        picture = run.prepared.picture
        if picture is None:
            raise TypeError("mean attention distance is measured in pixels: it is for vision models")
        if self._statistics is None or self._statistics[0] is not run.model_input:
            attentions = [self.full_attention(layer) for layer in range(1, self.layer_count + 1)]
            statistics = head_statistics(
                attentions, run.layout.special_count, run.layout.grid, picture.patch_size
            )
            self._statistics = (run.model_input, statistics)
        return self._statistics[1]

    def full_attention(self, layer: int) -> torch.Tensor:
        """Attention of layer `layer` (1-based) for the last image, [heads, tokens, tokens], on the CPU."""
        self._current()
        (index,) = numbered([layer], self.layer_count, "layer")
        return self._session.full_attention(index)

    def head_region(
        self, layer: int, head: int, rows: tuple[int, int], columns: tuple[int, int], limit: int = 1024
    ) -> torch.Tensor:
        """One head's attention from queries `rows` = (first, stop) to keys `columns` for the last input,
        on the CPU: exact when the region is at most `limit` tokens a side, pooled to fit otherwise.

        Only the region is kept while the model runs (a block of queries at a time for long contexts).
        """
        self._current()
        layer, head = self._layer_and_head(layer, head)
        return self._session.head_region(layer, head, rows, columns, limit)

    def where_it_looked(self, tokens: Sequence[int] | None = None) -> WhereItLooked:
        """A vision-language model's generated `tokens` (default: the query shown), averaged: the head
        mean of each layer and over layers, over the canvas and laid onto the picture (`on_picture`)."""
        generation = self._current().model_input
        if not isinstance(generation, Generation):
            raise TypeError("where_it_looked is for vision-language models, once a generation has finished")
        return where_it_looked(generation, list(tokens) if tokens is not None else self.query)

    def to_png(self, path: str | Path | None = None, *, dpi: int = 144, **options: Any) -> bytes:
        """The grid as it is shown (view, colormap, normalisation) as PNG bytes; written to `path` if given.

        `options` go to `attnwidget.render.grid_picture` (`tile_size`, `gap`, `font_size`); `dpi`
        is recorded in the file.
        """
        return grid_png(self, path, dpi=dpi, **options)

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
        return overlay_png(self, path, layer=layer, head=head, dpi=dpi, **options)

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

    def close(self) -> None:
        """Close the widget (its views go away) and let go of the attention it keeps."""
        self._closed = True
        if hasattr(self, "_session"):
            self._session.forget()
            self._gallery.clear()
        self._statistics = None
        if getattr(self, "_owns_layout", False):  # ipywidgets keeps every open widget alive
            self.layout.close()
        super().close()

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError(
                "this AttentionGrid was closed (widget.close()), so nothing would show a run: create "
                "a new one, e.g. attnwidget.AttentionGrid(model), and display it"
            )

    def _handle_message(self, widget: Any, content: dict, buffers: list) -> None:
        handle_message(self, content)

    def _current(self) -> RunInput:
        """The input shown; a RuntimeError before the first run."""
        return self._session.current()

    def _head_reductions(self, layer: int, head: int, matrix_size: int) -> LayerBlocks:
        """One head's exact query rows and its matrix pooled to `matrix_size`, for the last input."""
        layer, head = self._layer_and_head(layer, head)
        return self._session.head_reductions(layer, head, matrix_size)

    # -- runs ------------------------------------------------------------------------------------

    def _compute(self, run: RunInput, *, rerun: bool, input_state: dict | None = None) -> None:
        """Reduce every selected layer of `run`, streaming rows, then publish the final state; one run
        at a time: a run asked for while another streams (from another thread: a button's callback, a
        background task) cancels it, which publishes nothing, so no grid mixes two inputs' layers.

        `input_state` (the input's traits, for a new input) is published in the same update as the
        maps, so the front-end never pairs new maps with the previous picture.
        """
        self._session.exclusive(lambda ticket: stream_run(self, run, ticket, rerun, input_state or {}))

    def _recompute(self) -> None:
        if self._session.input is None or self._session.busy:
            return
        self._compute(self._session.input, rerun=self._session.cache is None)

    def _layer_and_head(self, layer: int, head: int) -> tuple[int, int]:
        """One layer and one head, checked (1-based, as the labels)."""
        return numbered([layer], self.layer_count, "layer")[0], numbered([head], self.head_count, "head")[0]

    # -- reactions to the front-end and to Python assignments ------------------------------------

    @t.observe("saved_detail")
    def _saved_detail_changed(self, change: dict) -> None:
        if hasattr(self, "_session"):  # not while the constructor sets it
            self._recompute()

    @t.observe("layers", "heads")
    def _selection_changed(self, change: dict) -> None:
        self._recompute()

    @t.observe("query")
    def _query_changed(self, change: dict) -> None:
        run = self._session.input
        if run is None or self._session.busy or change["new"] == run.query:
            return
        try:
            run.layout.check_query(change["new"])
        except ValueError as error:
            self.message = f"error: {error}"
            self.query = change["old"]
            return
        self._session.input = RunInput(run.prepared, list(change["new"]))
        self._recompute()

    @t.observe("image_index")
    def _image_index_changed(self, change: dict) -> None:
        if len(self._gallery) and not self._session.busy:
            self._gallery.show(self, change["new"], change["old"])

    @t.observe("method", "target", "selected", "rollout_fusion", "discard_ratio", "start_layer")
    def _explanation_inputs_changed(self, change: dict) -> None:
        if change["name"] == "selected" and self.method not in contract.PER_LAYER_METHODS:
            return
        if self._session.input is None or self._session.busy:
            return
        try:
            if change["name"] == "target" and change["new"]:
                explaining(self._source).class_index(change["new"])
            update_explanation(self)
        except ValueError as error:  # a bad class or method for this model: keep the previous one
            if change["name"] in ("target", "method", "start_layer"):
                setattr(self, change["name"], change["old"])
            self.message = f"error: {error}"


def _source_as(source: Source, kind: type, other: str) -> Any:
    """`source` if it is a `kind` (the typed accessors `vision_model`, `text_model`), else a TypeError."""
    if not isinstance(source, kind):
        raise TypeError(other)
    return source
