"""Swin-style vision transformers (shifted windows, stages of their own resolution) as a `Source`,
one stage at a time.

Each stage has its own head count and patch grid, so each is a grid of its own:
`WindowedVisionModel(model, processor, stage=k)`, or `stage_grids(model, image)` for every stage.
A layer's windowed weights are put back on the stage's patch grid (`windows.spread_rows`): a query
patch's row holds its window's attention where those patches lie in the picture, the cyclic shift
undone, and zeros elsewhere. An input whose grid is padded to whole windows (the padding tokens
take attention no patch accounts for) is refused, never drawn short.
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import ipywidgets
import torch
from torch import nn

from .attention_probe import find_attention
from .capture import Workspace, capture_attention
from .errors import UnsupportedModelError
from .models import VisionModel
from .source import AttentionCallback, SourceInput, TokenLayout
from .windows import WindowGrid, spread_rows


def has_shifted_windows(model: nn.Module) -> bool:
    """Whether `model` has Swin-style layers (a `window_size` and a `shift_size` of their own)."""
    return any(_is_window_layer(module) for module in model.modules())


class WindowedVisionModel(VisionModel):
    """One stage of a shifted-window vision transformer (Swin, Swin v2, Donut-Swin) and its image
    processor: a `Source` of query -> patch maps over the picture at that stage's resolution.

    `stage` is numbered from 1; `stage_count` says how many there are. No explanation methods:
    rollout and the gradient methods assume one grid of global attention.
    """

    query_blocks = True
    methods: frozenset[str] = frozenset()

    def __init__(self, model: nn.Module, processor: Any = None, name: str | None = None, *, stage: int = 1):
        self.stage = stage
        super().__init__(model, processor, name)

    def _find_attention(self, config: Any) -> None:
        """Find every windowed layer, group them into stages by heads and tokens, keep `stage`'s."""
        blank = self._blank_input(config)
        with self._eager(announce=False):
            found = find_attention(self.forward_module, blank, self.name)
            # Some families report one layer per stage: every module of the reporting kind is a layer.
            kinds = tuple({type(module) for module in found.modules})
            modules = [module for module in self.forward_module.modules() if isinstance(module, kinds)]
            asked = {"output_attentions": True} if found.only_when_asked else {}
            shapes = _layer_shapes(self.forward_module, modules, found.output_index, blank, asked)
        window_layers = _window_layers(self.forward_module, modules)
        if window_layers is None or any(len(shape) != 4 for shape in shapes):
            raise UnsupportedModelError(
                f"{self.name} computes windowed attention in modules without a window_size and a "
                "shift_size of their own (not Swin-style shifted windows): attnwidget cannot tell where "
                "its windows lie on the picture"
            )
        stages = _stages(shapes)
        self.stage_count = len(stages)
        if not isinstance(self.stage, int) or not 1 <= self.stage <= self.stage_count:
            raise ValueError(f"stage={self.stage!r}: {self.name} has stages 1..{self.stage_count}")
        first, count = stages[self.stage - 1]
        self.attention_modules = modules[first : first + count]
        self._window_layers = window_layers[first : first + count]
        self.output_index = found.output_index
        self._asked = asked
        self.head_count = shapes[first][1]
        self.layer_count = count
        self.prefix_tokens = ()
        merged = 2 ** (self.stage - 1)
        self.stage_patch_size = (self.patch_size[0] * merged, self.patch_size[1] * merged)
        """Pixels of the input per patch at this stage: each stage before it merged 2 x 2 patches."""
        self.model_name = self.name
        """The model's name; `name` adds the stage."""
        self.name = f"{self.name} · stage {self.stage} of {self.stage_count}"

    def layout(self, pixel_values: torch.Tensor) -> TokenLayout:
        """No prefix tokens, then the stage's patch grid."""
        height, width = self.stage_patch_size
        return TokenLayout((), (pixel_values.shape[-2] // height, pixel_values.shape[-1] // width))

    def prepare_input(self, data: Any, **options: Any) -> SourceInput:
        """As `VisionModel.prepare_input`, with the stage's patch size."""
        prepared = super().prepare_input(data, **options)
        return replace(prepared, picture=replace(prepared.picture, patch_size=self.stage_patch_size))

    def capture(
        self, model_input: torch.Tensor, on_block: AttentionCallback, block_bytes: int | None = None
    ) -> Any:
        """Run the model, handing each layer of the stage to `on_block` over the whole patch grid: whole
        layers, or blocks of query rows of at most `block_bytes` (float32) when it is given."""
        layout = self.layout(model_input)
        tokens = layout.token_count

        def spread(layer: int, weights: torch.Tensor) -> None:
            grid = self._window_grid(layer, model_input, weights)
            step = tokens if block_bytes is None else max(1, block_bytes // (4 * self.head_count * tokens))
            for first in range(0, tokens, step):
                on_block(layer, first, spread_rows(weights, grid, first, min(step, tokens - first)))

        return self.run(model_input, spread)

    def capture_batch(
        self, pixel_values: torch.Tensor, on_layer: Any, workspace: Workspace | None = None
    ) -> Any:
        """Run the model on a batch [B, C, H, W], handing each layer of the stage to `on_layer` over the
        whole patch grid of every picture: [B, heads, patches, patches]. Each layer is spread into
        tensors of its own, so a `workspace` is not used."""

        def spread_each(layer: int, weights: torch.Tensor) -> None:
            windows = weights.shape[0] // pixel_values.shape[0]  # the pictures' windows follow each other
            pictures = weights.split(windows)
            on_layer(layer, torch.stack([self.spread(layer, pixel_values, each) for each in pictures]))

        return self.run(pixel_values, spread_each)

    def spread(self, layer: int, pixel_values: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
        """`layer`'s windowed weights [windows, heads, window², window²] (as its module returns them
        for `pixel_values`) over the stage's whole patch grid: [heads, patches, patches]."""
        return spread_rows(weights, self._window_grid(layer, pixel_values, weights))

    def _window_grid(self, layer: int, pixel_values: torch.Tensor, weights: torch.Tensor) -> WindowGrid:
        """How `layer` cut the stage's grid, checked against the weights it returned."""
        layout = self.layout(pixel_values)
        window = math.isqrt(weights.shape[-1])
        owner = self._window_layers[layer]
        grid = WindowGrid(layout.grid, window, int(owner.shift_size))
        rows, columns = self.stage_patch_size
        exact = pixel_values.shape[-2] % rows == 0 and pixel_values.shape[-1] % columns == 0
        whole = window * window == weights.shape[-1] and weights.shape[0] == grid.window_count
        if not exact or grid.padded or not whole:
            raise UnsupportedModelError(
                f"{self.name}: layer {layer + 1} cut a {pixel_values.shape[-2]} x {pixel_values.shape[-1]} "
                f"input into {weights.shape[0]} windows of {weights.shape[-1]} tokens, which is not a "
                f"{layout.grid[0]} x {layout.grid[1]} grid of {rows} px patches in whole {window} x {window} "
                "windows: the model pads it, and the padding takes attention no patch accounts for. Use an "
                f"input whose sides are multiples of {rows * window} px (the processor's size)"
            )
        return grid


def stage_grids(model: Any, image: Any = None, *, processor: Any = None, **kwargs: Any) -> ipywidgets.VBox:
    """One `AttentionGrid` per stage of a shifted-window model (a loaded model, a hub id or a local
    directory), stacked, each run on `image` when it is given; `kwargs` go to every grid."""
    from .widget import AttentionGrid

    first = _windowed_source(model, processor)
    sources = [first] + [
        WindowedVisionModel(first.model, first.processor, first.model_name, stage=stage)
        for stage in range(2, first.stage_count + 1)
    ]
    return ipywidgets.VBox([AttentionGrid(source, image, **kwargs) for source in sources])


def _windowed_source(model: Any, processor: Any) -> WindowedVisionModel:
    if isinstance(model, WindowedVisionModel):
        return model
    if isinstance(model, nn.Module):
        return WindowedVisionModel(model, processor)
    source = VisionModel.from_pretrained(model, processor)
    if not isinstance(source, WindowedVisionModel):
        raise UnsupportedModelError(f"{source.name} has no shifted windows: show it with AttentionGrid")
    return source


def _is_window_layer(module: nn.Module) -> bool:
    return isinstance(getattr(module, "window_size", None), int) and hasattr(module, "shift_size")


def _layer_shapes(
    root: nn.Module, modules: list[nn.Module], index: int, pixel_values: torch.Tensor, asked: dict
) -> list[tuple[int, ...]]:
    """The shape of every module's weights in one forward on `pixel_values`."""
    shapes: dict[int, tuple[int, ...]] = {}

    def keep(layer: int, weights: torch.Tensor) -> None:
        shapes.setdefault(layer, tuple(weights.shape))

    with torch.no_grad(), capture_attention(modules, index, keep):
        root(pixel_values=pixel_values, **asked)
    return [shapes.get(layer, ()) for layer in range(len(modules))]


def _window_layers(root: nn.Module, modules: list[nn.Module]) -> list[nn.Module] | None:
    """For each attention module, the layer above it that cuts windows (has a shift_size); None
    when one has no such layer."""
    owners: dict[int, nn.Module] = {}
    for layer in root.modules():
        if _is_window_layer(layer):
            for child in layer.modules():
                owners.setdefault(id(child), layer)
    found = [owners.get(id(module)) for module in modules]
    return None if any(owner is None for owner in found) else found  # type: ignore[return-value]


def _stages(shapes: tuple[tuple[int, ...], ...]) -> list[tuple[int, int]]:
    """(first layer, layer count) of each run of layers with the same heads and tokens per picture."""
    stages: list[tuple[int, int]] = []
    previous = None
    for layer, (windows, heads, queries, _) in enumerate(shapes):
        key = (heads, windows * queries)
        if key == previous:
            stages[-1] = (stages[-1][0], stages[-1][1] + 1)
        else:
            stages.append((layer, 1))
        previous = key
    return stages
