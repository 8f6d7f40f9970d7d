"""On a CUDA GPU: attention captured there, on eager or beside the model's own sdpa attention,
equals eager `output_attentions`, and repeated runs do not grow the memory allocated on the device.
Skipped where torch sees no CUDA device."""

from __future__ import annotations

import gc

import pytest
import torch
from test_text import eager_reference
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
    switched: list[torch.Tensor] = []
    llama.run(inputs, lambda layer, weights: switched.append(weights.float().cpu()))  # on eager
    beside: dict[int, list[torch.Tensor]] = {}
    outputs = llama.run_fast(
        inputs, lambda layer, first, weights: beside.setdefault(layer, []).append(weights)
    )
    expected = eager_reference(llama.model, input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
    assert len(switched) == len(beside) == len(expected.attentions)
    tolerance = {} if dtype == torch.float32 else {"atol": 1e-2, "rtol": 2e-2}
    for layer, theirs in enumerate(expected.attentions):
        torch.testing.assert_close(switched[layer], theirs.float().cpu())
        ours = torch.cat(beside[layer], dim=2).float().cpu()
        torch.testing.assert_close(ours, theirs.float().cpu(), **tolerance)
    with torch.no_grad():
        sdpa = llama.model(input_ids=inputs.input_ids, attention_mask=inputs.attention_mask)
    assert torch.equal(outputs.logits, sdpa.logits)  # the model's own sdpa outputs
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
