"""Bad input gets an error that says what to do and leaves the widget as it was; nothing leaks.

Fuzzed row buffers (hypothesis), checkpoints of unknown architectures or with their own code,
processors that do not match the model, models that cannot switch to eager attention, odd and
huge pictures, NaN attention, and a soak of widgets created, run and closed in one process.
"""

from __future__ import annotations

import gc
import io
import json
import os
import shutil
import sys
import time
import tracemalloc
import weakref
from pathlib import Path

import numpy as np
import pytest
import torch
import transformers as tf
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from ipywidgets.widgets.widget import _instances as open_widgets
from PIL import Image
from tiny_text_models import byte_level_tokenizer

import attnwidget.models
from attnwidget import AttentionGrid, VisionModel, load_image
from attnwidget.encode import decode_rows, encode_rows
from attnwidget.geometry import input_geometry
from attnwidget.models import UnsupportedModelError
from attnwidget.strip import Heatmap, StripWidget, Variant, comparison_strip
from attnwidget.text import TextModel
from attnwidget.transformers_support import load_config

from tiny_models import attnwidget_hooks

#: Examples hypothesis tries per property of the row decoder (docs/reliability.md quotes it).
FUZZ_EXAMPLES = 2000
#: Widgets of each kind created, run and closed by the soak test.
SOAK_WIDGETS = 50
#: Largest growth allowed between widget 10 and widget 50 of the soak: Python allocations
#: (tracemalloc) and the resident set (RSS, which also counts tensors and Pillow buffers).
SOAK_TRACED_GROWTH = 256 * 1024
SOAK_RSS_GROWTH = 8 * 1024**2

PICTURE = np.random.default_rng(1).integers(0, 256, (45, 60, 3), dtype=np.uint8)
OTHER_PICTURE = PICTURE[::-1].copy()

fuzz = settings(
    max_examples=FUZZ_EXAMPLES,
    deadline=None,
    database=None,  # nothing written to the working tree
    derandomize=True,  # the same inputs on every run, so a failure reproduces
    suppress_health_check=[HealthCheck.too_slow],
)


def changed_traits(before: dict, after: dict) -> set[str]:
    return {name for name in before if before[name] != after[name]}


# -- the row decoder, fuzzed -------------------------------------------------------------------

BAD_COLUMNS = st.one_of(
    st.integers(max_value=-1),
    st.booleans(),
    st.floats(),
    st.none(),
    st.text(max_size=3),
    st.just([4]),
)
FLOAT32 = st.floats(width=32)  # NaN, infinities and subnormals included


@st.composite
def row_buffers(draw: st.DrawFn) -> tuple[bytes, bytes, object]:
    """(data, ranges, columns): random bytes, or buffers shaped like `encode_rows`' with any float32
    ranges (ordered or not, finite or not), cut, padded, or with a wrong column count."""
    if draw(st.booleans()):
        columns = draw(st.one_of(st.integers(-2, 24), st.integers(2**31, 2**40), BAD_COLUMNS))
        return draw(st.binary(max_size=96)), draw(st.binary(max_size=72)), columns
    rows, columns = draw(st.integers(0, 6)), draw(st.integers(1, 12))
    data = draw(st.binary(min_size=rows * columns, max_size=rows * columns))
    pairs = draw(st.lists(st.tuples(FLOAT32, FLOAT32), min_size=rows, max_size=rows))
    if draw(st.booleans()):  # mostly valid ranges, so that many buffers decode
        pairs = [tuple(sorted(pair)) for pair in pairs]
    ranges = np.array(pairs, dtype="<f4").reshape(-1, 2).tobytes()
    damage = draw(st.sampled_from(["none", "none", "cut data", "cut ranges", "pad data", "pad ranges"]))
    if damage == "cut data" and data:
        data = data[: draw(st.integers(0, len(data) - 1))]
    elif damage == "cut ranges" and ranges:
        ranges = ranges[: draw(st.integers(0, len(ranges) - 1))]
    elif damage == "pad data":
        data += draw(st.binary(min_size=1, max_size=13))
    elif damage == "pad ranges":
        ranges += draw(st.binary(min_size=1, max_size=17))
    if draw(st.integers(0, 9)) == 0:
        columns = draw(st.one_of(st.integers(-1, 2 * columns + 1), BAD_COLUMNS))
    return data, ranges, columns


