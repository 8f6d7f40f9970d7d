"""Pictures a second of `head_statistics_over` on Ray Data against the one-process engine, and what
Ray costs: the start of a run (replicas built, the model shipped) and each batch after it.

    .venv/bin/python benchmarks/dataset_ray.py [--pictures 64] [--batch-size 16] [--repeats 3] [--cpus 2]
        [--address HOST:PORT]

A local Ray cluster with `--cpus` CPUs is started once, outside the timings; with `--address`, the
running cluster there is used instead (`ray start`; `--cpus` then says how many replicas to run).
The built-in model; contenders run in turn (`timing.interleaved_times`); medians. Each engine also
runs a quarter of the pictures, where a Ray run's start (the replicas built, the model shipped to
them) weighs most.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import warnings

import ray
from timing import interleaved_times

import attnwidget
from attnwidget.scenes import SceneDataset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pictures", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cpus", type=int, default=2)
    parser.add_argument("--address", help="a running Ray cluster to use instead of a local one")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    if args.address:
        ray.init(address=args.address, log_to_driver=False, logging_level=logging.ERROR)
    else:
        ray.init(
            num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR
        )
    nodes = sum(node["Alive"] for node in ray.nodes())
    ray.data.DataContext.get_current().enable_progress_bars = False
    model = attnwidget.default_model()
    pictures = [scene.image for scene in SceneDataset(0, args.pictures)]
    quarter = pictures[: args.pictures // 4]

    def run(images, **options):
        return lambda: attnwidget.head_statistics_over(
            model, images, batch_size=args.batch_size, progress=False, **options
        )

    contenders = {
        "local": run(pictures),
        "ray, 1 replica": run(pictures, engine="ray", replicas=1),
        f"ray, {args.cpus} replicas": run(pictures, engine="ray", replicas=args.cpus),
        "local, a quarter": run(quarter),
        "ray, 1 replica, a quarter": run(quarter, engine="ray", replicas=1),
    }
    runs = interleaved_times(contenders, args.repeats)
    times = {key: statistics.median(each) for key, each in runs.items()}
    ray.shutdown()
    print(
        f"built-in model, {args.pictures} pictures in batches of {args.batch_size}, "
        f"{args.cpus} CPUs on {nodes} Ray node(s), medians of {args.repeats} runs"
    )
    print(f"{'engine':28s} {'pictures':>8s} {'seconds':>8s} {'pictures/s':>11s} {'x local':>8s}")
    for name in contenders:
        count = len(quarter) if name.endswith("a quarter") else len(pictures)
        local = times["local, a quarter" if name.endswith("a quarter") else "local"]
        rate = count / times[name]
        print(f"{name:28s} {count:8d} {times[name]:8.2f} {rate:11.1f} {local / times[name]:8.2f}")
    start = times["ray, 1 replica, a quarter"] - times["local, a quarter"]
    print(f"a Ray run's start (replicas built, the model shipped), about: {start:.1f} s")


if __name__ == "__main__":
    main()
