"""The float32 initializers of an ONNX model, read from its protobuf bytes with NumPy alone.

Only the fields on the path to the tensors are decoded: ModelProto.graph (field 7) ->
GraphProto.initializer (field 5) -> TensorProto dims (1), data_type (2), float_data (4),
name (8), raw_data (9). Everything else is skipped by its wire type.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from maxwhisper_kernels.weights.errors import CorruptWeightsError

_FLOAT = 1  # TensorProto.DataType.FLOAT


def _varint(data: bytes, pos: int, path: Path) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(data):
            raise CorruptWeightsError(path, "truncated protobuf varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(data: bytes, path: Path):
    """(field number, wire type, value) of each field; value is an int or a bytes slice."""
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos, path)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos, path)
        elif wire == 2:
            size, pos = _varint(data, pos, path)
            if pos + size > len(data):
                raise CorruptWeightsError(path, f"field {number} runs past the end of its message")
            value, pos = data[pos : pos + size], pos + size
        elif wire in (1, 5):
            width = 8 if wire == 1 else 4
            value, pos = data[pos : pos + width], pos + width
        else:
            raise CorruptWeightsError(path, f"unsupported protobuf wire type {wire}")
        yield number, wire, value


def _tensor(message: bytes, path: Path) -> tuple[str, np.ndarray]:
    dims, dtype, name, raw, floats = [], None, "", None, []
    for number, wire, value in _fields(message, path):
        if number == 1:
            if wire == 2:  # packed dims
                pos = 0
                while pos < len(value):
                    dim, pos = _varint(value, pos, path)
                    dims.append(dim)
            else:
                dims.append(value)
        elif number == 2:
            dtype = value
        elif number == 4:
            floats.append(np.frombuffer(value, "<f4"))
        elif number == 8:
            name = bytes(value).decode("utf-8")
        elif number == 9:
            raw = value
    if dtype != _FLOAT:
        return name, None
    array = np.frombuffer(raw, "<f4") if raw is not None else np.concatenate(floats or [np.zeros(0, "<f4")])
    if array.size != int(np.prod(dims)):
        raise CorruptWeightsError(path, f"{array.size} values for shape {tuple(dims)}", name)
    return name, array.reshape(dims).astype(np.float32)


def read_onnx_initializers(path: Path) -> dict[str, np.ndarray]:
    """Every float32 initializer of the ONNX file at ``path``, by name."""
    path = Path(path)
    data = path.read_bytes()
    tensors = {}
    for number, wire, graph in _fields(data, path):
        if number == 7 and wire == 2:
            for field, kind, message in _fields(graph, path):
                if field == 5 and kind == 2:
                    name, array = _tensor(message, path)
                    if array is not None:
                        tensors[name] = array
    if not tensors:
        raise CorruptWeightsError(path, "no float32 initializers: not an ONNX model")
    return tensors