def made_by_encode_rows(data: bytes, ranges: bytes, columns: object) -> bool:
    """Whether `encode_rows` can have made the buffers: whole rows, one finite (lo <= hi) range each."""
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 0:
        return False
    if not data and not ranges:
        return True
    if columns == 0 or len(data) % columns or len(ranges) != 8 * (len(data) // columns):
        return False
    low_high = np.frombuffer(ranges, dtype="<f4").reshape(-1, 2)
    with np.errstate(over="ignore", invalid="ignore"):
        span = low_high[:, 1] - low_high[:, 0]  # float32, as the front-end computes it
    return bool(np.isfinite(low_high).all() and np.isfinite(span).all() and (span >= 0).all())


#: Found by this test: at float32's smallest magnitudes lo + span rounded past hi.
SUBNORMAL_RANGE = (b"\x00" * 7 + b"\xff" + b"\x00" * 8, b"\x00\x00\x00\x85\x00\x03" + b"\x00" * 10, 8)


@fuzz
@given(row_buffers())
@example(SUBNORMAL_RANGE)
def test_any_buffer_decodes_to_bounded_rows_or_raises_value_error(buffers):
    """Whatever arrives (a corrupt message, a hand-edited notebook), the decoder returns rows of the
    promised shape with every value inside its row's [lo, hi], or raises ValueError: exactly for the
    buffers `encode_rows` cannot have made, and never another exception."""
    data, ranges, columns = buffers
    try:
        decoded = decode_rows(data, ranges, columns)
    except ValueError:
        assert not made_by_encode_rows(data, ranges, columns)
        return
    assert made_by_encode_rows(data, ranges, columns)
    rows = len(data) // columns if columns else 0
    assert decoded.dtype == np.float32 and decoded.shape == (rows, columns)
    low_high = np.frombuffer(ranges, dtype="<f4").reshape(-1, 2)
    assert np.isfinite(decoded).all()
    assert (decoded >= low_high[:, :1]).all() and (decoded <= low_high[:, 1:]).all()


ROW_SHAPES = st.tuples(st.integers(1, 4), st.integers(1, 8))  # rows, columns
FINITE_ROWS = arrays(
    np.float32,
    ROW_SHAPES,
    elements=st.floats(-(2.0**123), 2.0**123, width=32),  # spans stay finite: encode_rows takes them all
)


@fuzz
@given(FINITE_ROWS)
def test_every_truncation_of_an_encoded_payload_is_rejected(values):
    """A message cut short (either buffer, at any byte, the other whole) never decodes as rows."""
    data, ranges = encode_rows(torch.from_numpy(values))
    columns = values.shape[1]
    assert decode_rows(data, ranges, columns).shape == values.shape  # the whole payload decodes
    for cut in range(len(data)):
        with pytest.raises(ValueError):
            decode_rows(data[:cut], ranges, columns)
    for cut in range(len(ranges)):
        with pytest.raises(ValueError):
            decode_rows(data, ranges[:cut], columns)


def float32_spacing(values: np.ndarray) -> np.ndarray:
    """The gap between `values` and the next float32 (2**-149 at least), in float64."""
    exponent = np.frexp(values.astype(np.float64))[1]
    return np.maximum(np.ldexp(1.0, exponent - 24), 2.0**-149)


@fuzz
@given(
    arrays(
        np.float32,
        ROW_SHAPES,
        elements=st.floats(width=32, allow_nan=False, allow_infinity=False),
    )
)
@example(np.array([[0, 8.5e-44]], dtype=np.float32))  # found by this test: a subnormal span quantised to 0
def test_finite_rows_round_trip_within_half_a_quantisation_step(values):
    """Any finite rows, subnormal and huge values included, decode within half a step of 1/255 of
    their row's span (plus float32 rounding); rows whose span overflows float32 are refused."""
    low, high = values.min(1, keepdims=True), values.max(1, keepdims=True)
    with np.errstate(over="ignore"):
        span = high - low
    if not np.isfinite(span).all():
        with pytest.raises(ValueError, match="spans more than float32"):
            encode_rows(torch.from_numpy(values))
        return
    data, ranges = encode_rows(torch.from_numpy(values))
    decoded = decode_rows(data, ranges, values.shape[1]).astype(np.float64)
    step = (high.astype(np.float64) - low.astype(np.float64)) / 255
    rounding = 4 * float32_spacing(np.maximum(np.abs(low), np.abs(high)))
    error = np.abs(decoded - values.astype(np.float64))
    assert (error <= step * (0.5 + 1e-4) + rounding).all(), (error / np.maximum(step, 1e-300)).max()
    np.testing.assert_array_equal(np.frombuffer(ranges, dtype="<f4").reshape(-1, 2), np.hstack([low, high]))


# -- checkpoints: unknown architectures and their own code -------------------------------------

MARKER_CODE = """\
import os
open(os.environ["ATTNWIDGET_TEST_MARKER"], "w").write("checkpoint code ran")
from transformers import PretrainedConfig


class OwnConfig(PretrainedConfig):
    model_type = "own-architecture"
"""
OWN_CODE_MAP = {
    "AutoConfig": "own_code.OwnConfig",
    "AutoModel": "own_code.OwnModel",
    "AutoModelForImageClassification": "own_code.OwnModel",
    "AutoModelForCausalLM": "own_code.OwnModel",
    "AutoImageProcessor": "own_code.OwnProcessor",
    "AutoTokenizer": ["own_code.OwnTokenizer", None],
}
LOADERS = {
    "load_config": load_config,
    "VisionModel.from_pretrained": VisionModel.from_pretrained,
    "TextModel.from_pretrained": TextModel.from_pretrained,
    "AttentionGrid": AttentionGrid,
}


def with_own_code(directory: Path, marker: Path, monkeypatch: pytest.MonkeyPatch, model_type: str) -> Path:
    """Give the checkpoint in `directory` code of its own, which writes `marker` when imported, and
    `auto_map` entries that point to it in every config file; its config names `model_type`."""
    monkeypatch.setenv("ATTNWIDGET_TEST_MARKER", str(marker))
    (directory / "own_code.py").write_text(MARKER_CODE)
    for name in ("config.json", "preprocessor_config.json", "tokenizer_config.json"):
        path = directory / name
        if path.exists() or name == "config.json":
            config = json.loads(path.read_text()) if path.exists() else {}
            config["auto_map"] = OWN_CODE_MAP
            if name == "config.json":
                config["model_type"] = model_type
            path.write_text(json.dumps(config))
    return directory


@pytest.fixture
def unknown_checkpoint(tiny_model_dirs, tmp_path) -> Path:
    directory = tmp_path / "unknown"
    shutil.copytree(tiny_model_dirs["vit"], directory)
    config = json.loads((directory / "config.json").read_text())
    (directory / "config.json").write_text(json.dumps({**config, "model_type": "vit-from-2031"}))
    return directory


@pytest.mark.parametrize("loader", LOADERS.values(), ids=LOADERS.keys())
def test_an_unknown_architecture_says_to_upgrade_transformers(unknown_checkpoint, loader):
    with pytest.raises(UnsupportedModelError, match=r"'vit-from-2031'.*upgrade transformers"):
        loader(unknown_checkpoint)


@pytest.mark.parametrize("loader", LOADERS.values(), ids=LOADERS.keys())
def test_checkpoint_code_is_refused_and_never_imported(tmp_path, monkeypatch, loader):
    """No prompt (which would hang a notebook) and no import: the marker file is never written."""
    marker = tmp_path / "marker"
    directory = tmp_path / "own"
    directory.mkdir()
    with_own_code(directory, marker, monkeypatch, "own-architecture")
    modules = set(sys.modules)
    with pytest.raises(UnsupportedModelError, match=r"own_code\.OwnConfig.*trust_remote_code=True"):
        loader(directory)
    assert not marker.exists()
    assert not [name for name in set(sys.modules) - modules if "own_code" in name]


def test_the_marker_shows_checkpoint_code_that_runs(tmp_path, monkeypatch):
    """The control for the test above: with trust_remote_code=True the code runs and writes it."""
    import transformers.dynamic_module_utils as dynamic_modules

    marker = tmp_path / "marker"
    directory = tmp_path / "own"
    directory.mkdir()
    with_own_code(directory, marker, monkeypatch, "own-architecture")
    monkeypatch.setattr(dynamic_modules, "HF_MODULES_CACHE", str(tmp_path / "modules"))
    monkeypatch.setattr(sys, "path", list(sys.path))
    modules = set(sys.modules)
    try:
        config = load_config(directory, trust_remote_code=True)
    finally:
        for name in set(sys.modules) - modules:
            if name.startswith("transformers_modules"):
                del sys.modules[name]
    assert type(config).__name__ == "OwnConfig" and marker.exists()


def test_checkpoint_code_beside_a_known_architecture_is_not_run(tiny_model_dirs, tmp_path, monkeypatch):
    """A checkpoint of a known architecture that also ships code loads with transformers' own classes."""
    marker = tmp_path / "marker"
    vision_dir = with_own_code(
        Path(shutil.copytree(tiny_model_dirs["vit"], tmp_path / "vit")), marker, monkeypatch, "vit"
    )
    vision = VisionModel.from_pretrained(vision_dir)
    assert type(vision.model) is tf.ViTForImageClassification
    assert AttentionGrid(vision, PICTURE).status == "done"

    tokenizer = byte_level_tokenizer()
    config = tf.GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=32)
    tf.GPT2LMHeadModel(config).save_pretrained(tmp_path / "gpt2")
    tokenizer.save_pretrained(tmp_path / "gpt2")
    text = TextModel.from_pretrained(with_own_code(tmp_path / "gpt2", marker, monkeypatch, "gpt2"))
    assert type(text.model) is tf.GPT2LMHeadModel
    assert AttentionGrid(text, "The cat sat on the mat.").status == "done"
    assert not marker.exists()


