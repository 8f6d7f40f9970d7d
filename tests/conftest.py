from __future__ import annotations

from pathlib import Path

import pytest

from tiny_models import ARCHITECTURES, save_tiny_model


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Directories holding each tiny architecture, saved once per test session."""
    root = tmp_path_factory.mktemp("tiny-models")
    return {name: save_tiny_model(name, root / name) for name in ARCHITECTURES}
