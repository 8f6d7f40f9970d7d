"""The kernel side of the widget: what it streams and stores equals the model's own attention."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
import traitlets
import transformers as tf

from attnwidget import AttentionGrid, VisionModel
from attnwidget.encode import decode_rows
from attnwidget.reduce import pool_matrix

from tiny_models import SHAPE, attnwidget_hooks

PICTURE = np.random.default_rng(1).integers(0, 256, (45, 60, 3), dtype=np.uint8)


class Recorder:
    """Collects the custom messages a widget sends to its front-end."""

    def __init__(self, widget: AttentionGrid):
        self.messages: list[tuple[dict, list[bytes]]] = []
        widget.send = lambda content, buffers=None: self.messages.append((content, list(buffers or [])))


def reference_attentions(widget: AttentionGrid) -> tuple[torch.Tensor, ...]:
    vision = widget.vision_model
    pixel_values, _ = vision.prepare(__import__("attnwidget").load_image(PICTURE))
    with torch.no_grad():
        return vision.forward_module(pixel_values=pixel_values, output_attentions=True).attentions


def decoded_maps(widget: AttentionGrid) -> np.ndarray:
    gh, gw = widget.grid
    rows = decode_rows(widget.maps, widget.maps_range, gh * gw)
    return rows.reshape(len(widget.layers), len(widget.heads), gh * gw)


def assert_rows_close(decoded: np.ndarray, expected: np.ndarray) -> None:
    step = (expected.max(-1, keepdims=True) - expected.min(-1, keepdims=True)) / 255
    assert (np.abs(decoded - expected) <= step / 2 + 1e-6).all()


@pytest.fixture
def deit(tiny_model_dirs) -> AttentionGrid:
    return AttentionGrid(tiny_model_dirs["deit-distilled"])


def test_maps_and_special_tokens_equal_output_attentions(deit):
    deit.run(PICTURE)
    attentions = reference_attentions(deit)
    assert deit.special_tokens == ["CLS", "DIST"] and deit.query == [0]
    expected = torch.stack([layer[0, :, 0] for layer in attentions]).numpy()  # CLS rows, [L, H, N]
    assert_rows_close(decoded_maps(deit), expected[:, :, 2:])
    specials = np.frombuffer(deit.specials, dtype="<f4").reshape(3, 4, 2)
    np.testing.assert_allclose(specials, expected[:, :, :2], rtol=1e-5)


def test_matrices_are_max_pooled_attention_within_the_budget(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], matrix_budget=12 * 10 * 10)
    widget.run(PICTURE)
    size, tokens = widget.matrix_size, widget.token_count
    assert tokens == 17 and size == 9 and len(widget.matrices) <= 12 * 10 * 10
    attentions = reference_attentions(widget)
    expected = torch.stack([pool_matrix(layer[0], size) for layer in attentions]).numpy()
    decoded = decode_rows(widget.matrices, widget.matrices_range, size).reshape(expected.shape)
    assert_rows_close(decoded, expected)


def test_layers_stream_in_order_with_the_final_state_equal_to_the_stream(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"])
    recorder = Recorder(widget)
    widget.run(PICTURE)
    stream = [(content, buffers) for content, buffers in recorder.messages if content["type"] == "layers"]
    assert stream and all(content["run_id"] == widget.run_id == 1 for content, _ in stream)
    firsts = [content["first"] for content, _ in stream]
    counts = [content["count"] for content, _ in stream]
    assert firsts == list(np.cumsum([0, *counts[:-1]])) and sum(counts) == 3
    assert b"".join(buffers[0] for _, buffers in stream) == widget.maps
    assert b"".join(buffers[1] for _, buffers in stream) == widget.maps_range
    assert b"".join(buffers[2] for _, buffers in stream) == widget.specials
    assert widget.status == "done" and widget.layers_done == 3


def test_layers_finishing_close_together_share_a_message(monkeypatch):
    """At most one message per `STREAM_INTERVAL_S` (and the last one), far below the Jupyter server's
    IOPub limit of 1000 messages a second: here a clock that moves 5 ms each time it is read."""
    import attnwidget.streaming as streaming

    deep = {**SHAPE, "num_hidden_layers": 24}
    config = tf.ViTConfig(image_size=32, patch_size=8, attn_implementation="eager", **deep)
    processor = tf.ViTImageProcessorPil(size={"height": 32, "width": 32})
    grid = AttentionGrid(tf.ViTModel(config), processor=processor)
    recorder = Recorder(grid)
    clock = iter(np.arange(1, 10_000) * 0.005)
    monkeypatch.setattr(streaming.time, "perf_counter", lambda: float(next(clock)))
    grid.run(PICTURE)
    counts = [content["count"] for content, _ in recorder.messages if content["type"] == "layers"]
    assert sum(counts) == 24
    interval_reads = streaming.STREAM_INTERVAL_S / 0.005  # clock reads between two messages, at least
    assert 1 < len(counts) <= 24 / interval_reads + 2, counts


def test_rerun_on_another_image_reuses_the_widget(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    first = widget.maps
    widget.run(PICTURE[::-1].copy())
    assert widget.run_id == 2 and widget.maps != first


@pytest.mark.parametrize("cache_budget", [256 * 1024**2, 0], ids=["cached", "recomputed"])
def test_a_new_query_recomputes_every_layer(tiny_model_dirs, cache_budget):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE, cache_budget=cache_budget)
    widget.query = [5, 6]
    attentions = reference_attentions(widget)
    expected = torch.stack([layer[0, :, [5, 6]].mean(1) for layer in attentions]).numpy()
    assert_rows_close(decoded_maps(widget), expected[:, :, 1:])
    assert widget.run_id == 2


def test_an_out_of_range_query_keeps_the_state(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    maps = widget.maps
    widget.query = [99]
    assert widget.query == [0] and widget.maps == maps and "out of range" in widget.message


def test_subset_of_layers_and_heads(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE, layers=[3, 1], heads=[2, 4])
    assert widget.layers == [1, 3] and widget.heads == [2, 4]
    attentions = reference_attentions(widget)
    expected = torch.stack([attentions[layer][0, [1, 3], 0] for layer in (0, 2)]).numpy()
    assert_rows_close(decoded_maps(widget), expected[:, :, 1:])
    widget.layers = [2]
    assert decoded_maps(widget).shape == (1, 2, 16)


@pytest.mark.parametrize(
    ("field", "value"), [("layers", [0]), ("layers", [4]), ("heads", [5]), ("heads", [])]
)
def test_invalid_selection_is_refused_and_changes_nothing(tiny_model_dirs, field, value):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    before = widget.get_state()
    with pytest.raises(traitlets.TraitError, match=r"1\.\.|at least one"):
        setattr(widget, field, value)
    assert widget.get_state() == before
    with pytest.raises(traitlets.TraitError):
        AttentionGrid(tiny_model_dirs["vit"], **{field: value})


def test_unreadable_image_keeps_the_previous_grid(tiny_model_dirs, tmp_path):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    before = widget.get_state()
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"not an image")
    with pytest.raises(ValueError, match="cannot read"):
        widget.run(broken)
    with pytest.raises(FileNotFoundError):
        widget.run(tmp_path / "missing.png")
    assert widget.get_state() == before


def test_failing_forward_restores_status_and_removes_hooks(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    layer = widget.vision_model.attention_modules[1]
    handle = layer.register_forward_hook(lambda *args: (_ for _ in ()).throw(RuntimeError("boom")))
    with pytest.raises(RuntimeError, match="boom"):
        widget.run(PICTURE)
    handle.remove()
    assert widget.status == "done" and "boom" in widget.message
    assert widget.run_id == 2  # newer than the failed run's streamed rows, so the old grid shows again
    assert attnwidget_hooks(widget.vision_model.model) == []
    widget.run(PICTURE)
    assert widget.run_id == 3 and widget.status == "done"


@pytest.mark.parametrize("cache_budget", [256 * 1024**2, 0], ids=["cached", "recomputed"])
def test_request_head_replies_with_exact_values(tiny_model_dirs, cache_budget):
    widget = AttentionGrid(tiny_model_dirs["dinov2-registers"], PICTURE, cache_budget=cache_budget)
    recorder = Recorder(widget)
    widget._handle_message(widget, {"type": "request_head", "layer": 2, "head": 3}, [])
    (content, (exact_map, matrix)), *_ = recorder.messages
    attention = reference_attentions(widget)[1][0, 2]
    tokens = widget.token_count
    assert content == {
        "type": "head",
        "layer": 2,
        "head": 3,
        "height": tokens,
        "width": tokens,
        "run_id": 1,
        "query": [0],
    }
    np.testing.assert_allclose(np.frombuffer(exact_map, "<f4"), attention[0, 5:].numpy(), rtol=1e-5)
    np.testing.assert_allclose(
        np.frombuffer(matrix, "<f4").reshape(tokens, tokens), attention.numpy(), rtol=1e-5
    )


def test_bad_request_reports_instead_of_raising(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    widget._handle_message(widget, {"type": "request_head", "layer": 9, "head": 1}, [])
    assert "out of range" in widget.message


def test_siglip_default_query_is_every_patch(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["siglip-vision"], PICTURE)
    assert widget.special_tokens == [] and widget.query == list(range(16))
    assert widget.specials == b""


def test_model_in_memory_with_its_processor(tiny_model_dirs):
    directory = tiny_model_dirs["beit"]
    model = tf.BeitForImageClassification.from_pretrained(directory, attn_implementation="sdpa")
    processor = tf.BeitImageProcessorPil.from_pretrained(directory)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # captured beside its own sdpa attention: no switch to announce
        widget = AttentionGrid(model, PICTURE, processor=processor)
    assert widget.status == "done" and model.config._attn_implementation == "sdpa"
    assert isinstance(widget.vision_model, VisionModel)


def test_state_holds_everything_needed_to_redraw(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["clip-vision"], PICTURE)
    state = widget.get_state()
    for key in ("maps", "maps_range", "specials", "matrices", "matrices_range", "image"):
        assert isinstance(state[key], (bytes, memoryview)) and len(state[key]) > 0
    assert state["image"][:2] == b"\xff\xd8"  # JPEG
    # 60 x 45 -> shortest edge 32 -> 42 x 32 -> centre crop 32: columns 5..37 of 42.
    assert state["image_size"] == [60, 45] and state["crop_box"] == [5 / 42, 0.0, 37 / 42, 1.0]


def test_a_second_run_cancels_the_one_streaming_and_no_layers_mix(tiny_model_dirs):
    import threading
    import time

    widget = AttentionGrid(tiny_model_dirs["vit"])
    recorder = Recorder(widget)
    second_picture = PICTURE[::-1].copy()
    streaming = threading.Event()

    def slow_second_layer(module, args, output):
        if threading.current_thread() is not threading.main_thread():
            streaming.set()
            time.sleep(0.5)  # the first run is mid-stream when the second one is asked for

    handle = widget.vision_model.attention_modules[1].register_forward_hook(slow_second_layer)
    first = threading.Thread(target=widget.run, args=(PICTURE,))
    first.start()
    assert streaming.wait(10)
    widget.run(second_picture)  # waits for the first to stop at its next layer, then runs
    first.join(10)
    handle.remove()

    reference = AttentionGrid(tiny_model_dirs["vit"], second_picture)
    assert not first.is_alive() and widget.status == "done" and widget.message == ""
    assert widget.maps == reference.maps and widget.matrices == reference.matrices
    final_run = [content for content, _ in recorder.messages if content.get("run_id") == widget.run_id]
    assert sum(content["count"] for content in final_run) == 3  # every layer of the second input
    first_run = [content for content, _ in recorder.messages if content.get("run_id") == widget.run_id - 1]
    assert sum(content["count"] for content in first_run) < 3  # the first stopped mid-stream
    assert attnwidget_hooks(widget.vision_model.model) == []


def test_a_closed_widget_refuses_to_run_and_lets_go_of_its_attention(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    picture = widget.to_png()
    widget.close()
    assert widget.comm is None and widget._session.cache is None
    with pytest.raises(RuntimeError, match=r"was closed .* create a new one"):
        widget.run(PICTURE)
    with pytest.raises(RuntimeError, match="was closed"):
        widget.run_many([PICTURE])
    assert widget.to_png() == picture  # what it showed can still be exported
    again = AttentionGrid(widget.vision_model, PICTURE)  # the model is fine for a new widget
    assert again.maps == widget.maps
