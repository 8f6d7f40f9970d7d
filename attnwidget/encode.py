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
    span = (high - low).clamp_min(torch.finfo(torch.float32).tiny)
    quantised = ((rows - low) / span * 255).round().to(torch.uint8)
    ranges = torch.cat([low, high], dim=1)
    return _little_endian(quantised), _little_endian(ranges)


def decode_rows(data: bytes, ranges: bytes, columns: int) -> np.ndarray:
    """Inverse of `encode_rows`: float32 array [R, columns]."""
    quantised = np.frombuffer(data, dtype=np.uint8).reshape(-1, columns).astype(np.float32)
    low_high = np.frombuffer(ranges, dtype="<f4").reshape(-1, 2)
    if len(low_high) != len(quantised):
        raise ValueError(f"{len(quantised)} rows of data but {len(low_high)} ranges")
    low, high = low_high[:, :1], low_high[:, 1:]
    return low + quantised / 255 * (high - low)


def float32_bytes(values: torch.Tensor) -> bytes:
    """Little-endian float32 bytes of a tensor on any device."""
    return _little_endian(values.float())


def _little_endian(tensor: torch.Tensor) -> bytes:
    array = tensor.detach().cpu().contiguous().numpy()
    if array.dtype.byteorder == ">":
        array = array.byteswap().view(array.dtype.newbyteorder("<"))
    return array.tobytes()
