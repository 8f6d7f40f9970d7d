"""Which architectures of the installed transformers take attnwidget's fast path.

    .venv/bin/python scripts/fast_path_architectures.py          # by the form of their eager attention
    .venv/bin/python scripts/fast_path_architectures.py --run    # and run every causal LM and image
                                                                  # classifier family, random-init

The first lists every modeling family with an `eager_attention_forward` by its form
(`attnwidget.eager_forms`; about 10 s). With `--run`, each family transformers maps to a causal LM or
an image classifier is built from a small random configuration (in a process of its own, 180 s and
10 GB at most) and captured: beside sdpa where it takes the fast path, its weights compared with
eager `output_attentions` (text left-padded; every row, as weights and as score blocks), else
the reason it does not (about 20 minutes on 2 cores).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import resource
import subprocess
import sys
import warnings
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
import transformers
import transformers.models
from PIL import Image

from attnwidget.eager_forms import form_of_function

SMALL = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}
TEXT_SHAPE = {"num_key_value_heads": 2, "head_dim": 16, "max_position_embeddings": 128}
TOKENS = {"pad_token_id": 0, "bos_token_id": 1, "eos_token_id": 2}
VISION_SHAPE = {"image_size": 32, "patch_size": 8, "num_labels": 3}
#: Largest difference from eager `output_attentions` counted as equal (float32).
TOLERANCE = 1e-4


def forms() -> dict[str, list[str]]:
    """Form (or "another form") -> the families of transformers.models with an eager attention of it."""
    found: dict[str, list[str]] = defaultdict(list)
    for family in sorted(info.name for info in pkgutil.iter_modules(transformers.models.__path__)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                module = importlib.import_module(f"transformers.models.{family}.modeling_{family}")
        except Exception:  # no such module, or one needing a package not installed
            continue
        function = getattr(module, "eager_attention_forward", None)
        if function is not None:
            found[form_of_function(function) or "another form: eager attention"].append(family)
    return found


def families() -> list[tuple[str, str]]:
    """(kind, model type) of every causal LM and image classifier family transformers maps."""
    from transformers.models.auto import modeling_auto

    text = sorted(modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES)
    vision = sorted(modeling_auto.MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES)
    return [("text", name) for name in text] + [("vision", name) for name in vision]


def check_one(kind: str, model_type: str) -> str:
    """The outcome of capturing one random-init family: "fast path, max |diff| ...", "eager: why",
    "refused: error", "config: ..." where no small model of it could be built, or "model: ..." where
    the model's own forward fails on the input."""
    from attnwidget.models import VisionModel
    from attnwidget.text import TextModel, _arguments

    auto = transformers.AutoModelForImageClassification
    auto = transformers.AutoModelForCausalLM if kind == "text" else auto
    shape = {**TEXT_SHAPE, **TOKENS} if kind == "text" else VISION_SHAPE
    try:
        config = transformers.AutoConfig.for_model(model_type, **SMALL, **shape)
        torch.manual_seed(0)
        model = auto.from_config(config).eval()
        with torch.no_grad():
            model(**_trial_input(kind))
    except Exception as error:
        return f"config: no small model ({type(error).__name__})"
    try:
        if kind == "text":
            source = TextModel(model, _tokenizer())
            prepared = source.prepare("The cat sat on the mat, and the dog sat on the log.")
            prepared.attention_mask[:, :2] = 0  # left padding
            arguments = _arguments(prepared)
            model_input, forward = prepared, model
        else:
            processor = transformers.BitImageProcessor(
                size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}
            )
            source = VisionModel(model, processor)
            picture = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
            model_input = source.prepare(Image.fromarray(picture))[0]
            arguments, forward = {"pixel_values": model_input}, source.forward_module
    except Exception as error:
        return _refused(error)
    try:
        with torch.no_grad():
            forward(**arguments)
    except Exception as error:
        return f"model: its own forward fails on this input ({type(error).__name__})"
    try:
        if not source.query_selection:
            from attnwidget.fast_attention import fast_path_refusal

            return f"eager: {fast_path_refusal(source.model, source.attention_modules[0])}"
        current = model.config._attn_implementation
        model.set_attn_implementation("eager")
        with torch.no_grad():
            expected = [weights for weights in forward(**arguments, output_attentions=True).attentions]
        model.set_attn_implementation(current)
        worst = 0.0
        for scores in (False, True):
            layers = _fast_capture(source, model_input, scores)
            if len(layers) != len(expected):
                return f"refused: {len(layers)} layers handed over where eager returns {len(expected)}"
            for layer, weights in enumerate(expected):
                worst = max(worst, float((layers[layer] - weights.float()).abs().max()))
        verdict = "equal to eager" if worst <= TOLERANCE else "DIFFERS FROM EAGER"
        return f"fast path, {verdict} (max |diff| {worst:.1e})"
    except Exception as error:
        return _refused(error)


