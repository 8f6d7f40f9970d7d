"""What the kernel and the front-end agree on, defined once: the values of the enumerated traits, the
limits, the groups of traits the front-end follows and the shapes of the custom messages.

`scripts/generate_contract.py` writes this module, with the type and default of every synced trait of
`AttentionGrid` and `StripWidget`, into `js/src/contract.ts`; `tests/test_contract.py` fails when that
file is not what the script writes. The front-end's model is typed from it.
"""

from __future__ import annotations

import json
from importlib.resources import files
from typing import Literal, TypedDict

VIEWS = ("query", "matrix")
"""`view`: query -> patch maps, or token x token matrices."""
COLORMAPS: tuple[str, ...] = tuple(json.loads(files(__package__).joinpath("colormaps.json").read_text()))
"""`colormap`: the lookup tables of `colormaps.json`, in the menu's order."""
DIVERGING_COLORMAPS = ("rdbu_r",)
"""Colormaps for signed values: their colour range is made symmetric about zero, so zero is the middle
colour (white) in tiles, overlay, colour bar and PNGs alike."""
VALUE_KIND_LABELS: dict[str, str] = {
    "attention": "attention weights",
    "scores": "attention scores",
    "attribution": "attribution",
    "difference": "difference",
}
"""`values`: what the grid's numbers are, with the words the colour bar uses. Only "attention" is a
probability (never negative); the others are signed and drawn with a diverging colormap by default."""
VALUE_KINDS = tuple(VALUE_KIND_LABELS)
NORMALIZE_SCOPES = ("head", "layer", "global")
"""`normalize`: the colour range of each tile is its own, its layer's, or the whole grid's."""
INTERPOLATIONS = ("bilinear", "nearest")
"""`interpolation`: how the overlay enlarges the patch grid to the picture."""
POOLINGS = ("max", "mean")
"""`pooling`: how a matrix with more tokens than its side is pooled."""
SAVED_DETAILS = ("maps", "pooled", "full")
"""`saved_detail`: what the saved state holds besides the maps (see `AttentionGrid.saved_detail`)."""
ROLLOUT_FUSIONS = ("mean", "max", "min")
"""`rollout_fusion`: how rollout fuses the heads of a layer."""
STATUSES = ("empty", "running", "done", "error")
"""`status`: no run yet, a run streaming, a run finished, a run failed (the last good grid shows)."""
SHARE_KINDS = ("image", "text", "sink")
"""The kinds of key a generated token's attention is split into (`query_shares`, last axis): image
tokens, text tokens (prompt and generated), and sinks (the first token, and prompt tokens that are not
image tokens and take at least a quarter of the layer's head-mean attention); they sum to 1."""

METHOD_LABELS: dict[str, str] = {
    "attention": "per head",
    "head-mean": "head mean",
    "head-max": "head max",
    "head-min": "head min",
    "rollout": "rollout",
    "gradient-rollout": "gradient rollout",
    "chefer": "Chefer relevance",
    "grad-cam": "Grad-CAM",
    "token-norms": "token norms",
}
"""`method`: every method, in the menu's order, with its menu label."""
METHODS = tuple(METHOD_LABELS)
GRADIENT_METHODS = ("gradient-rollout", "chefer", "grad-cam")
"""Methods that back-propagate from a class (the `target` trait)."""
PER_LAYER_METHODS = ("head-mean", "head-max", "head-min", "token-norms")
"""Methods that show one layer: the selected head's."""
ROLLOUT_OPTIONS: dict[str, tuple[Literal["fusion", "discard", "start"], ...]] = {
    "rollout": ("fusion", "discard", "start"),
    "gradient-rollout": ("discard", "start"),
    "chefer": ("start",),
}
"""The options each method takes: `rollout_fusion`, `discard_ratio`, `start_layer`."""

MAX_DISCARD_RATIO = 0.99
"""The largest `discard_ratio`: rollout always keeps some weights."""
HIGH_NORM_FACTOR = 4.0
"""A patch token is high-norm when its norm exceeds this many times the median of its layer."""
FULL_MATRIX_LIMIT = 1024
"""Largest side, in tokens, of a matrix sent exactly in reply to a request; larger ones are pooled."""

MAP_TRAITS = ("maps", "maps_range", "specials")
"""The query -> patch maps of the grid (row encoding, see docs/architecture.md)."""
MATRIX_TRAITS = ("matrices", "matrices_range")
"""The token x token matrices of the grid."""
SHAPE_TRAITS = (
    "layers",
    "heads",
    "grid",
    "special_tokens",
    "token_count",
    "matrix_size",
    "token_labels",
    "query_labels",
    "causal",
)
"""What the data is shaped by: a change reshapes or replaces it."""
DATA_TRAITS = MAP_TRAITS + MATRIX_TRAITS + SHAPE_TRAITS
"""Traits the front-end's data store follows; a view redraws on every other trait (and the store)."""


class LayersMessage(TypedDict):
    """Kernel -> front-end while a run streams: grid rows `first .. first + count - 1`.

    Buffers: their maps and maps' ranges (row encoding) and their specials (float32).
    """

    type: Literal["layers"]
    run_id: int
    first: int
    count: int


class HeadMessage(TypedDict):
    """Kernel -> front-end, the reply to `HeadRequest`: exact values of one head for `query`.

    Buffers: the query map (float32, gh * gw) and the matrix (float32, height * width).
    """

    type: Literal["head"]
    run_id: int
    layer: int
    head: int
    height: int
    width: int
    query: list[int]


class RegionMessage(TypedDict):
    """Kernel -> front-end, the reply to `RegionRequest`: `height x width` cells over the token spans
    `[first, stop)` of `rows` (queries) and `columns` (keys). Buffers: the cells (float32)."""

    type: Literal["region"]
    run_id: int
    layer: int
    head: int
    rows: tuple[int, int]
    columns: tuple[int, int]
    height: int
    width: int


class HeadRequest(TypedDict):
    """Front-end -> kernel: the exact map and matrix of (layer, head), numbered from 1."""

    type: Literal["request_head"]
    layer: int
    head: int


class RegionRequest(TypedDict):
    """Front-end -> kernel: a zoomed-in region of a head's matrix, token spans `[first, stop)`."""

    type: Literal["request_region"]
    layer: int
    head: int
    rows: tuple[int, int]
    columns: tuple[int, int]


KERNEL_MESSAGES = (LayersMessage, HeadMessage, RegionMessage)
FRONTEND_REQUESTS = (HeadRequest, RegionRequest)
