"""Bounds-checked reading of raw weight files.

A weights file cut short by an interrupted download must fail with the file and the tensor
named, never with a NumPy "buffer is smaller than requested size" or, worse, silent garbage.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import CorruptWeightsError, WeightsFileNotFoundError


def read_parts(paths: Sequence[Path]) -> memoryview:
    """Read a file, or the concatenation of the parts it was split into, into one buffer."""
    for path in paths:
        if not path.is_file():
            raise WeightsFileNotFoundError(f"weights file not found: {path}")
    buffer = bytearray(sum(path.stat().st_size for path in paths))
    offset = 0
    for path in paths:
        with path.open("rb") as f:
            offset += f.readinto(memoryview(buffer)[offset:])
    return memoryview(buffer)


class ByteReader:
    """A cursor over a buffer whose every read checks that the bytes are there."""

    def __init__(self, data: memoryview, path: Path):
        self.data = data
        self.path = path
        self.offset = 0

    def take(self, n: int, what: str, tensor: str | None = None) -> memoryview:
        end = self.offset + n
        if n < 0 or end > len(self.data):
            raise CorruptWeightsError(
                self.path,
                f"truncated or corrupt: {what} needs bytes {self.offset}..{end} "
                f"but the file has {len(self.data)}",
                tensor,
            )
        chunk = self.data[self.offset : end]
        self.offset = end
        return chunk

    def unpack(self, fmt: str, what: str, tensor: str | None = None) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what, tensor))


def decode_array(
    raw: memoryview,
    dtype: str,
    shape: tuple[int, ...],
    path: Path,
    tensor: str,
    byteorder: str = "<",
) -> np.ndarray:
    """Bytes as an array of ``shape``; bfloat16 (which NumPy lacks) is widened to float32."""
    numpy_dtype = np.dtype("uint16" if dtype == "bfloat16" else dtype).newbyteorder(byteorder)
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != count * numpy_dtype.itemsize:
        raise CorruptWeightsError(
            path,
            f"{len(raw)} bytes of {dtype} do not make shape {tuple(shape)} "
            f"({count * numpy_dtype.itemsize} bytes)",
            tensor,
        )
    array = np.frombuffer(raw, dtype=numpy_dtype).reshape(shape)
    if dtype == "bfloat16":
        # bfloat16 is the top half of a float32.
        array = (array.astype(np.uint32) << 16).view(np.float32)
    return array
