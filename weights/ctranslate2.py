"""CTranslate2 ``model.bin`` (faster-whisper's format), read with NumPy alone.

Layout (little-endian), as written by ctranslate2's ``ModelSpec._serialize``: uint32 binary
version, spec name and uint32 spec revision, uint32 variable count; per variable a name, uint8
rank, uint32 dims, uint8 dtype id, uint32 byte count and the C-order data; then uint32 alias count
and (alias, target) name pairs. Strings are a uint16 length (NUL included) and the bytes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .binary import PartsReader
from .checkpoint import Checkpoint, check_tied_projection, make_checkpoint
from .errors import CorruptWeightsError, MissingTensorError

# CTranslate2 dtype ids.
DTYPES = {0: "float32", 1: "int8", 2: "int16", 3: "int32", 4: "float16", 5: "bfloat16"}
# Version 4 introduced per-variable dtype ids and 6 is the newest; older files predate Whisper.
_SUPPORTED_VERSIONS = range(4, 7)


def _read_string(reader: PartsReader, what: str) -> str:
    (length,) = reader.unpack("H", f"{what} length")
    return reader.take(length, what).rstrip(b"\0").decode("utf-8", errors="replace")


def read_model_bin(paths: Sequence[Path]) -> dict[str, np.ndarray]:
    """All variables of a model.bin (given whole or as its split parts), aliases resolved."""
    # Errors in a split file name its first part; offsets count from the start of the whole.
    path = paths[0] if len(paths) == 1 else Path(f"{paths[0]} (+ {len(paths) - 1} more parts)")
    with PartsReader(paths, path) as reader:
        return _read_variables(reader, path)


def _read_variables(reader: PartsReader, path: Path) -> dict[str, np.ndarray]:
    (version,) = reader.unpack("I", "the binary version")
    if version not in _SUPPORTED_VERSIONS:
        raise CorruptWeightsError(path, f"unsupported CTranslate2 binary version {version}")
    spec = _read_string(reader, "the spec name")
    if spec != "WhisperSpec":
        raise CorruptWeightsError(path, f"a {spec or 'unnamed'} model, not a Whisper model")
    reader.unpack("I", "the spec revision")
    (count,) = reader.unpack("I", "the variable count")
    variables: dict[str, np.ndarray] = {}
    for index in range(count):
        name = _read_string(reader, f"the name of variable {index}")
        (rank,) = reader.unpack("B", "the rank", name)
        shape = reader.unpack("I" * rank, "the shape", name)
        dtype_id, size = reader.unpack("BI", "the dtype and size", name)
        if dtype_id not in DTYPES:
            raise CorruptWeightsError(path, f"unknown dtype id {dtype_id}", name)
        variables[name] = reader.take_array(size, DTYPES[dtype_id], shape, name)
    (alias_count,) = reader.unpack("I", "the alias count")
    for index in range(alias_count):
        alias = _read_string(reader, f"alias {index}")
        target = _read_string(reader, f"the target of alias {alias!r}")
        if target not in variables:
            raise CorruptWeightsError(path, f"alias of missing variable {target!r}", alias)
        variables[alias] = variables[target]
    return variables


class _Variables:
    """Float access to CTranslate2 variables (float16 kept as stored), dequantising int8/int16
    weights to float32 on the way."""

    def __init__(self, variables: dict[str, np.ndarray], path: Path):
        self.variables = variables
        self.path = path

    def __call__(self, name: str) -> np.ndarray:
        if name not in self.variables:
            raise MissingTensorError(self.path, name)
        value = self.variables[name]
        scale = self.variables.get(f"{name}_scale")
        if scale is not None:
            # Quantised rows were multiplied by their scale: undo it per output row.
            return value.astype(np.float32) / scale.astype(np.float32).reshape(
                -1, *([1] * (value.ndim - 1))
            )
        return value if value.dtype == np.float16 else value.astype(np.float32)

    def scalar(self, name: str) -> int | None:
        return int(self.variables[name]) if name in self.variables else None

    def layer_count(self, stack: str) -> int:
        pattern = re.compile(rf"{stack}/layer_(\d+)/")
        return len({m.group(1) for name in self.variables if (m := pattern.match(name))})


def _linear(get: _Variables, ct2: str, openai: str) -> dict[str, np.ndarray]:
    return {f"{openai}.weight": get(f"{ct2}/weight"), f"{openai}.bias": get(f"{ct2}/bias")}


def _layer_norm(get: _Variables, ct2: str, openai: str) -> dict[str, np.ndarray]:
    return {f"{openai}.weight": get(f"{ct2}/gamma"), f"{openai}.bias": get(f"{ct2}/beta")}


def _split_rows(get: _Variables, ct2: str, parts: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    weight, bias = get(f"{ct2}/weight"), get(f"{ct2}/bias")
    if weight.shape[0] % parts:
        raise CorruptWeightsError(
            get.path, f"{weight.shape[0]} rows do not split into {parts}", f"{ct2}/weight"
        )
    return np.split(weight, parts), np.split(bias, parts)


def _attention(get: _Variables, ct2: str, openai: str, cross: bool) -> dict[str, np.ndarray]:
    tensors = {}
    if cross:
        # Cross-attention keeps Q apart (it reads the decoder) and fuses K, V (they read the audio).
        tensors |= _linear(get, f"{ct2}/linear_0", f"{openai}.query")
        (k, v), (_, v_bias) = _split_rows(get, f"{ct2}/linear_1", 2)
        out = f"{ct2}/linear_2"
    else:
        (q, k, v), (q_bias, _, v_bias) = _split_rows(get, f"{ct2}/linear_0", 3)
        tensors |= {f"{openai}.query.weight": q, f"{openai}.query.bias": q_bias}
        out = f"{ct2}/linear_1"
    # The key bias is dropped: Whisper has none, and any constant one cancels in the softmax.
    tensors |= {
        f"{openai}.key.weight": k,
        f"{openai}.value.weight": v,
        f"{openai}.value.bias": v_bias,
    }
    return tensors | _linear(get, out, f"{openai}.out")


def _block(get: _Variables, ct2: str, openai: str, cross: bool) -> dict[str, np.ndarray]:
    tensors = _attention(get, f"{ct2}/self_attention", f"{openai}.attn", cross=False)
    tensors |= _layer_norm(get, f"{ct2}/self_attention/layer_norm", f"{openai}.attn_ln")
    if cross:
        tensors |= _attention(get, f"{ct2}/attention", f"{openai}.cross_attn", cross=True)
        tensors |= _layer_norm(get, f"{ct2}/attention/layer_norm", f"{openai}.cross_attn_ln")
    return (
        tensors
        | _linear(get, f"{ct2}/ffn/linear_0", f"{openai}.mlp.0")
        | _linear(get, f"{ct2}/ffn/linear_1", f"{openai}.mlp.2")
        | _layer_norm(get, f"{ct2}/ffn/layer_norm", f"{openai}.mlp_ln")
    )


def _to_openai_names(get: _Variables) -> dict[str, np.ndarray]:
    tensors = _linear(get, "encoder/conv1", "encoder.conv1") | _linear(
        get, "encoder/conv2", "encoder.conv2"
    )
    tensors["encoder.positional_embedding"] = get("encoder/position_encodings/encodings")
    for i in range(get.layer_count("encoder")):
        tensors |= _block(get, f"encoder/layer_{i}", f"encoder.blocks.{i}", cross=False)
    tensors |= _layer_norm(get, "encoder/layer_norm", "encoder.ln_post")
    tensors["decoder.token_embedding.weight"] = get("decoder/embeddings/weight")
    tensors["decoder.positional_embedding"] = get("decoder/position_encodings/encodings")
    for i in range(get.layer_count("decoder")):
        tensors |= _block(get, f"decoder/layer_{i}", f"decoder.blocks.{i}", cross=True)
    return tensors | _layer_norm(get, "decoder/layer_norm", "decoder.ln")


def load_ctranslate2(
    paths: Sequence[Path],
    *,
    config: dict | None = None,
    tokenizer_dir: Path | None = None,
) -> Checkpoint:
    """Load a CTranslate2 Whisper model.bin, whole or split into ``paths`` parts in order."""
    get = _Variables(read_model_bin(paths), paths[0])
    check_tied_projection(
        get.variables.get("decoder/projection/weight"),
        get.variables.get("decoder/embeddings/weight"),
        get.path,
        "decoder/projection/weight",
    )
    return make_checkpoint(
        _to_openai_names(get),
        paths[0],
        n_audio_head=get.scalar("encoder/num_heads"),
        n_text_head=get.scalar("decoder/num_heads"),
        config=config,
        tokenizer_dir=tokenizer_dir,
    )
