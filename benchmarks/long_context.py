"""Long contexts on the CPU: attnwidget's capture against `output_attentions=True`, peak memory and time.

A Llama-shaped decoder with random weights (32 layers x 32 heads, hidden size 256, eager attention)
at 1K, 2K and 4K tokens. Each contender runs in a fresh process, so its peak memory (resident set,
above what the loaded model already held) is its own:
- the forward without attentions (the baseline: eager attention builds one layer's weights at a time),
- the forward with `output_attentions=True` (every layer's weights kept until the forward ends),
- `AttentionGrid.run` with whole layers ("attnwidget, layers"): capture with hooks, query rows and 8-bit
  pooled matrices per layer, nothing else kept (the full-attention cache is off beyond `cache_budget`),
- `AttentionGrid.run` as it comes ("attnwidget, blocks"): a layer larger than `block_bytes` (256 MiB)
  is computed and reduced a block of queries at a time, so no layer's whole attention ever exists.

    python benchmarks/long_context.py [--tokens 1024 2048 4096] [--repeats 3]

A contender that would need more memory than the machine has is not run: its estimate is printed.
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable

LAYERS, HEADS, HIDDEN = 32, 32, 256
CONTENDERS = ("forward", "output_attentions", "attnwidget, layers", "attnwidget, blocks")
WHOLE_LAYERS = 2**62  # a block_bytes no layer exceeds


def build(implementation: str = "eager"):
    """The decoder (attention `implementation`) and MiniLM's WordPiece tokenizer (offline, from its pip
    package)."""
    import torch
    import transformers as tf

    from attnwidget.pretrained import minilm_directory
    from attnwidget.text import TextModel

    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_directory())
    torch.manual_seed(0)
    config = tf.LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=2 * HIDDEN,
        num_hidden_layers=LAYERS,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=8192,
        attn_implementation=implementation,
    )
    model = tf.LlamaForCausalLM(config).eval()
    return TextModel(model, tokenizer, name="llama-shaped 32 x 32 (random weights)")


def text_of(text_model, tokens: int) -> str:
    """A text of exactly `tokens` tokens (with the tokenizer's [CLS] and [SEP])."""
    words = ("the cat sat on the mat and looked at the dog " * (tokens // 5 + 10)).split()
    ids = text_model.tokenizer(" ".join(words))["input_ids"][1:-1][: tokens - 2]
    text = text_model.tokenizer.decode(ids)
    assert len(text_model.tokenizer(text)["input_ids"]) == tokens
    return text


def resident_kib() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def reset_peak() -> None:
    """Start the kernel's count of this process's peak resident set (VmHWM) again from now (Linux)."""
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def peak_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status: this benchmark needs Linux")


def peak_mib_above_live(run: Callable[[], object]) -> float:
    """Run `run` once: its peak resident MiB above what is live before it (what earlier work freed
    goes back to the system first, glibc's `malloc_trim`, so the baseline is what is live)."""
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    before = resident_kib()
    reset_peak()
    run()
    return (peak_kib() - before) / 1024


def measure_one(contender: str, tokens: int, repeats: int) -> dict:
    """Run one contender in this (fresh) process: median seconds and peak memory above the model."""
    import torch

    from attnwidget import AttentionGrid

    text_model = build()
    text = text_of(text_model, tokens)
    inputs = text_model.prepare(text)
    grid = None
    if contender.startswith("attnwidget"):
        block_bytes = WHOLE_LAYERS if contender == "attnwidget, layers" else 256 * 1024**2
        grid = AttentionGrid(text_model, pooling="max", block_bytes=block_bytes)
    if grid is not None:
        grid.send = lambda *args, **kwargs: None  # no front-end here: messages go nowhere

    def run() -> None:
        if grid is not None:
            grid.run(text)
            return
        with torch.no_grad():
            text_model.model(input_ids=inputs.input_ids, output_attentions=contender == "output_attentions")

    before = resident_kib()
    reset_peak()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return {"seconds": statistics.median(times), "peak_mib": (peak_kib() - before) / 1024}


def attention_gib(tokens: int) -> float:
    """One layer's fp32 attention weights, in GiB."""
    return HEADS * tokens * tokens * 4 / 2**30


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--one", choices=CONTENDERS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure_one(args.one, args.tokens[0], args.repeats)))
        return

    available_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    machine = f"{os.cpu_count()} cores, {available_gib:.0f} GiB"
    print(f"Llama-shaped decoder, {LAYERS} layers x {HEADS} heads, hidden {HIDDEN}, eager, CPU; {machine}")
    print(f"median of {args.repeats}; each contender in its own process")
    print("| tokens | contender | median s | vs forward | peak MiB above the model | vs forward |")
    print("| ------ | --------- | -------- | ---------- | ------------------------ | ---------- |")
    for tokens in args.tokens:
        results: dict[str, dict] = {}
        for contender in CONTENDERS:
            # Every layer's weights at once, plus the eager softmax's own copies of one layer.
            needed = LAYERS * attention_gib(tokens) + 3 * attention_gib(tokens)
            if contender == "output_attentions" and needed > 0.9 * available_gib:
                print(f"| {tokens} | {contender} | not run: needs about {needed:.0f} GiB | | | |")
                continue
            command = [sys.executable, __file__, "--one", contender, "--tokens", str(tokens)]
            command += ["--repeats", str(args.repeats)]
            done = subprocess.run(command, capture_output=True, text=True, cwd=os.path.dirname(__file__))
            if done.returncode != 0:
                print(f"| {tokens} | {contender} | failed: {done.stderr.strip().splitlines()[-1:]} | | | |")
                continue
            results[contender] = json.loads(done.stdout.strip().splitlines()[-1])
            base = results.get("forward")
            row = results[contender]
            time_ratio = f"{row['seconds'] / base['seconds']:.2f}x" if base else ""
            memory_ratio = f"{row['peak_mib'] / base['peak_mib']:.2f}x" if base and base["peak_mib"] else ""
            cells = [str(tokens), contender, f"{row['seconds']:.2f}", time_ratio, f"{row['peak_mib']:.0f}"]
            print("| " + " | ".join([*cells, memory_ratio]) + " |", flush=True)


if __name__ == "__main__":
    main()
