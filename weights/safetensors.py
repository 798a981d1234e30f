"""Hugging Face ``model.safetensors`` Whisper checkpoints, read and written with NumPy alone.

Layout: a little-endian uint64 header size, a JSON header mapping each tensor name to its dtype,
shape and [begin, end) byte offsets into the data that follows, then the raw data.
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .binary import ByteReader, decode_array, read_parts
from .checkpoint import Checkpoint, check_tied_projection, make_checkpoint
from .errors import CorruptWeightsError, WeightsError

_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U8": "uint8",
}
_DTYPE_CODES = {np.dtype(numpy): code for code, numpy in _DTYPES.items() if numpy != "bfloat16"}

# OpenAI module paths and their Hugging Face transformers counterparts.
_PARAMETERS = {
    "encoder.positional_embedding": "model.encoder.embed_positions.weight",
    "decoder.positional_embedding": "model.decoder.embed_positions.weight",
}
_MODULES = {
    "encoder.conv1": "model.encoder.conv1",
    "encoder.conv2": "model.encoder.conv2",
    "encoder.ln_post": "model.encoder.layer_norm",
    "decoder.token_embedding": "model.decoder.embed_tokens",
    "decoder.ln": "model.decoder.layer_norm",
}
_BLOCK_MODULES = {
    "attn.query": "self_attn.q_proj",
    "attn.key": "self_attn.k_proj",
    "attn.value": "self_attn.v_proj",
    "attn.out": "self_attn.out_proj",
    "attn_ln": "self_attn_layer_norm",
    "cross_attn.query": "encoder_attn.q_proj",
    "cross_attn.key": "encoder_attn.k_proj",
    "cross_attn.value": "encoder_attn.v_proj",
    "cross_attn.out": "encoder_attn.out_proj",
    "cross_attn_ln": "encoder_attn_layer_norm",
    "mlp.0": "fc1",
    "mlp.2": "fc2",
    "mlp_ln": "final_layer_norm",
}
_BLOCK = re.compile(r"(encoder|decoder)\.blocks\.(\d+)\.(.+)")
_HF_BLOCK = re.compile(r"model\.(encoder|decoder)\.layers\.(\d+)\.(.+)")
# transformers' output projection, tied to the token embedding.
_HF_PROJECTION = "proj_out.weight"


def openai_to_hf_name(name: str) -> str:
    """The transformers ``WhisperForConditionalGeneration`` name of an OpenAI state-dict name."""
    if name in _PARAMETERS:
        return _PARAMETERS[name]
    module, leaf = name.rsplit(".", 1)
    if match := _BLOCK.fullmatch(module):
        stack, index, inner = match.groups()
        return f"model.{stack}.layers.{index}.{_BLOCK_MODULES[inner]}.{leaf}"
    return f"{_MODULES[module]}.{leaf}"


_HF_PARAMETERS = {hf: openai for openai, hf in _PARAMETERS.items()}
_HF_MODULES = {hf: openai for openai, hf in _MODULES.items()}
_HF_BLOCK_MODULES = {hf: openai for openai, hf in _BLOCK_MODULES.items()}


def hf_to_openai_name(name: str) -> str | None:
    """The OpenAI state-dict name of a transformers name, or None for one Whisper has no use for."""
    if not name.startswith("model."):
        # A bare WhisperModel has no "model." prefix.
        name = f"model.{name}"
    if name in _HF_PARAMETERS:
        return _HF_PARAMETERS[name]
    module, _, leaf = name.rpartition(".")
    if match := _HF_BLOCK.fullmatch(module):
        stack, index, inner = match.groups()
        return (
            f"{stack}.blocks.{index}.{_HF_BLOCK_MODULES[inner]}.{leaf}"
            if inner in _HF_BLOCK_MODULES
            else None
        )
    return f"{_HF_MODULES[module]}.{leaf}" if module in _HF_MODULES else None


def read_safetensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor of a .safetensors file, in its stored dtype."""
    reader = ByteReader(read_parts([path]), path)
    (header_size,) = reader.unpack("Q", "the header size")
    try:
        header = json.loads(bytes(reader.take(header_size, "the JSON header")))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptWeightsError(path, f"header is not valid JSON: {error}") from error
    data = reader.data[reader.offset :]
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = (
                _DTYPES[entry["dtype"]],
                tuple(entry["shape"]),
                entry["data_offsets"],
            )
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptWeightsError(path, f"malformed header entry {entry!r}", name) from error
        if not 0 <= begin <= end <= len(data):
            raise CorruptWeightsError(
                path,
                f"truncated or corrupt: data bytes {begin}..{end} but the file holds {len(data)}",
                name,
            )
        tensors[name] = decode_array(data[begin:end], dtype, shape, path, name)
    return tensors


def write_safetensors(
    path: Path, tensors: Mapping[str, np.ndarray], metadata: Mapping[str, str] | None = None
) -> None:
    """Write ``tensors`` (any NumPy dtype safetensors knows) as a .safetensors file."""
    header: dict = {"__metadata__": dict(metadata)} if metadata else {}
    arrays = {
        name: np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<"))
        for name, value in tensors.items()
    }
    offset = 0
    for name, array in arrays.items():
        header[name] = {
            "dtype": _DTYPE_CODES[array.dtype],
            "shape": list(array.shape),
            "data_offsets": [offset, offset + array.nbytes],
        }
        offset += array.nbytes
    encoded = json.dumps(header).encode()
    # The format asks for the data to start 8-byte aligned; spaces pad the JSON.
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as f:
        f.write(struct.pack("<Q", len(encoded)))
        f.write(encoded)
        for array in arrays.values():
            f.write(array.tobytes())


def load_safetensors(
    path: Path,
    *,
    config: dict | None = None,
    generation_config: dict | None = None,
    tokenizer_dir: Path | None = None,
) -> Checkpoint:
    """Load a transformers Whisper model.safetensors; ``config`` is its config.json, if any."""
    tensors = {}
    projection = None
    for name, value in read_safetensors(path).items():
        if name == _HF_PROJECTION:
            projection = value
        elif (openai := hf_to_openai_name(name)) is not None:
            tensors[openai] = value
        else:
            raise WeightsError(f"{path}: tensor {name!r} is not part of a Whisper model")
    check_tied_projection(
        projection, tensors.get("decoder.token_embedding.weight"), path, _HF_PROJECTION
    )
    config = config or {}
    return make_checkpoint(
        tensors,
        path,
        n_audio_head=config.get("encoder_attention_heads"),
        n_text_head=config.get("decoder_attention_heads"),
        config=config or None,
        tokenizer_dir=tokenizer_dir,
        alignment_heads=(generation_config or {}).get("alignment_heads"),
    )
