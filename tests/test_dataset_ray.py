"""Head statistics on Ray Data equal the one-process statistics on the same pictures: on a local
two-CPU cluster started here, from a list and from a Ray dataset, with a statistic of one's own; a
replica that dies runs its batch again, a batch that fails twice is named; bad calls say why."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import attnwidget
from attnwidget import head_statistics_over
from attnwidget.scenes import SceneDataset

ray = pytest.importorskip("ray", reason="the Ray engine is tested where the test extras are installed")


@pytest.fixture(scope="module")
def cluster():
    # The statistic and the dataset class below travel by value, as those defined in a notebook do.
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def model():
    return attnwidget.default_model()


@pytest.fixture(scope="module")
def scenes():
    return [scene.image for scene in SceneDataset(0, 8)]


def top_patch_mass(attention: torch.Tensor, layout) -> torch.Tensor:
    """A statistic of one's own: the largest attention any patch receives, per picture and head."""
    return attention[..., layout.special_count :].amax(dim=(-2, -1))


def assert_same_statistics(one, other, rtol: float = 1e-9) -> None:
    """Same pictures, same columns, same values: to float64 rounding where the batches were the same,
    to float32 rounding where Ray cut them otherwise (a batch of 3 runs other kernels than one of 4)."""
    assert one.attrs["pictures"] == other.attrs["pictures"]
    assert list(one.columns) == list(other.columns)
    np.testing.assert_allclose(one.to_numpy(dtype=float), other.to_numpy(dtype=float), rtol=rtol, atol=1e-7)


def test_ray_counts_what_one_process_counts(cluster, model, scenes, tmp_path):
    pictures = [*scenes[:4], tmp_path / "missing.png", *scenes[4:]]
    mine = {"top_patch_mass": top_patch_mass}
    local = head_statistics_over(model, pictures, batch_size=3, statistics=mine, progress=False)
    remote = head_statistics_over(
        model, pictures, batch_size=3, statistics=mine, progress=False, engine="ray", replicas=2
    )
    assert_same_statistics(local, remote)
    assert remote.attrs["pictures"] == 8 and remote.attrs["failed"] == []
    assert [name for name, _ in remote.attrs["skipped"]] == [str(tmp_path / "missing.png")]
    assert "top_patch_mass" in remote and "high_norm_mass" in remote


def test_a_ray_dataset_goes_in_as_it_is(cluster, model, scenes):
    rows = [{"image": np.asarray(picture), "path": f"scene-{i}.png"} for i, picture in enumerate(scenes)]
    rows.insert(2, {"image": np.zeros((0, 0, 3), np.uint8), "path": "empty.png"})
    remote = head_statistics_over(model, ray.data.from_items(rows), batch_size=4, progress=False)
    local = head_statistics_over(model, scenes, batch_size=4, progress=False)
    assert_same_statistics(local, remote, rtol=1e-5)
    assert [name for name, _ in remote.attrs["skipped"]] == ["empty.png"]


class DiesOn(list):
    """Pictures whose item `index` kills the process reading it: once (`once` names a file that marks
    it done) or every time."""

    def __init__(self, pictures, index: int, once: Path | None = None):
        super().__init__(pictures)
        self.index, self.once = index, once

    def __getitem__(self, index):
        if index == self.index and (self.once is None or not self.once.exists()):
            if self.once is not None:
                self.once.touch()
            os._exit(1)  # the replica dies, as one killed for memory would
        return super().__getitem__(index)


def test_a_replica_that_dies_runs_its_batch_again_and_one_that_dies_twice_is_named(
    cluster, model, scenes, tmp_path
):
    local = head_statistics_over(model, scenes, batch_size=2, progress=False)
    once = DiesOn(scenes, 3, once=tmp_path / "died")
    again = head_statistics_over(model, once, batch_size=2, progress=False, engine="ray", replicas=2)
    assert (tmp_path / "died").exists()
    assert_same_statistics(local, again)

    always = DiesOn(scenes, 3)
    partial = head_statistics_over(model, always, batch_size=2, progress=False, engine="ray", replicas=2)
    failed = [name for name, _ in partial.attrs["failed"]]
    assert "item 3" in failed and len(failed) + partial.attrs["pictures"] == len(scenes)
    assert all("failed twice" in why for _, why in partial.attrs["failed"])


def test_bad_calls_say_why(cluster, model, scenes):
    def wrong_shape(attention, layout):
        return attention.mean()

    with pytest.raises(ValueError, match="statistic 'wrong_shape' returned Tensor"):
        head_statistics_over(
            model,
            scenes[:2],
            statistics={"wrong_shape": wrong_shape},
            progress=False,
            engine="ray",
            replicas=1,
        )
    with pytest.raises(TypeError, match="reads pictures by index"):
        head_statistics_over(model, iter(scenes), progress=False, engine="ray")
    with pytest.raises(ValueError, match='engine must be "local" or "ray"'):
        head_statistics_over(model, scenes, progress=False, engine="dask")
