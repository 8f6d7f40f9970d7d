"""Head statistics on a Ray cluster started apart, as a user's cluster is: a head node and a second
node (two raylets on this machine, one CPU each, started with `ray start`, with the token
authentication Ray turns on by default), joined by address from a driver process of its own. One
replica runs on each node, the model travels between their object stores, and the result equals
the one-process result."""

from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from test_dataset_ray import assert_same_statistics, top_patch_mass

import attnwidget
from attnwidget import head_statistics_over
from attnwidget.scenes import SceneDataset

ray = pytest.importorskip("ray", reason="the Ray engine is tested where the test extras are installed")
RAY = str(Path(sys.executable).with_name("ray"))
#: Ray's own settings for every process of the cluster and for the driver.
CLUSTER_ENVIRONMENT = {**os.environ, "RAY_AUTH_MODE": "token"}


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run(*command: str) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=CLUSTER_ENVIRONMENT)
    assert done.returncode == 0, f"{' '.join(command)}:\n{done.stdout}\n{done.stderr}"


@pytest.fixture(scope="module")
def two_nodes():
    """The address of a head node and a second node, each with one CPU; stopped after."""
    port = free_port()
    try:
        run(RAY, "start", "--head", f"--port={port}", "--num-cpus=1", "--include-dashboard=false")
        run(RAY, "start", f"--address=127.0.0.1:{port}", "--num-cpus=1")
        yield f"127.0.0.1:{port}"
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=120, env=CLUSTER_ENVIRONMENT)


def count(**engine):
    """The statistics of eight scenes, with a statistic of one's own, on `engine`."""
    scenes = [scene.image for scene in SceneDataset(0, 8)]
    mine = {"top_patch_mass": top_patch_mass}
    return head_statistics_over(
        attnwidget.default_model(), scenes, batch_size=2, statistics=mine, progress=False, **engine
    )


def count_on_cluster(address: str, out: Path) -> None:
    """The driver: joins the cluster at `address` and saves the statistics frame to `out`."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[top_patch_mass.__module__])  # as a notebook's
    ray.init(address=address, log_to_driver=False)
    try:
        nodes = [node for node in ray.nodes() if node["Alive"]]
        # Each node has one CPU and each replica takes one: the two replicas run on different nodes.
        assert [node["Resources"]["CPU"] for node in nodes] == [1.0, 1.0], nodes
        frame = count(engine="ray", replicas=2)
    finally:
        ray.shutdown()
    out.write_bytes(pickle.dumps(frame))


def test_a_cluster_of_two_nodes_counts_what_one_process_counts(two_nodes, tmp_path):
    out = tmp_path / "frame.pickle"
    run(sys.executable, __file__, two_nodes, str(out))
    remote = pickle.loads(out.read_bytes())
    assert_same_statistics(count(), remote)
    assert remote.attrs["pictures"] == 8 and remote.attrs["failed"] == []


if __name__ == "__main__":
    count_on_cluster(sys.argv[1], Path(sys.argv[2]))
