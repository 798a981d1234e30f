"""OpenAI's Whisper ``.pt`` checkpoints, read without torch.

``torch.save`` writes a zip holding ``<prefix>/data.pkl`` (a pickle of the object tree, where each
tensor is ``torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`` and each storage
is a persistent id ``("storage", torch.<Type>Storage, key, location, numel)``) and the storages'
raw bytes as ``<prefix>/data/<key>``. OpenAI's checkpoint is ``{"dims": {...},
"model_state_dict": {...}}``. The unpickler resolves only the few globals that layout uses, so a
hostile file cannot run code.
"""

from __future__ import annotations

import collections
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .binary import decode_array
from .checkpoint import Checkpoint, make_checkpoint
from .dims import ModelDimensions
from .errors import CorruptWeightsError, WeightsFileNotFoundError

_STORAGE_DTYPES = {
    "DoubleStorage": "float64",
    "FloatStorage": "float32",
    "HalfStorage": "float16",
    "BFloat16Storage": "bfloat16",
    "LongStorage": "int64",
    "IntStorage": "int32",
    "ShortStorage": "int16",
    "CharStorage": "int8",
    "ByteStorage": "uint8",
    "BoolStorage": "bool",
}


@dataclass(frozen=True)
class _StorageType:
    dtype: str


@dataclass(frozen=True)
class _Storage:
    key: str
    dtype: str
    numel: int


@dataclass(frozen=True)
class _TensorRef:
    """A tensor as the pickle describes it; its bytes are read once its state-dict name is known."""

    storage: _Storage
    offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]


def _rebuild_tensor(storage, offset, size, stride, *_requires_grad_hooks_metadata) -> _TensorRef:
    if not isinstance(storage, _Storage):
        raise TypeError(f"tensor built on a {type(storage).__name__}, not a storage")
    return _TensorRef(storage, int(offset), tuple(size), tuple(stride))


def _rebuild_parameter(data, *_requires_grad_hooks):
    return data


def _rebuild_from_type(func, _new_type, args, _state):
    return func(*args)


_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._tensor", "_rebuild_from_type_v2"): _rebuild_from_type,
    ("torch", "Tensor"): None,
    ("torch.nn.parameter", "Parameter"): None,
} | {("torch", name): _StorageType(dtype) for name, dtype in _STORAGE_DTYPES.items()}


class _Unpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str):
        if (module, name) not in _GLOBALS:
            raise CorruptWeightsError(
                self.path, f"refusing to unpickle {module}.{name}: not part of a tensor checkpoint"
            )
        return _GLOBALS[(module, name)]

    def persistent_load(self, pid):
        if not (
            isinstance(pid, tuple)
            and len(pid) == 5
            and pid[0] == "storage"
            and isinstance(pid[1], _StorageType)
        ):
            raise CorruptWeightsError(self.path, f"unexpected persistent id {pid!r}")
        return _Storage(key=str(pid[2]), dtype=pid[1].dtype, numel=int(pid[4]))


class _Archive:
    """The zip's members, located by their suffix whatever the prefix torch gave them."""

    def __init__(self, path: Path):
        self.path = path
        try:
            self.zip = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as error:
            raise CorruptWeightsError(
                path, f"not a torch zip checkpoint (truncated?): {error}"
            ) from error
        pickles = [
            name for name in self.zip.namelist() if name.endswith("/data.pkl") or name == "data.pkl"
        ]
        if len(pickles) != 1:
            raise CorruptWeightsError(
                path, f"expected one data.pkl in the archive, found {len(pickles)}"
            )
        self.prefix = pickles[0][: -len("data.pkl")]
        # Archives from before torch 1.13 have no byteorder record and are little-endian.
        byteorder = b"little"
        if f"{self.prefix}byteorder" in self.zip.namelist():
            byteorder = self.read(f"{self.prefix}byteorder", "the byte order")
        self.byteorder = ">" if byteorder.strip() == b"big" else "<"

    def read(self, member: str, what: str, tensor: str | None = None) -> bytes:
        try:
            return self.zip.read(member)
        except (KeyError, zipfile.BadZipFile, OSError, EOFError) as error:
            raise CorruptWeightsError(
                self.path, f"cannot read {what} ({member}): {error}", tensor
            ) from error

    def load_object(self):
        data = self.read(f"{self.prefix}data.pkl", "the pickle")
        try:
            return _Unpickler(io.BytesIO(data), self.path).load()
        except CorruptWeightsError:
            raise
        except Exception as error:  # any other failure of a malformed pickle: opcodes, arity...
            raise CorruptWeightsError(self.path, f"corrupt pickle: {error}") from error

    def tensor(self, name: str, ref: _TensorRef, storages: dict[str, np.ndarray]) -> np.ndarray:
        storage = ref.storage
        if storage.key not in storages:
            raw = self.read(f"{self.prefix}data/{storage.key}", f"storage {storage.key}", name)
            storages[storage.key] = decode_array(
                memoryview(raw), storage.dtype, (storage.numel,), self.path, name, self.byteorder
            )
        flat = storages[storage.key]
        if len(ref.size) != len(ref.stride):
            raise CorruptWeightsError(self.path, f"view {ref} has mismatched size and stride", name)
        reach = ref.offset + sum((n - 1) * s for n, s in zip(ref.size, ref.stride) if n > 0)
        if (
            ref.offset < 0
            or min(ref.stride, default=0) < 0
            or (0 not in ref.size and reach >= flat.size)
        ):
            raise CorruptWeightsError(
                self.path, f"view {ref} reaches past its storage of {flat.size} elements", name
            )
        strides = tuple(s * flat.itemsize for s in ref.stride)
        return np.lib.stride_tricks.as_strided(
            flat[ref.offset :], ref.size, strides, writeable=False
        )


def load_openai_pt(path: Path) -> Checkpoint:
    """Load an openai-whisper ``.pt`` checkpoint (``{"dims", "model_state_dict"}``)."""
    if not path.is_file():
        raise WeightsFileNotFoundError(f"weights file not found: {path}")
    archive = _Archive(path)
    with archive.zip:
        return _convert(archive, archive.load_object())


def _convert(archive: _Archive, checkpoint) -> Checkpoint:
    path = archive.path
    if (
        not isinstance(checkpoint, dict)
        or not {"dims", "model_state_dict"} <= checkpoint.keys()
        or not isinstance(checkpoint["model_state_dict"], dict)
        or not isinstance(checkpoint["dims"], dict)
    ):
        keys = sorted(checkpoint) if isinstance(checkpoint, dict) else type(checkpoint).__name__
        raise CorruptWeightsError(
            path,
            f"not an openai-whisper checkpoint: expected dims and model_state_dict, found {keys}",
        )
    try:
        dims = ModelDimensions(**checkpoint["dims"])
    except TypeError as error:
        raise CorruptWeightsError(path, f"bad dims {checkpoint['dims']!r}: {error}") from error
    storages: dict[str, np.ndarray] = {}
    tensors = {}
    for name, ref in checkpoint["model_state_dict"].items():
        if not isinstance(ref, _TensorRef):
            raise CorruptWeightsError(
                path, f"state-dict entry is a {type(ref).__name__}, not a tensor", name
            )
        tensors[name] = archive.tensor(name, ref, storages)
    return make_checkpoint(tensors, path, dims=dims)
