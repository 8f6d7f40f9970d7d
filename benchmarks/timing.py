"""Timing shared by the benchmarks: contenders run in turn, so load on the machine hits them alike."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


def interleaved_times(
    contenders: dict[str, Callable[[], object]], repeats: int, warmups: int = 1
) -> dict[str, list[float]]:
    """Seconds of each run of each contender: `warmups` untimed rounds, then `repeats` timed rounds,
    each running every contender once after a garbage collection."""
    for _ in range(warmups):
        for run in contenders.values():
            run()
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, run in contenders.items():
            gc.collect()
            start = time.perf_counter()
            run()
            times[name].append(time.perf_counter() - start)
    return times
