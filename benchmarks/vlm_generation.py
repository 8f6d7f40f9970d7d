"""Vision-language generation on the CPU: capture of each generated token's rows against plain `generate`.

Random-init models built from configs, offline (the builders of `tests/tiny_vlm_models.py`, made
larger here): a LLaVA 1.5 shape (CLIP tower at 336 / 14: 576 image tokens; Llama 8 layers x 8 heads,
hidden 256) and a Qwen2-VL shape (a 448 x 448 picture: 256 merged image tokens; 8 layers x 8 heads,
hidden 256). Each generates `--tokens` tokens greedily (`min_new_tokens` too, so every run makes as
many) from the same picture and prompt; contenders:
- "generate": `model.generate` as the model is loaded (sdpa attention; the baseline),
- "generate, eager": the same with the language model on eager attention (what returns weights),
- "capture": `VisionLanguageModel.generate`: the language model keeps its sdpa attention and each
  step's last query row is computed beside it (`fast_attention`), keeping each token's rows over
  the image tokens and its shares; nothing else,
- "grid": `AttentionGrid.run` (the capture, each token streamed into the widget's traits, then the
  finished grid published; no front-end attached).
Times: median of `--repeats`, interleaved. Peak memory: each contender in a fresh process (after one
warm-up run), its peak resident set (VmHWM) above what the process held before; the median of
`--memory-repeats` processes. "rows kept": the bytes of the captured rows (exact). Bytes per token:
what the grid's synced traits changed by at each generated token (maps, ranges, specials, shares,
transcript, query).

    python benchmarks/vlm_generation.py [--families llava qwen2_vl] [--tokens 64] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
from pathlib import Path

from long_context import peak_mib_above_live

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "benchmarks")]

CONTENDERS = ("generate", "generate, eager", "capture", "grid")
TEXT = {"hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 8, "num_attention_heads": 8}


def build(family: str):
    """The model, its processor, the picture and the prompt of one family (see the module)."""
    import numpy as np
    import tiny_vlm_models as tiny
    import torch
    import transformers as tf
    from PIL import Image

    from attnwidget.vlm import VisionLanguageModel

    tiny.SMALL_TEXT.update(TEXT, num_key_value_heads=8, max_position_embeddings=2048)
    rng = np.random.default_rng(0)
    if family == "llava":
        model, processor = tiny.llava(image_size=336, patch=14)
        size = (448, 336)
    else:
        model, processor = tiny.qwen2_vl(max_pixels=448 * 448)
        model.config.vision_config.hidden_size = TEXT["hidden_size"]  # the merger's output: the text width
        model.config.text_config.rope_parameters["mrope_section"] = [4, 6, 6]  # half of head_dim 32
        torch.manual_seed(0)
        model = tf.Qwen2VLForConditionalGeneration(model.config).eval()
        size = (448, 448)
    if family == "llava":  # a wider vision tower than the tests' (the language model is the same)
        vision = tf.CLIPVisionConfig(
            hidden_size=128,
            intermediate_size=256,
            num_hidden_layers=4,
            num_attention_heads=4,
            image_size=336,
            patch_size=14,
        )
        model.config.vision_config = vision
        torch.manual_seed(0)
        model = tf.LlavaForConditionalGeneration(model.config).eval()
    picture = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))
    return VisionLanguageModel(model, processor), picture, tiny.PROMPTS[family]


def contenders(family: str, tokens: int) -> dict:
    import torch

    from attnwidget import AttentionGrid
    from attnwidget.vlm.generation import language_model_on

    vlm, picture, prompt_text = build(family)
    prompt = vlm.prepare(picture, prompt_text, max_new_tokens=tokens)
    options = {"min_new_tokens": tokens}
    grid = AttentionGrid(vlm, prompt=prompt_text, max_new_tokens=tokens)
    grid.send = lambda *args, **kwargs: None  # no front-end here: messages go nowhere

    def plain() -> None:
        with torch.no_grad():
            vlm.model.generate(**prompt.encoded, do_sample=False, max_new_tokens=tokens, **options)

    def eager() -> None:
        with language_model_on(vlm.model, "eager"):
            plain()

    def capture() -> None:
        vlm.generate(prompt, **options)

    def grid_run() -> None:
        original = vlm.generate
        vlm.generate = lambda prompt_, on_token=None: original(prompt_, on_token, **options)
        try:
            grid.run(picture)
        finally:
            vlm.generate = original

    return {
        "generate": plain,
        "generate, eager": eager,
        "capture": capture,
        "grid": grid_run,
        "_grid": grid,
        "_vlm": vlm,
        "_prompt": prompt,
    }


def bytes_per_token(family: str, tokens: int) -> float:
    """Mean size of the synced traits changed at each generated token while the grid streams."""
    made = contenders(family, tokens)
    grid = made["_grid"]
    names = ["maps", "maps_range", "specials", "query_shares", "query_labels", "query"]
    sizes: list[int] = []

    def changed(change: dict) -> None:
        value = change["new"]
        size = len(value) if isinstance(value, bytes) else len(json.dumps(value))
        sizes.append(size)

    grid.observe(changed, names)
    counted: list[int] = []
    original = made["_vlm"].generate

    def counting(prompt, on_token=None, **options):
        def each(*args):
            before = sum(sizes)
            on_token(*args)
            counted.append(sum(sizes) - before)

        return original(prompt, each, **options)

    made["_vlm"].generate = counting
    made["grid"]()
    return statistics.mean(counted)


def peak_mib(family: str, contender: str, tokens: int) -> float:
    """Run one contender in this (fresh) process after one warm-up: peak resident MiB above the model."""
    run = contenders(family, tokens)[contender]
    run()
    return peak_mib_above_live(run)


def main() -> None:
    import torch
    from timing import interleaved_times

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--families", nargs="+", default=["llava", "qwen2_vl"])
    parser.add_argument("--tokens", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--memory-repeats", type=int, default=3)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(peak_mib(args.one[0], args.one[1], args.tokens)))
        return
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"{args.tokens} tokens, median of {args.repeats}"
    )
    print(
        "| family | image tokens | contender | median s | vs generate | peak MiB above model | vs generate |"
    )
    print(
        "| ------ | ------------ | --------- | -------- | ----------- | -------------------- | ----------- |"
    )
    per_token, kept = {}, {}
    for family in args.families:
        made = contenders(family, args.tokens)
        image_tokens = made["_vlm"].prepare(*build(family)[1:], max_new_tokens=1).placed.token_map.token_count
        times = interleaved_times({name: made[name] for name in CONTENDERS}, args.repeats)
        peaks = {}
        for contender in CONTENDERS:
            command = [sys.executable, __file__, "--one", family, contender, "--tokens", str(args.tokens)]
            runs = [
                subprocess.run(command, check=True, capture_output=True, text=True)
                for _ in range(args.memory_repeats)
            ]
            peaks[contender] = statistics.median(json.loads(run.stdout) for run in runs)
        generation = made["_vlm"].generate(made["_prompt"], min_new_tokens=args.tokens)
        kept[family] = sum(step.rows.nbytes + step.shares.nbytes for step in generation.steps)
        base_time, base_peak = statistics.median(times["generate"]), peaks["generate"]
        for contender in CONTENDERS:
            seconds = statistics.median(times[contender])
            print(
                f"| {family} | {image_tokens} | {contender} | {seconds:.2f} | {seconds / base_time:.2f}x "
                f"| {peaks[contender]:.1f} | {peaks[contender] / base_peak:.2f}x |"
            )
        per_token[family] = bytes_per_token(family, args.tokens)
    for family, size in per_token.items():
        print(
            f"{family}: rows kept {kept[family] / 2**20:.2f} MiB for {args.tokens} tokens; "
            f"{size / 1024:.1f} KiB of synced traits per generated token while streaming"
        )


if __name__ == "__main__":
    main()
