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


def _check_parts_exist(paths: Sequence[Path]) -> None:
    for path in paths:
        if not path.is_file():
            raise WeightsFileNotFoundError(f"weights file not found: {path}")


def _check_bounds(path: Path, offset: int, n: int, size: int, what: str, tensor: str | None) -> None:
    """n bytes from offset must lie inside a file of size bytes."""
    end = offset + n
    if n < 0 or end > size:
        raise CorruptWeightsError(
            path,
            f"truncated or corrupt: {what} needs bytes {offset}..{end} but the file has {size}",
            tensor,
        )


class _Cursor:
    """unpack() over a reader's take()."""

    def take(self, n: int, what: str, tensor: str | None = None):
        raise NotImplementedError

    def unpack(self, fmt: str, what: str, tensor: str | None = None) -> tuple:
        fmt = "<" + fmt
        return struct.unpack(fmt, self.take(struct.calcsize(fmt), what, tensor))


def read_parts(paths: Sequence[Path]) -> memoryview:
    """Read a file, or the concatenation of the parts it was split into, into one buffer."""
    _check_parts_exist(paths)
    buffer = bytearray(sum(path.stat().st_size for path in paths))
    offset = 0
    for path in paths:
        with path.open("rb") as f:
            offset += f.readinto(memoryview(buffer)[offset:])
    return memoryview(buffer)


class PartsReader(_Cursor):
    """A cursor over a file, or the parts it was split into, read as it goes: tensors are read
    straight into arrays of their own, so loading never holds the whole file beside them (a
    72 MB tiny.en model.bin used to peak at twice its size while it was copied out)."""

    def __init__(self, paths: Sequence[Path], path: Path):
        _check_parts_exist(paths)
        self.paths = list(paths)
        self.path = path
        self.size = sum(part.stat().st_size for part in paths)
        self.offset = 0
        self._part = 0
        self._file = self.paths[0].open("rb")

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> PartsReader:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _read_into(self, out: memoryview) -> None:
        done = 0
        while done < len(out):
            got = self._file.readinto(out[done:])
            if not got:  # this part is used up: go on in the next one
                self._part += 1
                self._file.close()
                self._file = self.paths[self._part].open("rb")
                continue
            done += got
        self.offset += len(out)

    def take(self, n: int, what: str, tensor: str | None = None) -> bytes:
        _check_bounds(self.path, self.offset, n, self.size, what, tensor)
        out = bytearray(n)
        self._read_into(memoryview(out))
        return bytes(out)

    def take_array(
        self, size: int, dtype: str, shape: tuple[int, ...], tensor: str, byteorder: str = "<"
    ) -> np.ndarray:
        """The next size bytes as a new array of shape (see decode_array)."""
        numpy_dtype = _storage_dtype(dtype, byteorder)
        _check_size(size, numpy_dtype, shape, self.path, dtype, tensor)
        _check_bounds(self.path, self.offset, size, self.size, "the data", tensor)
        array = np.empty(shape, numpy_dtype)
        self._read_into(memoryview(array.reshape(-1).view(np.uint8)))
        return _widen_bfloat16(array) if dtype == "bfloat16" else array


class ByteReader(_Cursor):
    """A cursor over a buffer whose every read checks that the bytes are there."""

    def __init__(self, data: memoryview, path: Path):
        self.data = data
        self.path = path
        self.offset = 0

    def take(self, n: int, what: str, tensor: str | None = None) -> memoryview:
        _check_bounds(self.path, self.offset, n, len(self.data), what, tensor)
        chunk = self.data[self.offset : self.offset + n]
        self.offset += n
        return chunk


def decode_array(
    raw: memoryview,
    dtype: str,
    shape: tuple[int, ...],
    path: Path,
    tensor: str,
    byteorder: str = "<",
) -> np.ndarray:
    """Bytes as an array of ``shape``; bfloat16 (which NumPy lacks) is widened to float32."""
    numpy_dtype = _storage_dtype(dtype, byteorder)
    _check_size(len(raw), numpy_dtype, shape, path, dtype, tensor)
    array = np.frombuffer(raw, dtype=numpy_dtype).reshape(shape)
    return _widen_bfloat16(array) if dtype == "bfloat16" else array


def _storage_dtype(dtype: str, byteorder: str) -> np.dtype:
    return np.dtype("uint16" if dtype == "bfloat16" else dtype).newbyteorder(byteorder)


def _check_size(
    size: int, numpy_dtype: np.dtype, shape: tuple[int, ...], path: Path, dtype: str, tensor: str
) -> None:
    count = int(np.prod(shape, dtype=np.int64))
    if size != count * numpy_dtype.itemsize:
        raise CorruptWeightsError(
            path,
            f"{size} bytes of {dtype} do not make shape {tuple(shape)} "
            f"({count * numpy_dtype.itemsize} bytes)",
            tensor,
        )


def _widen_bfloat16(array: np.ndarray) -> np.ndarray:
    # bfloat16 is the top half of a float32.
    return (array.astype(np.uint32) << 16).view(np.float32)
