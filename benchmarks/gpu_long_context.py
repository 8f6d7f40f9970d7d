"""A Llama-7B-shaped decoder (random weights, bf16) at 8K tokens on a GPU: attnwidget's capture
against the forward the user would run anyway, peak GPU memory and time.

Contenders, each after the same warm-up, in one process (peak memory is reset between them):
- "forward, sdpa": the forward without attentions, as the model is usually run,
- "forward, eager": the same with eager attention (the implementation that returns weights),
- "grid, pooled matrices": `AttentionGrid.run`: the model keeps its sdpa attention and attnwidget
  computes the weights beside it from the same q and k (`attnwidget.fast_attention`), a block of
  queries at a time, and reduces each block on the GPU (query rows, every head's pooled matrix);
  where sdpa's fused kernel (flash, memory-efficient or cuDNN) passes its check, its log-sum-exp is
  kept and pooled matrices take no softmax (the kernels' verdicts are printed),
- "grid, query rows only": the same with `saved_detail="maps"`: only the query tokens' rows,
- "output_attentions" is not run: it would keep 32 layers x 32 heads x 8K x 8K bf16 weights
  (128 GiB), which no single GPU holds; its size is printed.

    python benchmarks/gpu_long_context.py [--tokens 4096 8192] [--layers 32] [--repeats 3] [--tokenizer DIR]

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


def build(layers: int, device: str, tokenizer_directory: str | None = None):
    """A Llama-7B-shaped causal LM with random bf16 weights, made on `device`, and MiniLM's
    WordPiece tokenizer (offline, from its pip package, or a copy of it in `tokenizer_directory`)."""
    import transformers as tf

    from attnwidget.pretrained import minilm_directory
    from attnwidget.text import TextModel

    tokenizer = tf.AutoTokenizer.from_pretrained(tokenizer_directory or minilm_directory())
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
    parser.add_argument("--tokens", type=int, nargs="+", default=[8192])
    parser.add_argument("--layers", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--tokenizer", help="a directory holding MiniLM's tokenizer files")
    parser.add_argument("--profile", action="store_true", help="then profile one pooled grid run")
    args = parser.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(
            "no CUDA device here: run on a GPU machine, or pass --device cpu to check the script"
        )

    warnings.filterwarnings("ignore", message=".*switches it to 'eager'")  # said in the docstring

    text_model = build(args.layers, args.device, args.tokenizer)
    for tokens in args.tokens:
        compare(text_model, tokens, args.layers, args.device, args.repeats)
    if args.profile:
        profile(text_model, args.tokens[-1])


def profile(text_model, tokens: int) -> None:
    """The operators taking the most device time in one pooled grid run at `tokens` tokens."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as profiler

    from attnwidget import AttentionGrid

    grid = AttentionGrid(text_model)
    grid.send = lambda *args, **kwargs: None
    text = text_of(text_model, tokens)
    grid.run(text)
    with profiler(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as run:
        grid.run(text)
        torch.cuda.synchronize()
    print(run.key_averages().table(sort_by="self_device_time_total", row_limit=14, max_name_column_width=60))


def compare(text_model, tokens: int, layers: int, device: str, repeats: int) -> None:
    """Print the table of every contender at `tokens` tokens."""
    from attnwidget import AttentionGrid
    from attnwidget.sdpa_kernels import kernel_verdicts

    model = text_model.model
    text = text_of(text_model, tokens)
    inputs = text_model.prepare(text)
    grids = {detail: AttentionGrid(text_model, saved_detail=detail) for detail in ("pooled", "maps")}
    for grid in grids.values():
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
        "grid, pooled matrices": lambda: grids["pooled"].run(text),
        "grid, query rows only": lambda: grids["maps"].run(text),
    }
    weights_gib = layers * HEADS * tokens**2 * 2 / 2**30
    model_gib = sum(p.numel() * p.element_size() for p in model.parameters()) / 2**30
    print(f"{text_model.name}, bf16, {tokens} tokens, {device}; model {model_gib:.1f} GiB")
    print(f"median of {repeats} after one warm-up run each; peak allocated memory, and above the model")
    print("| contender | median s | vs sdpa | peak GiB | above the model GiB | vs sdpa |")
    print("| --------- | -------- | ------- | -------- | ------------------- | ------- |")
    baseline = None
    for name, run in contenders.items():
        try:
            run()  # warm-up
            seconds, peak = measure(run, device, repeats)
        except torch.OutOfMemoryError:
            print(f"| {name} | out of memory | | | | |", flush=True)
            torch.cuda.empty_cache()
            continue
        above = peak - model_gib
        baseline = baseline or (seconds, above)
        memory = ["n/a"] * 3
        if not math.isnan(peak):
            memory = [f"{peak:.1f}", f"{above:.2f}", f"{above / baseline[1]:.2f}x"]
        cells = [name, f"{seconds:.2f}", f"{seconds / baseline[0]:.2f}x", *memory]
        print("| " + " | ".join(cells) + " |", flush=True)
    print(f"| output_attentions | not run: the weights alone take {weights_gib:.1f} GiB | | | | |")
    for detail, grid in grids.items():
        print(f"grid ({detail}): {grid.status}, matrices {grid.matrix_size} x {grid.matrix_size} per head")
    for situation, kept in kernel_verdicts().items():
        name, device_type, dtype, mask, causal, grouped = situation
        verdict = "checked, log-sum-exp kept" if kept else "refused: pooled matrices take the softmax"
        where = f"{device_type}, {dtype}, mask {mask}, causal {causal}, grouped {grouped}"
        print(f"kernel {name} ({where}): {verdict}")


if __name__ == "__main__":
    main()
