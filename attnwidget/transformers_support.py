"""What the transformers wrappers share: finding the attention modules a model declares, and loading
configs and weights quietly, with errors that name the fix. (Switching the attention implementation
while capturing is `implementation.EagerSwitch`.)"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from torch import nn

from .errors import UnsupportedModelError

KIND_NAMES = {"attentions": "attention", "cross_attentions": "cross-attention"}


def find_attention_modules(
    model: nn.Module,
    root: nn.Module,
    kind: str = "attentions",
    declared_by: Sequence[nn.Module] | None = None,
) -> tuple[list[nn.Module], int]:
    """The modules under `root` that return attention weights, in layer order, and the output index.

    transformers declares, per architecture, which module class records `attentions` (or
    `cross_attentions`: `kind`) and, where self and cross attention share a class, under which
    module name (`_can_record_outputs`); that is used instead of hard-coded module paths. Where
    `declared_by` is given and its declarations name modules under `root`, only theirs count (a
    language model's, not those of the vision or audio towers inside it); else every module's.
    """
    if declared_by is not None:
        with suppress(UnsupportedModelError):
            return _declared_modules(model, root, kind, declared_by)
    return _declared_modules(model, root, kind, list(model.modules()))


def _declared_modules(
    model: nn.Module, root: nn.Module, kind: str, declared_by: Sequence[nn.Module]
) -> tuple[list[nn.Module], int]:
    targets: dict[type, tuple[int, str | None]] = {}
    for module in declared_by:
        spec = (getattr(type(module), "_can_record_outputs", None) or {}).get(kind)
        if spec is None:
            continue
        target = getattr(spec, "target_class", spec)
        index = getattr(spec, "index", None)
        if isinstance(target, type):
            targets[target] = (1 if index is None else index, getattr(spec, "layer_name", None))

    def recorded(name: str, module: nn.Module) -> bool:
        if type(module) not in targets:
            return False
        layer_name = targets[type(module)][1]
        return layer_name is None or f".{name}".endswith("." + layer_name.lstrip("."))

    modules = [module for name, module in root.named_modules() if recorded(name, module)]
    if not modules:
        raise UnsupportedModelError(
            f"{type(model).__name__} has no {KIND_NAMES.get(kind, kind)} modules attnwidget can capture. "
            "Supported: transformers >= 5 models that record them: vision transformers (ViT, DeiT, "
            "DINOv2, BEiT, CLIP, SigLIP, ...) and text models (BERT, GPT-2, Llama, Mistral, Qwen, T5, "
            "BART, ...). A CNN has no attention to show: use Grad-CAM, "
            "`attnwidget.methods.grad_cam_for(layer, forward)` or "
            "`attnwidget.pretrained.ImageClassifier(...).grad_cam(image)`"
        )
    indices = {targets[type(module)][0] for module in modules}
    if len(indices) != 1:
        raise UnsupportedModelError(f"{type(model).__name__} mixes attention modules with different outputs")
    return modules, indices.pop()


def language_path(model: nn.Module) -> list[nn.Module] | None:
    """`model` and the modules down to its language model (`get_decoder()`), or None where it names
    none inside `model`: the modules whose attention declarations are a text model's own."""
    get_decoder = getattr(model, "get_decoder", None)
    try:
        decoder = get_decoder() if callable(get_decoder) else None
    except Exception:  # a model that needs a bespoke rule
        return None
    names = {module: name for name, module in model.named_modules()}
    if decoder not in names:
        return None
    path = names[decoder]
    return [module for module, name in names.items() if name == "" or f"{path}.".startswith(f"{name}.")]


@contextmanager
def quiet_weight_loading() -> Iterator[None]:
    """Hide transformers' "Loading weights" progress bar, which would clutter the cell's output."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()


def load_config(name_or_path: str | Path, *, trust_remote_code: bool = False) -> Any:
    """The transformers config of a hub id or local directory, with errors that name the fix.

    An architecture transformers does not know and code shipped with the checkpoint are refused
    (`UnsupportedModelError`); the latter loads only with `trust_remote_code=True`, never by default
    and never after a prompt.
    """
    from transformers import AutoConfig, PreTrainedConfig
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    source = str(name_or_path)
    try:
        raw, _ = PreTrainedConfig.get_config_dict(name_or_path)
    except OSError as error:
        raise OSError(
            f"could not load {source!r}: it is not a local model directory and the Hugging Face hub did "
            f"not provide it ({error.__class__.__name__}: {str(error).splitlines()[0]})"
        ) from error
    model_type = raw.get("model_type")
    own_code = (raw.get("auto_map") or {}).get("AutoConfig")
    if own_code and not trust_remote_code and model_type not in CONFIG_MAPPING:
        raise UnsupportedModelError(
            f"{source} ships its own model code ({own_code}), which attnwidget runs only when asked: "
            "read that code and, if you trust it, pass trust_remote_code=True"
        )
    if not own_code and model_type not in CONFIG_MAPPING:
        import transformers

        raise UnsupportedModelError(
            f"{source} is a {model_type!r} model, an architecture transformers {transformers.__version__} "
            "does not know: upgrade transformers (pip install -U transformers), or load the model yourself "
            "and pass it in: AttentionGrid(model, processor=processor), TextModel(model, tokenizer) for text"
        )
    return AutoConfig.from_pretrained(name_or_path, trust_remote_code=trust_remote_code)
