"""On a CUDA GPU: attention captured there equals the model's own, and repeated runs do not grow the
memory allocated on the device. Skipped where torch sees no CUDA device."""

from __future__ import annotations

import gc

import pytest
import torch
from tiny_text_models import save_tiny_text_models

from attnwidget import AttentionGrid
from attnwidget.text import TextModel

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TEXT = "Transformers attend to every earlier token when they generate. " * 4
#: Bytes the allocator may hold beyond the first run's after many runs (its block rounding).
ALLOCATOR_SLACK = 2 * 1024**2


@pytest.fixture(scope="module")
def llama(tmp_path_factory) -> TextModel:
    folder = save_tiny_text_models(tmp_path_factory.mktemp("gpu-text"))["llama"]
    return TextModel.from_pretrained(folder, device_map="cuda")


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_attention_captured_on_the_gpu_equals_output_attentions(llama, dtype):
    llama.model.to(dtype)
    inputs = llama.prepare(TEXT)
    layers: list[torch.Tensor] = []
    llama.run(inputs, lambda layer, weights: layers.append(weights.float().cpu()))
    with torch.no_grad():
        expected = llama.model(
            input_ids=inputs.input_ids, attention_mask=inputs.attention_mask, output_attentions=True
        ).attentions
    assert len(layers) == len(expected)
    for ours, theirs in zip(layers, expected, strict=True):
        torch.testing.assert_close(ours, theirs.float().cpu())
    llama.model.to(torch.float32)


def test_repeated_runs_on_the_gpu_do_not_grow_allocated_memory(llama):
    torch.cuda.synchronize()
    with_model = torch.cuda.memory_allocated()
    grid = AttentionGrid(llama, TEXT)
    torch.cuda.synchronize()
    after_first = torch.cuda.memory_allocated()
    for _ in range(20):
        grid.run(TEXT)
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= after_first + ALLOCATOR_SLACK
    grid.close()
    del grid
    gc.collect()
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() <= with_model + ALLOCATOR_SLACK
