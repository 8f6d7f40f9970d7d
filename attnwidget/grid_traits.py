"""The synced state of `AttentionGrid`: every trait the front-end reads or writes, in one place.

The trait names and their TypeScript types are checked against `js/src/contract.ts`
(`tests/test_contract.py`); `widget.AttentionGrid` adds the behaviour.
"""

from __future__ import annotations

from collections.abc import Sequence

import anywidget
import ipywidgets
import traitlets as t

from . import contract
from .bundle import read_bundle


class GridTraits(anywidget.AnyWidget):
    """The layer x head grid's synced traits: data written by the kernel, the view by either side."""

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
    status = t.Enum(contract.STATUSES, "empty").tag(sync=True)
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
    query_shares = t.Bytes(b"").tag(sync=True)
    """Vision-language models: float32 little-endian [len(query_labels), layer_count, len(SHARE_KINDS)],
    the head-mean share of each generated token's attention per layer on image, text and sink tokens
    (`contract.SHARE_KINDS`), appended as tokens are generated; empty for other sources."""
    causal = t.Bool(False).tag(sync=True)
    """Text decoders: each query sees only itself and earlier keys; the grid marks the rest."""
    value_kind = t.Enum(contract.VALUE_KINDS, "attention").tag(sync=True)
    """What the values are: attention weights (probabilities), or signed scores, attributions or
    differences (`AttentionGrid.from_attention(values=...)`); the colour bars and titles say so."""
    head_names = t.List(t.Unicode()).tag(sync=True)
    """A name per head of the model, written above the columns instead of `h=..`; empty for none."""
    pooling = t.Enum(contract.POOLINGS, "max").tag(sync=True)
    """How matrices with more tokens than their side are pooled (the `pooling` argument)."""
    saved_bytes = t.Int(0).tag(sync=True)
    """What the widget adds to a notebook saved with widget state, in bytes (binary data as base64)."""

    # View, written by the front-end or by Python.
    view = t.Enum(contract.VIEWS, "query").tag(sync=True)
    colormap = t.Enum(contract.COLORMAPS, "viridis").tag(sync=True)
    normalize = t.Enum(contract.NORMALIZE_SCOPES, "head").tag(sync=True)
    selected = t.List(t.Int()).tag(sync=True)
    overlay_open = t.Bool(False).tag(sync=True)
    alpha = t.Float(0.6, min=0.0, max=1.0).tag(sync=True)
    interpolation = t.Enum(contract.INTERPOLATIONS, "bilinear").tag(sync=True)
    method = t.Enum(contract.METHODS, "attention").tag(sync=True)
    target = t.Unicode("").tag(sync=True)
    mask_mass = t.Float(0.0, min=0.0, max=1.0).tag(sync=True)
    rollout_fusion = t.Enum(contract.ROLLOUT_FUSIONS, "mean").tag(sync=True)
    discard_ratio = t.Float(0.0, min=0.0, max=contract.MAX_DISCARD_RATIO).tag(sync=True)
    start_layer = t.Int(1).tag(sync=True)
    image_index = t.Int(0).tag(sync=True)
    saved_detail = t.Enum(contract.SAVED_DETAILS, "pooled").tag(sync=True)
    """What the state (saved notebooks, exported HTML) holds besides the query -> patch maps: no
    token x token matrices ("maps"), matrices pooled to fit `matrix_budget` ("pooled"), or every
    token x token matrix at full resolution ("full"). The live matrix view always gets exact values
    from the kernel on request."""
    head_dots = t.Instance(ipywidgets.Widget, allow_none=True).tag(
        sync=True, **ipywidgets.widget_serialization
    )
    """A bqplot `Scatter` of one dot per head (dot `i` is head `divmod(i, head_count)`, from 1): the
    front-end keeps its selection and the grid's in step, with no kernel needed (see `HeadStatsPanel`)."""

    # Checks of the numbered selections (from either side).

    @t.validate("layers")
    def _valid_layers(self, proposal: dict) -> list[int]:
        return numbered(proposal["value"], self.layer_count, "layer")

    @t.validate("heads")
    def _valid_heads(self, proposal: dict) -> list[int]:
        return numbered(proposal["value"], self.head_count, "head")

    @t.validate("head_names")
    def _valid_head_names(self, proposal: dict) -> list[str]:
        names = proposal["value"]
        if names and len(names) != self.head_count:
            raise t.TraitError(
                f"head_names: expected {self.head_count} names (one per head), got {len(names)}"
            )
        return names


def numbered(values: Sequence[int] | None, count: int, what: str) -> list[int]:
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