# -- processors and models that do not fit ------------------------------------------------------


class NoPixels:
    """A callable "processor" that makes no pixel values (an audio feature extractor, say)."""

    def __call__(self, **inputs):
        return {"input_features": torch.zeros(1, 80, 3000)}


@pytest.mark.parametrize(
    ("wrong", "error", "message"),
    [
        (
            lambda: tf.ViTImageProcessorPil(size={"height": 64, "width": 64}),
            ValueError,
            r"processor does not match .*3 x 64 x 64 inputs, the model takes 3 x 32 x 32.*AutoImageProcessor",
        ),
        (NoPixels, TypeError, r"made no pixel_values.*AutoImageProcessor"),
    ],
    ids=["other-size", "no-pixel-values"],
)
def test_a_processor_that_does_not_match_is_named_and_the_grid_keeps_its_state(
    tiny_model_dirs, wrong, error, message
):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    vision = widget.vision_model
    right, before = vision.processor, widget.get_state()
    vision.processor = wrong()
    with pytest.raises(error, match=message):
        widget.run(OTHER_PICTURE)
    assert changed_traits(before, widget.get_state()) <= {"run_id", "message"}
    assert widget.status == "done" and not attnwidget_hooks(vision.model)

    vision.processor = right  # the kernel and the model are fine: the next run works
    widget.run(OTHER_PICTURE)
    reference = AttentionGrid(tiny_model_dirs["vit"], OTHER_PICTURE)
    assert widget.status == "done" and widget.message == "" and widget.maps == reference.maps


