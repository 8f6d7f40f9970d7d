"""The contract between kernel and front-end: generated into TypeScript, and kept by the kernel."""

from __future__ import annotations

import importlib.util
import json
import typing
from pathlib import Path

import numpy as np
import pytest

from attnwidget import AttentionGrid, contract
from attnwidget.explain import METHOD_TITLES

ROOT = Path(__file__).resolve().parent.parent
PICTURE = np.random.default_rng(3).integers(0, 256, (40, 52, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def generator():
    path = ROOT / "scripts" / "generate_contract.py"
    spec = importlib.util.spec_from_file_location("generate_contract", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_generated_typescript_is_up_to_date(generator):
    written = (ROOT / "js" / "src" / "contract.ts").read_text()
    assert written == generator.render(), (
        "js/src/contract.ts is stale: run .venv/bin/python scripts/generate_contract.py"
    )


def test_generated_typescript_types_every_synced_trait(generator):
    written = (ROOT / "js" / "src" / "contract.ts").read_text()
    grid_traits = written.split("export interface GridTraits {")[1].split("\n}\n")[0]
    synced = generator.synced_traits(AttentionGrid)
    assert {"maps", "view", "head_dots"} <= set(synced)
    for name in synced:
        assert f"\n  {name}: " in grid_traits, name
    assert "  view: View;" in grid_traits and "  method: Method;" in grid_traits
    assert "  status: Status;" in grid_traits


def test_enumerated_traits_take_the_contract_values():
    traits = AttentionGrid.class_traits()
    for name, values in [
        ("view", contract.VIEWS),
        ("colormap", contract.COLORMAPS),
        ("normalize", contract.NORMALIZE_SCOPES),
        ("interpolation", contract.INTERPOLATIONS),
        ("pooling", contract.POOLINGS),
        ("saved_detail", contract.SAVED_DETAILS),
        ("rollout_fusion", contract.ROLLOUT_FUSIONS),
        ("status", contract.STATUSES),
        ("method", contract.METHODS),
    ]:
        assert tuple(traits[name].values) == values, name
    assert traits["discard_ratio"].max == contract.MAX_DISCARD_RATIO


def test_colormaps_are_the_shipped_tables():
    tables = json.loads((ROOT / "attnwidget" / "colormaps.json").read_text())
    assert tuple(tables) == contract.COLORMAPS


def test_method_groups_name_known_methods():
    assert tuple(METHOD_TITLES) == contract.METHODS
    named = {*contract.GRADIENT_METHODS, *contract.PER_LAYER_METHODS, *contract.ROLLOUT_OPTIONS}
    assert named <= set(contract.METHODS)


def test_data_traits_are_synced_traits_of_the_grid():
    synced = set(AttentionGrid.class_traits(sync=True))
    assert set(contract.DATA_TRAITS) <= synced
    assert len(set(contract.DATA_TRAITS)) == len(contract.DATA_TRAITS)


def message_shape(message_type: type) -> dict[str, type]:
    return {
        name: typing.get_origin(annotation) or annotation
        for name, annotation in typing.get_type_hints(message_type).items()
    }


def assert_has_shape(content: dict, message_type: type) -> None:
    shape = message_shape(message_type)
    assert set(content) == set(shape), (message_type.__name__, sorted(content))
    assert content["type"] == typing.get_args(typing.get_type_hints(message_type)["type"])[0]
    for name, kind in shape.items():
        if kind is not typing.Literal:
            assert isinstance(content[name], kind), (message_type.__name__, name, content[name])
    json.dumps(content)  # what the comm sends


@pytest.fixture
def grid_and_sent(tiny_model_dirs):
    grid = AttentionGrid(tiny_model_dirs["vit"])
    sent: list[dict] = []
    grid.send = lambda content, buffers=None: sent.append(content)
    return grid, sent


def test_every_message_the_kernel_sends_has_its_contract_shape(grid_and_sent):
    grid, sent = grid_and_sent
    grid.run(PICTURE)
    grid._handle_message(grid, contract.HeadRequest(type="request_head", layer=2, head=1), [])
    request = contract.RegionRequest(type="request_region", layer=1, head=2, rows=(0, 3), columns=(1, 5))
    grid._handle_message(grid, json.loads(json.dumps(request)), [])  # as the comm delivers it
    assert grid.message == ""
    shapes = {
        "layers": contract.LayersMessage,
        "head": contract.HeadMessage,
        "region": contract.RegionMessage,
    }
    assert {content["type"] for content in sent} == set(shapes)
    for content in sent:
        assert_has_shape(content, shapes[content["type"]])


def test_architecture_document_names_every_trait_and_message_field(generator):
    document = (ROOT / "docs" / "architecture.md").read_text()
    for name in generator.synced_traits(AttentionGrid):
        assert f"`{name}`" in document, f"docs/architecture.md does not describe the trait {name}"
    messages = document.split("## Custom messages")[1]
    for message_type in (*contract.KERNEL_MESSAGES, *contract.FRONTEND_REQUESTS):
        hints = typing.get_type_hints(message_type)
        kind = typing.get_args(hints["type"])[0]
        line = next(line for line in messages.splitlines() if f'{{"type": "{kind}"' in line)
        fields = line.split(f'{{"type": "{kind}", ', 1)[1].split("}", 1)[0]
        assert {field.strip(' "') for field in fields.split(",")} == set(hints) - {"type"}, kind
