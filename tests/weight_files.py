"""Small made-up checkpoints for the weights tests: a random state dict of a toy model, its
Hugging Face names and config, and writers for the CTranslate2 model.bin and the openai-whisper
.pt layouts, so each loader can be fed a file without torch or a real package."""

from __future__ import annotations

import collections
import io
import pickle
import struct
import sys
import types
import zipfile
from pathlib import Path

import numpy as np

from maxwhisper_kernels.weights import ModelDimensions, openai_to_hf_name, tensor_shapes


SMALL_DIMS = ModelDimensions(
    n_mels=4,
    n_audio_ctx=6,
    n_audio_state=8,
    n_audio_head=2,
    n_audio_layer=2,
    n_vocab=11,
    n_text_ctx=5,
    n_text_state=8,
    n_text_head=2,
    n_text_layer=2,
)


def small_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A random state dict of the (tiny, made-up) SMALL_DIMS model, for fast file-format tests."""
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in tensor_shapes(SMALL_DIMS).items()
    }


def hf_names(tensors: dict[str, np.ndarray], dtype=None) -> dict[str, np.ndarray]:
    return {
        openai_to_hf_name(name): value.astype(dtype or value.dtype)
        for name, value in tensors.items()
    }


def hf_config(dims: ModelDimensions) -> dict:
    return {
        "encoder_attention_heads": dims.n_audio_head,
        "decoder_attention_heads": dims.n_text_head,
    }


def write_model_bin(
    path: Path, variables: dict[str, tuple[int, np.ndarray]], aliases: dict[str, str]
) -> None:
    """A CTranslate2 model.bin (binary version 6) of (dtype id, raw array) variables."""

    def string(text: str) -> bytes:
        encoded = text.encode() + b"\0"
        return struct.pack("<H", len(encoded)) + encoded

    out = io.BytesIO()
    out.write(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, len(variables)))
    for name in sorted(variables):
        dtype_id, array = variables[name]
        data = np.ascontiguousarray(array).tobytes()
        out.write(string(name) + struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape))
        out.write(struct.pack("<BI", dtype_id, len(data)) + data)
    out.write(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out.write(string(alias) + string(target))
    path.write_bytes(out.getvalue())


def write_torch_pt(
    path: Path, dims: dict, state: dict, monkeypatch, transposed: frozenset = frozenset()
) -> None:
    """An openai-whisper .pt laid out as torch.save writes it, made with pickle alone.

    Stand-in ``torch`` modules give pickle the same globals torch's tensors reduce to, so the
    pickle holds exactly the opcodes a real checkpoint does. Tensors named in ``transposed`` are
    stored as a transposed view of their storage to exercise strides.
    """
    torch = types.ModuleType("torch")
    torch_utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    storage_types = {np.dtype(np.float16): "HalfStorage", np.dtype(np.float32): "FloatStorage"}
    for name in storage_types.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = torch_utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", torch_utils)

    prefix = path.stem
    storages: dict[str, np.ndarray] = {}

    class Storage:
        def __init__(self, key: str, array: np.ndarray):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, name: str, array: np.ndarray):
            key = str(len(storages))
            if name in transposed:
                storages[key] = np.ascontiguousarray(array.T)
                stride = (1, array.shape[0])
            else:
                storages[key] = np.ascontiguousarray(array)
                stride = tuple(s // array.itemsize for s in storages[key].strides)
            self.args = (
                Storage(key, storages[key]),
                0,
                array.shape,
                stride,
                False,
                collections.OrderedDict(),
            )

        def __reduce_ex__(self, protocol):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                storage_type = getattr(torch, storage_types[obj.array.dtype])
                return ("storage", storage_type, obj.key, "cpu", obj.array.size)
            return None

    checkpoint = {
        "dims": dims,
        "model_state_dict": collections.OrderedDict((n, Tensor(n, a)) for n, a in state.items()),
    }
    data = io.BytesIO()
    Pickler(data, protocol=2).dump(checkpoint)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", data.getvalue())
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"{prefix}/data/{key}", array.tobytes())
        archive.writestr(f"{prefix}/version", "3\n")


def assert_same_tensors(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)