def test_a_processor_of_another_size_fails_a_new_grid_with_an_error_status(tiny_model_dirs):
    model = tf.ViTForImageClassification.from_pretrained(tiny_model_dirs["vit"], attn_implementation="eager")
    widget = AttentionGrid(model, processor=tf.ViTImageProcessorPil(size={"height": 48, "width": 48}))
    with pytest.raises(ValueError, match="processor does not match"):
        widget.run(PICTURE)
    assert widget.status == "error" and widget.maps == b"" and widget.layers_done == 0
    assert "processor does not match" in widget.message and not attnwidget_hooks(model)
    good = AttentionGrid(
        model, PICTURE, processor=tf.ViTImageProcessorPil.from_pretrained(tiny_model_dirs["vit"])
    )
    assert good.status == "done"


def test_a_tokenizer_as_processor_is_refused_and_other_grids_keep_working(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    before = widget.get_state()
    with pytest.raises(TypeError, match=r"AutoImageProcessor.*not a \w+ \(a tokenizer, which reads text\)"):
        AttentionGrid(widget.vision_model.model, processor=byte_level_tokenizer())
    assert widget.get_state() == before
    widget.run(OTHER_PICTURE)
    assert widget.status == "done" and widget.run_id == 2


def test_a_text_model_in_the_vision_grid_points_to_text_model():
    tokenizer = byte_level_tokenizer()
    config = tf.GPT2Config(vocab_size=len(tokenizer), n_embd=16, n_layer=2, n_head=2, n_positions=32)
    with pytest.raises(
        UnsupportedModelError, match=r"not a vision transformer.*TextModel\(model, tokenizer\)"
    ):
        AttentionGrid(tf.GPT2LMHeadModel(config), processor=tokenizer)


def half_way_switch(model: torch.nn.Module):
    """`set_attn_implementation` that sets the top config to the new implementation, then fails (as
    transformers does when a sub-model refuses it); switching back works."""
    real = model.set_attn_implementation

    def switch(implementation):
        if implementation == "eager":
            model.config._attn_implementation_internal = "eager"
            raise ValueError("the vision tower does not support eager attention")
        return real(implementation)

    return switch


def refusing_switch(model: torch.nn.Module):
    real = model.set_attn_implementation

    def switch(implementation):
        if implementation == "eager":
            raise ValueError("eager attention is not supported")
        return real(implementation)

    return switch


@pytest.mark.parametrize("switch", [refusing_switch, half_way_switch], ids=["refused", "half-way"])
def test_a_model_that_cannot_switch_to_eager_points_to_grad_cam(tiny_model_dirs, monkeypatch, switch):
    model = tf.ViTForImageClassification.from_pretrained(tiny_model_dirs["vit"], attn_implementation="sdpa")
    monkeypatch.setattr(model, "set_attn_implementation", switch(model))
    processor = tf.ViTImageProcessorPil.from_pretrained(tiny_model_dirs["vit"])
    with pytest.raises(UnsupportedModelError, match=r"cannot switch to 'eager'.*Grad-CAM"):
        AttentionGrid(model, processor=processor)  # refused before any run, with the reason
    implementations = {
        module.config._attn_implementation for module in model.modules() if hasattr(module, "config")
    }
    assert implementations == {"sdpa"}  # as it was: the model still works for everything else
    assert not attnwidget_hooks(model)
    model(pixel_values=torch.zeros(1, 3, 32, 32))


# -- pictures -----------------------------------------------------------------------------------

GREY = np.random.default_rng(2).integers(0, 256, (20, 30), dtype=np.uint8)
ALPHA = np.random.default_rng(3).integers(0, 256, (20, 30), dtype=np.uint8)


def stretched(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.float64)
    return ((values - values.min()) / (values.max() - values.min()) * 255).round().astype(np.uint8)


def premultiplied_grey() -> tuple[Image.Image, np.ndarray]:
    picture = Image.merge("LA", (Image.fromarray(GREY), Image.fromarray(ALPHA))).convert("La")
    assert picture.mode == "La"
    on_white = GREY * (ALPHA / 255) + 255 * (1 - ALPHA / 255)
    return picture, on_white


def sixteen_bit_big_endian() -> tuple[Image.Image, np.ndarray]:
    values = (np.arange(600, dtype=np.uint32).reshape(20, 30) * 97 % 65536).astype(">u2")
    picture = Image.frombytes("I;16B", (30, 20), values.tobytes())
    assert picture.mode == "I;16B"
    return picture, stretched(values)


def thirty_two_bit(mode: str) -> tuple[Image.Image, np.ndarray]:
    dtype = np.int32 if mode == "I" else np.float32
    values = (np.arange(600).reshape(20, 30) * 7919 % 1000 - 300).astype(dtype) * (3 if mode == "I" else 0.01)
    picture = Image.fromarray(values)
    assert picture.mode == mode
    return picture, stretched(values)


@pytest.mark.parametrize(
    "make",
    [premultiplied_grey, sixteen_bit_big_endian, lambda: thirty_two_bit("I"), lambda: thirty_two_bit("F")],
    ids=["La", "I;16B", "I", "F"],
)
def test_grey_modes_become_rgb_with_their_values(make):
    picture, expected = make()
    rgb = np.asarray(load_image(picture)).astype(int)
    assert rgb.shape == (20, 30, 3)
    assert (rgb == rgb[:, :, :1]).all()  # grey
    assert np.abs(rgb[:, :, 0] - expected).max() <= 2  # 16- and 32-bit values stretched to 0..255


def test_a_one_pixel_picture_runs(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"], np.full((1, 1, 3), 200, dtype=np.uint8))
    assert widget.status == "done" and widget.image_size == [1, 1] and widget.crop_box == [0, 0, 1, 1]
    maps = decode_rows(widget.maps, widget.maps_range, 16)
    assert maps.shape == (12, 16) and np.isfinite(maps).all()


def structured_picture(width: int, height: int) -> np.ndarray:
    """Horizontal and vertical ramps and a diagonal edge: a picture shifted or stretched looks different."""
    pixels = np.empty((height, width, 3), dtype=np.uint8)
    pixels[:, :, 0] = (np.arange(width) * 255 // (width - 1)).astype(np.uint8)[None, :]
    pixels[:, :, 1] = (np.arange(height) * 255 // (height - 1)).astype(np.uint8)[:, None]
    pixels[:, :, 2] = 220
    for row in range(height):  # row by row: a 10000 x 10000 mask would take 800 MB
        pixels[row, : width - row * width // height, 2] = 40
    return pixels


def unshrunk(vision: VisionModel, picture: Image.Image, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as patch:
        patch.setattr(attnwidget.models, "SHRINK_ABOVE_PIXELS", 10**18)
        return vision.prepare(picture)


def assert_same_input(shrunk: torch.Tensor, direct: torch.Tensor, processor) -> None:
    """Within two grey levels on average and eight anywhere (the edge resamples differently)."""
    level = 2 / 255 / np.min(processor.image_std)
    difference = (shrunk - direct).abs()
    assert shrunk.shape == direct.shape
    assert difference.mean() <= 2 * level and difference.max() <= 8 * level


class Spy:
    """The processor, recording the size of each picture it is given."""

    def __init__(self, processor):
        self.processor, self.sizes = processor, []

    def __getattr__(self, name: str):
        return getattr(self.processor, name)

    def __call__(self, images: Image.Image | list[Image.Image], **kwargs):
        if not isinstance(images, list):  # lists: the pictures that measure the geometry
            self.sizes.append(images.size)
        return self.processor(images=images, **kwargs)


@pytest.mark.parametrize("name", ["vit", "clip-vision", "deit-distilled"])
def test_shrinking_a_large_picture_keeps_the_geometry(tiny_model_dirs, monkeypatch, name):
    """Processors that resize to a fixed size, or the shortest edge then crop: the shrunk picture gives
    the same input, from the same region, as the processor given the whole picture."""
    vision = VisionModel.from_pretrained(tiny_model_dirs[name])
    processor = vision.processor
    vision.processor = spy = Spy(processor)
    picture = Image.fromarray(structured_picture(900, 500))
    monkeypatch.setattr(attnwidget.models, "SHRINK_ABOVE_PIXELS", 100 * 100)
    pixel_values, geometry = vision.prepare(picture)
    direct, direct_geometry = unshrunk(vision, picture, monkeypatch)
    shrunk_size = spy.sizes[0]
    assert shrunk_size[0] < 900 and spy.sizes[1] == (900, 500)  # the processor got the shrunk picture
    assert geometry == direct_geometry == input_geometry(processor, (900, 500))
    assert input_geometry(processor, shrunk_size).crop_box == pytest.approx(geometry.crop_box, abs=1e-9)
    assert_same_input(pixel_values, direct, processor)


def test_a_ten_thousand_pixel_square_picture_runs_in_seconds(tiny_model_dirs, monkeypatch):
    widget = AttentionGrid(tiny_model_dirs["vit"])
    vision = widget.vision_model
    picture = Image.fromarray(structured_picture(10_000, 10_000))
    start = time.perf_counter()
    widget.run(picture)
    seconds = time.perf_counter() - start
    print(f"\n10000 x 10000 picture through the grid: {seconds:.2f} s")
    assert seconds < 10
    assert widget.status == "done" and widget.image_size == [10_000, 10_000] and widget.input_size == [32, 32]
    with Image.open(io.BytesIO(widget.image)) as shown:
        assert shown.size == (768, 768)  # the picture in the state is a small JPEG
    shrunk, geometry = vision.prepare(picture)
    direct, direct_geometry = unshrunk(vision, picture, monkeypatch)
    assert geometry == direct_geometry and list(geometry.crop_box) == widget.crop_box
    assert_same_input(shrunk, direct, vision.processor)


def test_a_decompression_bomb_names_the_limit_and_keeps_the_grid(tiny_model_dirs, tmp_path, monkeypatch):
    path = tmp_path / "large.png"
    Image.fromarray(structured_picture(200, 100)).save(path)
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    before = widget.get_state()
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)  # 20000 pixels: over twice the limit
    with pytest.raises(ValueError, match=r"large\.png is larger than Pillow opens.*MAX_IMAGE_PIXELS = None"):
        widget.run(path)
    assert widget.get_state() == before
    monkeypatch.undo()
    widget.run(path)
    assert widget.status == "done" and widget.image_size == [200, 100]


# -- NaN attention ------------------------------------------------------------------------------


def nan_weights(vision: VisionModel):
    """Corrupt the second layer's query weights: its softmax is NaN, the natural way."""
    weight = vision.attention_modules[1].q_proj.weight
    saved = weight.detach().clone()
    with torch.no_grad():
        weight.fill_(float("nan"))

    def undo() -> None:
        with torch.no_grad():
            weight.copy_(saved)

    return undo


def infinite_weights(vision: VisionModel):
    """Hand the capture an infinite weight in the second layer (the model's output is unchanged)."""

    def poison(module, args, output):
        weights = output[1].clone()
        weights[0, 0, 0, 0] = float("inf")
        return (output[0], weights, *output[2:])

    return vision.attention_modules[1].register_forward_hook(poison).remove


@pytest.mark.parametrize("corrupt", [nan_weights, infinite_weights], ids=["nan", "inf"])
def test_non_finite_attention_is_refused_and_the_previous_grid_kept(tiny_model_dirs, corrupt):
    widget = AttentionGrid(tiny_model_dirs["vit"], PICTURE)
    statuses: list[str] = []
    widget.observe(lambda change: statuses.append(change["new"]), "status")
    before = widget.get_state()
    undo = corrupt(widget.vision_model)
    with pytest.raises(ValueError, match="NaN or infinite"):
        widget.run(OTHER_PICTURE)
    assert statuses == ["running", "done"] and "NaN or infinite" in widget.message
    assert changed_traits(before, widget.get_state()) == {"run_id", "message"}
    assert widget.to_png()  # the kept grid still exports
    undo()
    assert attnwidget_hooks(widget.vision_model.model) == []
    widget.run(OTHER_PICTURE)
    assert widget.status == "done" and widget.message == ""


def test_non_finite_attention_in_a_new_grid_ends_in_an_error_status(tiny_model_dirs):
    widget = AttentionGrid(tiny_model_dirs["vit"])
    nan_weights(widget.vision_model)
    with pytest.raises(ValueError, match="NaN or infinite"):
        widget.run(PICTURE)
    assert widget.status == "error" and widget.layers_done == 0 and widget.maps == b""


# -- soak ---------------------------------------------------------------------------------------


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def soak(make, count: int = SOAK_WIDGETS) -> dict[str, float]:
    """Create `count` widgets with `make(i)` (which returns the widget and weak references to what it
    holds), close each; every one must be freed. Returns memory at widget 10 and at the last."""
    references: list[weakref.ref] = []
    figures: dict[str, float] = {}
    tracemalloc.start()
    try:
        for number in range(1, count + 1):
            widget, held = make(number)
            references += [weakref.ref(widget), *held]
            widget.close()
            del widget, held
            if number in (10, count):
                gc.collect()
                figures[f"rss_{number}"] = resident_bytes()
                figures[f"traced_{number}"] = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    gc.collect()
    alive = [reference() for reference in references if reference() is not None]
    assert not alive, f"{len(alive)} objects outlived close(): {[type(obj).__name__ for obj in alive[:5]]}"
    return figures


def report(kind: str, figures: dict[str, float], count: int = SOAK_WIDGETS) -> None:
    rss = figures[f"rss_{count}"] - figures["rss_10"]
    traced = figures[f"traced_{count}"] - figures["traced_10"]
    print(
        f"\nsoak: {count} {kind} created, run and closed; between widget 10 and {count}: "
        f"RSS {figures['rss_10'] / 2**20:.1f} -> {figures[f'rss_{count}'] / 2**20:.1f} MiB "
        f"({rss / 1024:+.0f} KiB), "
        f"Python allocations (tracemalloc) {figures['traced_10'] / 1024:.0f} -> "
        f"{figures[f'traced_{count}'] / 1024:.0f} KiB ({traced / 1024:+.0f} KiB); every widget freed"
    )
    assert rss < SOAK_RSS_GROWTH and traced < SOAK_TRACED_GROWTH


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS read from /proc (Linux)")
def test_fifty_grids_created_run_and_closed_free_everything(tiny_model_dirs):
    vision = VisionModel.from_pretrained(tiny_model_dirs["vit"])
    widgets_before = len(open_widgets)

    def make(number: int):
        widget = AttentionGrid(vision, PICTURE if number % 2 else OTHER_PICTURE)
        widget._handle_message(widget, {"type": "request_head", "layer": 2, "head": 3}, [])
        assert widget.status == "done" and widget._session.cache is not None
        held = [weakref.ref(tensor) for tensor in widget._session.cache]
        return widget, [*held, weakref.ref(widget._session.input.model_input)]

    figures = soak(make)
    assert attnwidget_hooks(vision.model) == []
    assert not [module for module in vision.model.modules() if module._forward_pre_hooks]
    assert len(open_widgets) == widgets_before  # no Layout (or other child widget) left open
    report("AttentionGrids", figures)


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="RSS read from /proc (Linux)")
def test_fifty_strip_widgets_created_and_closed_free_everything():
    def explain_picture(picture: Image.Image, target: str | None) -> Heatmap:
        return Heatmap(np.eye(4), "cat", (0.0, 0.0, 1.0, 1.0))

    variants = [Variant(tag, explain_picture, ("cat", "dog")) for tag in ("8", "16")]
    widgets_before = len(open_widgets)

    def make(number: int):
        strip = comparison_strip(Image.fromarray(PICTURE), variants, "cat")
        widget = strip.widget(panel_height=60, full_size=90)
        assert isinstance(widget, StripWidget) and len(widget.panels) == 3
        return widget, [weakref.ref(strip)]

    figures = soak(make)
    assert len(open_widgets) == widgets_before
    report("StripWidgets", figures)
