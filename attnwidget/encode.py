"""Compact binary encoding of float rows, shared by the widget state and its messages.

A float array [R, C] becomes `uint8[R * C]` (each row scaled to its own [lo, hi]) plus
`float32[R * 2]` holding (lo, hi) per row. Eight bits per value matches the 256 colours of a
colormap; the per-row range keeps full contrast for faint rows.
"""

from __future__ import annotations

import numpy as np
import torch


def encode_rows(rows: torch.Tensor) -> tuple[bytes, bytes]:
    """Encode [R, C] float rows; quantisation runs on the rows' device, only bytes move to the host."""
    rows = rows.float()
    if not torch.isfinite(rows).all():
        raise ValueError("attention contains NaN or infinite values; run the model in float32 to check")
    low = rows.amin(dim=1, keepdim=True)
    high = rows.amax(dim=1, keepdim=True)
    span = high - low
    if not torch.isfinite(span).all():
        raise ValueError("a row spans more than float32 can hold; the values are not attention weights")
    span = torch.where(span > 0, span, torch.ones_like(span))  # constant rows quantise to 0; tiny spans kept
    quantised = ((rows - low) / span * 255).round().to(torch.uint8)
    ranges = torch.cat([low, high], dim=1)
    return _little_endian(quantised), _little_endian(ranges)


def decode_rows(data: bytes, ranges: bytes, columns: int) -> np.ndarray:
    """Inverse of `encode_rows`: float32 array [R, columns]. Empty buffers give zero rows.

    Buffers `encode_rows` cannot have made (a length that is not whole rows, a range per row
    missing, a range that is not finite or runs backwards) raise `ValueError`.
    """
    if isinstance(columns, bool) or not isinstance(columns, (int, np.integer)) or columns < 0:
        raise ValueError(f"columns must be a whole number of values per row, not {columns!r}")
    quantised = np.frombuffer(data, dtype=np.uint8)
    raw_ranges = np.frombuffer(ranges, dtype=np.uint8)
    if quantised.size == 0 and raw_ranges.size == 0:
        return np.zeros((0, columns), dtype=np.float32)
    if columns == 0 or quantised.size % columns:
        raise ValueError(f"{quantised.size} bytes of data is not a whole number of rows of {columns} values")
    if raw_ranges.size % 8:
        raise ValueError(f"{raw_ranges.size} bytes of ranges is not a whole number of float32 (lo, hi) pairs")
    low_high = raw_ranges.view("<f4").reshape(-1, 2)
    rows = quantised.size // columns
    if len(low_high) != rows:
        raise ValueError(f"{rows} rows of data but {len(low_high)} ranges")
    low, high = low_high[:, :1], low_high[:, 1:]
    with np.errstate(over="ignore", invalid="ignore"):
        span = high - low
    if not (np.isfinite(span).all() and (span >= 0).all()):
        raise ValueError("a row's (lo, hi) range is not finite or has lo > hi: the buffer is corrupt")
    values = quantised.reshape(rows, columns).astype(np.float32)
    # Clipped: at float32's smallest magnitudes, lo + span can round past hi.
    return np.clip(low + values / np.float32(255) * span, low, high)


def float32_bytes(values: torch.Tensor) -> bytes:
    """Little-endian float32 bytes of a tensor on any device."""
    return _little_endian(values.float())


def _little_endian(tensor: torch.Tensor) -> bytes:
    array = tensor.detach().cpu().contiguous().numpy()
    if array.dtype.byteorder == ">":
        array = array.byteswap().view(array.dtype.newbyteorder("<"))
    return array.tobytes()
