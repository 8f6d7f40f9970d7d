"""Which attention implementation a model runs, and switching it while attention is captured."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager, suppress

from torch import nn

from .errors import UnsupportedModelError


class EagerSwitch:
    """Switches a model to eager attention while attention is captured (sdpa and flash attention
    return no weights) and back afterwards, saying so once."""

    def __init__(self, model: nn.Module, attention_module: nn.Module, name: str):
        self.model, self.attention_module, self.name = model, attention_module, name
        self._told = False

    @contextmanager
    def __call__(
        self, implementation: str = "eager", *, announce: bool = True, why: str | None = None
    ) -> Iterator[None]:
        """Within the block the model computes attention with `implementation` (eager by default);
        the first switch to eager is announced unless `announce` is False, with `why` the model does
        not take the fast path (`fast_attention`) when given."""
        current = attention_implementation(self.attention_module, self.model)
        if current == implementation:
            yield
            return
        if not hasattr(self.model, "set_attn_implementation"):
            raise UnsupportedModelError(
                f"the model uses {current!r} attention and cannot switch to {implementation!r}; load it "
                "with attn_implementation='eager'"
            )
        if implementation == "eager" and announce and not self._told:
            reason = f" and attnwidget cannot compute them beside it ({why})" if why else ""
            warnings.warn(
                f"{self.name} uses {current!r} attention, which returns no attention weights{reason}; "
                "attnwidget switches it to 'eager' while it captures and back afterwards",
                stacklevel=4,
            )
            self._told = True
        try:
            self.model.set_attn_implementation(implementation)
        except (ValueError, ImportError, NotImplementedError) as error:
            with suppress(Exception):  # a switch that failed half-way (some sub-models) is undone
                self.model.set_attn_implementation(current)
            raise UnsupportedModelError(
                f"{self.name} uses {current!r} attention, which returns no attention weights, and cannot "
                f"switch to {implementation!r} ({error}); attnwidget shows attention only for models that "
                "can compute it eagerly. Grad-CAM (`attnwidget.methods.grad_cam_for`) needs no weights"
            ) from error
        try:
            yield
        finally:
            self.model.set_attn_implementation(current)


def attention_implementation(module: nn.Module, model: nn.Module) -> str:
    """The attention implementation `module` runs (its config's, else the model's): "eager" by default."""
    config = getattr(module, "config", None) or model.config
    return getattr(config, "_attn_implementation", None) or "eager"