def _refused(error: Exception) -> str:
    return f"refused: {type(error).__name__}: {' '.join(str(error).split())[:140]}"


def _fast_capture(source, model_input, scores: bool) -> dict[int, torch.Tensor]:
    """Each layer's float32 weights as `run_fast` hands them over (score blocks turned into weights)."""
    from attnwidget.score_blocks import ScoreBlock

    blocks: dict[int, list[torch.Tensor]] = defaultdict(list)

    def keep(layer: int, first: int, weights: torch.Tensor | ScoreBlock) -> None:
        block = weights.weights() if isinstance(weights, ScoreBlock) else weights
        blocks[layer].append(block.float().clone())

    source.run_fast(model_input, keep, None, None, scores)
    return {layer: torch.cat(parts, dim=2) for layer, parts in blocks.items()}


def _trial_input(kind: str) -> dict[str, torch.Tensor]:
    if kind == "text":
        return {"input_ids": torch.tensor([[5, 6, 7, 8]])}
    return {"pixel_values": torch.zeros(1, 3, 32, 32)}


def _tokenizer() -> transformers.PreTrainedTokenizerFast:
    from tokenizers import ByteLevelBPETokenizer

    trainer = ByteLevelBPETokenizer()
    corpus = ["The cat sat on the mat, and the dog sat on the log."] * 10
    specials = ["<pad>", "<s>", "</s>"]
    trainer.train_from_iterator(corpus, vocab_size=300, min_frequency=1, special_tokens=specials)
    return transformers.PreTrainedTokenizerFast(
        tokenizer_object=trainer, pad_token="<pad>", bos_token="<s>", eos_token="</s>"
    )


def _limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (10 * 1024**3, 10 * 1024**3))


def run_all(jobs: int) -> None:
    """Every family of `families`, each in a process of its own, as a table and a count by outcome."""

    def one(family: tuple[str, str]) -> tuple[str, str, str]:
        kind, model_type = family
        command = [sys.executable, str(Path(__file__).resolve()), "--one", kind, model_type]
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=180, preexec_fn=_limited)
            lines = done.stdout.strip().splitlines()
            outcome = lines[-1] if done.returncode == 0 and lines else f"crashed (exit {done.returncode})"
        except subprocess.TimeoutExpired:
            outcome = "crashed (over 180 s)"
        return kind, model_type, outcome

    with ThreadPoolExecutor(jobs) as pool:
        outcomes = list(pool.map(one, families()))
    print(f"transformers {transformers.__version__}, torch {torch.__version__}")
    print("| kind | family | outcome |")
    print("| ---- | ------ | ------- |")
    for kind, model_type, outcome in outcomes:
        print(f"| {kind} | {model_type} | {outcome} |")
    counts = Counter((kind, outcome.split(":")[0].split(",")[0]) for kind, _, outcome in outcomes)
    differing = sum("DIFFERS" in outcome for _, _, outcome in outcomes)
    print("\n| kind | outcome | families |\n| ---- | ------- | -------- |")
    for (kind, outcome), count in sorted(counts.items()):
        print(f"| {kind} | {outcome} | {count} |")
    print(f"\nfast path differing from eager: {differing}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="store_true", help="build and capture every family, random-init")
    parser.add_argument("--jobs", type=int, default=2, help="families checked at once with --run")
    parser.add_argument("--one", nargs=2, metavar=("KIND", "MODEL_TYPE"), help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        warnings.simplefilter("ignore")
        transformers.logging.set_verbosity_error()
        print(check_one(*arguments.one))
    elif arguments.run:
        run_all(arguments.jobs)
    else:
        print(f"transformers {transformers.__version__}")
        print("| form | families | names |")
        print("| ---- | -------- | ----- |")
        for form, names in sorted(forms().items()):
            print(f"| {form} | {len(names)} | {', '.join(names)} |")


if __name__ == "__main__":
    main()
