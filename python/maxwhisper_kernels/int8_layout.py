"""The layout int8 weight matrices are stored in for kernels/matmul_int8.mojo: panels of 16
output channels, in which four consecutive k of all 16 channels are 64 adjacent bytes: one
load gives a VNNI dot product its weight operand (see the kernel's header). The graphs read and build it (graph/layers.py,
graph/parameters.py); tests and benchmarks pack their matrices with it."""

from __future__ import annotations

import numpy as np

PACK_PANEL = 16  # output channels per panel of the packed int8 layout
PACK_CHANNELS = 64  # channels are padded to a multiple of the widest tile
_PACK_CHUNK = 64 * PACK_CHANNELS  # channels packed per pass


def packed_int8_shape(n: int, k: int) -> tuple[int, int]:
    """Shape of pack_int8_matrix's result for an [n, k] matrix."""
    return 4 * -(-n // PACK_CHANNELS), 4 * -(-k // 4) * PACK_PANEL


def pack_int8_matrix(values: np.ndarray) -> np.ndarray:
    """int8 weights [N, K] in the layout kernels/matmul_int8.mojo reads:
    [P, ceil(K / 4) * 64] with P = 4 * ceil(N / 64) panels of 16 channels;
    panel p, group g holds channel 16p + c's k = 4g .. 4g + 3 at bytes
    64g + 4c .. 64g + 4c + 3; zeros pad N and K."""
    values = np.asarray(values)
    if values.dtype != np.int8 or values.ndim != 2 or 0 in values.shape:
        raise ValueError(f"weights must be a non-empty 2-D int8 array, got {values.dtype} {values.shape}")
    n, k = values.shape
    n_pad = -(-n // PACK_CHANNELS) * PACK_CHANNELS
    k4 = -(-k // 4)
    packed = np.empty((n_pad // PACK_PANEL, k4 * 4 * PACK_PANEL), np.int8)
    # A few thousand channels at a time: whole, the padded and transposed copies of the token
    # embedding (20 MB each for tiny.en) stood beside the result at load.
    for start in range(0, n_pad, _PACK_CHUNK):
        rows = values[start : start + _PACK_CHUNK]
        padded = np.zeros((min(_PACK_CHUNK, n_pad - start), 4 * k4), np.int8)
        padded[: len(rows), :k] = rows
        # [panel, channel, group, 4] -> [panel, group, channel, 4]
        panels = padded.reshape(-1, PACK_PANEL, k4, 4).transpose(0, 2, 1, 3)
        packed[start // PACK_PANEL : (start + len(padded)) // PACK_PANEL] = panels.reshape(-1, k4 * 4 * PACK_PANEL)
    return packed
