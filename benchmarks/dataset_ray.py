"""Pictures a second of `head_statistics_over` on Ray Data against the one-process engine, and what
Ray costs: the start of a run (replicas built, the model shipped) and each batch after it.

    .venv/bin/python benchmarks/dataset_ray.py [--pictures 64] [--batch-size 16] [--repeats 3] [--cpus 2]

A local Ray cluster with `--cpus` CPUs is started once, outside the timings. The built-in model;
contenders run in turn (`timing.interleaved_times`); medians. The start is a one-batch Ray run less a
one-batch local run; the cost per batch is what a one-replica run takes over the local run and its
start, over its batches.
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
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    ray.init(num_cpus=args.cpus, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR)
    ray.data.DataContext.get_current().enable_progress_bars = False
    model = attnwidget.default_model()
    pictures = [scene.image for scene in SceneDataset(0, args.pictures)]
    one_batch = pictures[: args.batch_size]

    def run(images, **options):
        return lambda: attnwidget.head_statistics_over(
            model, images, batch_size=args.batch_size, progress=False, **options
        )

    contenders = {
        "local": run(pictures),
        "ray, 1 replica": run(pictures, engine="ray", replicas=1),
        f"ray, {args.cpus} replicas": run(pictures, engine="ray", replicas=args.cpus),
        "local, 1 batch": run(one_batch),
        "ray, 1 batch": run(one_batch, engine="ray", replicas=1),
    }
    runs = interleaved_times(contenders, args.repeats)
    times = {key: statistics.median(each) for key, each in runs.items()}
    ray.shutdown()
    batches = -(-args.pictures // args.batch_size)
    start = times["ray, 1 batch"] - times["local, 1 batch"]
    per_batch = (times["ray, 1 replica"] - start - times["local"]) / batches
    print(
        f"built-in model, {args.pictures} pictures in batches of {args.batch_size}, "
        f"{args.cpus} CPUs, medians of {args.repeats} runs"
    )
    print(f"{'engine':20s} {'seconds':>8s} {'pictures/s':>11s} {'x local':>8s}")
    for name in ("local", "ray, 1 replica", f"ray, {args.cpus} replicas"):
        rate = args.pictures / times[name]
        print(f"{name:20s} {times[name]:8.2f} {rate:11.1f} {times['local'] / times[name]:8.2f}")
    print(f"start of a Ray run: {start:.2f} s; cost per batch after it: {per_batch * 1000:.0f} ms")


if __name__ == "__main__":
    main()
