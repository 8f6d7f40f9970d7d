"""A Llama-7B-shaped decoder (random weights, bf16) at 8K tokens on a GPU: attnwidget's capture
against the forward the user would run anyway, peak GPU memory and time.

Contenders, each after the same warm-up, in one process (peak memory is reset between them):
- "forward, sdpa": the forward without attentions, as the model is usually run,
- "forward, eager": the same with eager attention (the implementation that returns weights),
- "attnwidget": `AttentionGrid.run`: the model keeps its sdpa attention and attnwidget computes the
  weights beside it from the same q and k (`attnwidget.fast_attention`), a block of queries at a
  time, and reduces each block on the GPU (query rows, pooled matrices),
- "output_attentions" is not run: it would keep 32 layers x 32 heads x 8K x 8K bf16 weights
  (128 GiB), which no single GPU holds; its size is printed.

    python benchmarks/gpu_long_context.py [--tokens 8192] [--layers 32] [--repeats 3]

`--device cpu --layers 2 --tokens 1024` checks the script on a machine without a GPU (memory is
then not measured).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
import warnings

import torch
from long_context import text_of

HIDDEN, HEADS, INTERMEDIATE = 4096, 32, 11008


def build(layers: int, device: str):
    """A Llama-7B-shaped causal LM with random bf16 weights, made on `device`, and MiniLM's
    WordPiece tokenizer (offline, from its pip package)."""
    import transformers as tf

    from attnwidget.pretrained import minilm_directory
    from attnwidget.text import TextModel

    tokenizer = tf.AutoTokenizer.from_pretrained(minilm_directory())
    tokenizer.model_max_length = 16384
    config = tf.LlamaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=HIDDEN,
        intermediate_size=INTERMEDIATE,
        num_hidden_layers=layers,
        num_attention_heads=HEADS,
        num_key_value_heads=HEADS,
        max_position_embeddings=16384,
        attn_implementation="sdpa",
    )
    torch.manual_seed(0)
    with torch.device(device):
        model = tf.LlamaForCausalLM(config).to(torch.bfloat16).eval()
    return TextModel(model, tokenizer, name=f"llama-7b-shaped, {layers} layers (random weights)")


def measure(run, device: str, repeats: int) -> tuple[float, float]:
    """Median seconds of `run` and its peak GPU memory in GiB (NaN on the CPU)."""
    cuda = device.startswith("cuda")
    times = []
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        if cuda:
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    peak = torch.cuda.max_memory_allocated() / 2**30 if cuda else float("nan")
    return statistics.median(times), peak


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=8192)
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device here: run on a GPU machine, or pass --device cpu to check the script"
        )

    from attnwidget import AttentionGrid

    warnings.filterwarnings("ignore", message=".*switches it to 'eager'")  # said in the docstring

    text_model = build(args.layers, args.device)
    model = text_model.model
    text = text_of(text_model, args.tokens)
    inputs = text_model.prepare(text)
    grid = AttentionGrid(text_model)
    grid.send = lambda *args, **kwargs: None  # no front-end here: messages go nowhere

    def forward(implementation: str):
        def run() -> None:
            model.set_attn_implementation(implementation)
            with torch.no_grad():
                model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
            model.set_attn_implementation("sdpa")

        return run

    contenders = {
        "forward, sdpa": forward("sdpa"),
        "forward, eager": forward("eager"),
        "attnwidget": lambda: grid.run(text),
    }
    weights_gib = args.layers * HEADS * args.tokens**2 * 2 / 2**30
    model_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    print(f"{text_model.name}, bf16, {args.tokens} tokens, {args.device}; model {model_gib:.1f} GiB")
    print(f"median of {args.repeats} after one warm-up run each; peak allocated memory, model included")
    print("| contender | median s | vs sdpa | peak GiB | vs sdpa |")
    print("| --------- | -------- | ------- | -------- | ------- |")
    baseline = None
    for name, run in contenders.items():
        try:
            run()  # warm-up
            seconds, peak = measure(run, args.device, args.repeats)
        except torch.OutOfMemoryError:
            print(f"| {name} | out of memory | | | |", flush=True)
            torch.cuda.empty_cache()
            continue
        baseline = baseline or (seconds, peak)
        memory = ("n/a", "n/a") if math.isnan(peak) else (f"{peak:.1f}", f"{peak / baseline[1]:.2f}x")
        cells = [name, f"{seconds:.2f}", f"{seconds / baseline[0]:.2f}x", *memory]
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"| output_attentions | not run: the weights alone take {weights_gib:.1f} GiB | | | |")
    print(f"attnwidget: {grid.status}, matrices {grid.matrix_size} x {grid.matrix_size} per head")


if __name__ == "__main__":
    main()
