"""How large the widget's state grows: the side of the token x token matrices it holds, the notice
when full-resolution ones would be too large, and its size in a saved notebook."""

from __future__ import annotations

import json
import math
from typing import Any

from .reduce import matrix_size_for_budget
from .source import TokenLayout

#: Largest state of full-resolution matrices ("full"); beyond it they are pooled, with a message, so no
#: update grows past what browsers, notebook files and the server's message limits take.
FULL_STATE_LIMIT = 256 * 1024**2


def full_state_bytes(layout: TokenLayout, tiles: int) -> int:
    """Bytes of `tiles` full-resolution matrices of this input (one byte a value)."""
    return tiles * layout.token_count * layout.query_count


def matrix_side(saved_detail: str, layout: TokenLayout, tiles: int, matrix_budget: int) -> int:
    """Side of the token x token matrices the state holds (0 for none), as `saved_detail` says."""
    if saved_detail == "maps":
        return 0
    if saved_detail == "full" and full_state_bytes(layout, tiles) <= FULL_STATE_LIMIT:
        return max(layout.token_count, layout.query_count)
    return matrix_size_for_budget(layout.token_count, tiles, matrix_budget)


def pooled_notice(saved_detail: str, layout: TokenLayout, tiles: int, size: int) -> str:
    """Says why full-resolution matrices were pooled to `size`, or ""."""
    if saved_detail != "full" or size >= max(layout.token_count, layout.query_count):
        return ""
    return (
        f"saved_detail='full' would put {_mib(full_state_bytes(layout, tiles))} of matrices in the "
        f"widget's state (over {_mib(FULL_STATE_LIMIT)}); they are pooled to {size} x {size}. Exact "
        "values of any head still come from the kernel when it is opened"
    )


def saved_size(state: dict[str, Any]) -> int:
    """Bytes of a widget's state in a saved notebook: JSON, plus binary traits as base64."""
    binary = {name for name, value in state.items() if isinstance(value, (bytes, bytearray, memoryview))}
    text = json.dumps({name: value for name, value in state.items() if name not in binary})
    return len(text) + sum(4 * math.ceil(memoryview(state[name]).nbytes / 3) for name in binary)


def _mib(count: int) -> str:
    return f"{count / 2**20:.0f} MiB"
