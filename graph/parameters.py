"""Checkpoint tensors rearranged into the layouts the graphs declare: Q/K/V
fused (Whisper's key projection has no bias, so its slice of the fused bias
is zero), conv filters in RSCF order; encoder matrices transposed to
[d_in, d_out] for MAX's matmul, decoder matrices kept [d_out, d_in] in the
decoder's matrix dtype for the project's linear op."""

from __future__ import annotations

import numpy as np

from maxwhisper_kernels.int8_layout import pack_int8_matrix
from maxwhisper_kernels.weights import Checkpoint

from .layers import PACKED_INT8


def _fused(t: dict[str, np.ndarray], prefix: str, parts: tuple[str, ...]) -> dict[str, np.ndarray]:
    weight = np.concatenate([t[f"{prefix}.{p}.weight"] for p in parts], axis=0)
    bias = np.concatenate(
        [t.get(f"{prefix}.{p}.bias", np.zeros(t[f"{prefix}.{p}.weight"].shape[0], np.float32)) for p in parts]
    )
    return {"weight": weight, "bias": bias}


def _put(out: dict[str, np.ndarray], name: str, tensors: dict[str, np.ndarray], matrix_dtype=None) -> None:
    """Stores tensors under name; matrix_dtype None means encoder layout
    (matrices transposed, float32), PACKED_INT8 the int8 encoder's (rows
    quantized as for int8, then packed for the int8 GEMM), else decoder
    layout in that dtype (int8: symmetric per row, with the row scales as
    `weight_scale`)."""
    for key, value in tensors.items():
        dtype = np.float32
        if key == "weight" and value.ndim == 2:
            if matrix_dtype is None:
                value = value.T
            elif matrix_dtype == PACKED_INT8:
                values, out[f"{name}.weight_scale"] = quantize_rows(value)
                value, dtype = pack_int8_matrix(values), np.int8
            elif matrix_dtype == np.int8:
                value, out[f"{name}.weight_scale"] = quantize_rows(value)
                dtype = np.int8
            else:
                dtype = matrix_dtype
        out[f"{name}.{key}"] = np.ascontiguousarray(value, dtype=dtype)


def quantize_rows(matrix: np.ndarray, chunk: int = 2048) -> tuple[np.ndarray, np.ndarray]:
    """(int8 values, float32 scale per row) with matrix ~= scale[:, None] * values,
    each row's largest magnitude mapped to 127 (as CTranslate2's int8). Taken chunk
    rows at a time: whole, the token embedding's float32 temporaries (80 MB each for
    tiny.en) raised the load's peak memory by about 200 MB."""
    values = np.empty(matrix.shape, np.int8)
    scale = np.empty(matrix.shape[0], np.float32)
    # one float32 scratch block, worked on in place: each load quantizes every matrix again
    # (tiny.en: 0.26 s of an int8 load, about a third less this way; the same values)
    scratch = np.empty((min(chunk, matrix.shape[0]), matrix.shape[1]), np.float32)
    for start in range(0, matrix.shape[0], chunk):
        part = matrix[start : start + chunk]
        rows = scratch[: len(part)]
        rows[...] = part
        peak = np.maximum(rows.max(axis=1), -rows.min(axis=1))
        step = np.where(peak > 0, peak / 127, 1).astype(np.float32)
        np.divide(rows, step[:, None], out=rows)
        np.clip(np.rint(rows, out=rows), -127, 127, out=rows)
        values[start : start + chunk] = rows
        scale[start : start + chunk] = step
    return values, scale


def _linear(t: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    return {"weight": t[f"{name}.weight"], "bias": t[f"{name}.bias"]}


def _norm(t: dict[str, np.ndarray], name: str) -> dict[str, np.ndarray]:
    return {"weight": t[f"{name}.weight"], "bias": t[f"{name}.bias"]}


def _block_common(out, t, block: str, matrix_dtype=None, out_dtype=None) -> None:
    """out_dtype: the attention output projection's (the encoder keeps it float32 in
    its MAX-matmul layout even in int8, see graph/encoder.py)."""
    _put(out, f"{block}.attn.qkv", _fused(t, f"{block}.attn", ("query", "key", "value")), matrix_dtype)
    _put(out, f"{block}.attn.out", _linear(t, f"{block}.attn.out"), out_dtype)
    for norm in ("attn_ln", "mlp_ln"):
        _put(out, f"{block}.{norm}", _norm(t, f"{block}.{norm}"))
    for layer in ("mlp.0", "mlp.2"):
        _put(out, f"{block}.{layer}", _linear(t, f"{block}.{layer}"), matrix_dtype)


def encoder_parameters(ckpt: Checkpoint, int8: bool = False) -> dict[str, np.ndarray]:
    """int8: the linear layers' matrices for build_encoder(int8=True)."""
    t, dims, out = ckpt.tensors, ckpt.dims, {}
    matrix_dtype = PACKED_INT8 if int8 else None
    for conv in ("conv1", "conv2"):
        weight = t[f"encoder.{conv}.weight"]  # [out, in, 3]
        _put(out, f"encoder.{conv}", {"weight": weight.transpose(2, 1, 0)[None], "bias": t[f"encoder.{conv}.bias"]})
    _put(out, "encoder", {"positional_embedding": t["encoder.positional_embedding"]})
    for i in range(dims.n_audio_layer):
        _block_common(out, t, f"encoder.blocks.{i}", matrix_dtype)
    _put(out, "encoder.ln_post", _norm(t, "encoder.ln_post"))
    for i in range(dims.n_text_layer):
        block = f"decoder.blocks.{i}.cross_attn"
        _put(out, f"{block}.kv", _fused(t, block, ("key", "value")), matrix_dtype)
    return out


def decoder_matrices(ckpt: Checkpoint) -> list[np.ndarray]:
    """The decoder's weight matrices (token embedding included)."""
    return [a for name, a in ckpt.tensors.items() if name.startswith("decoder.") and a.ndim == 2]


def exact_in_float16(arrays: list[np.ndarray]) -> bool:
    """True when every value survives a round trip through float16, as the
    weights of a checkpoint stored in float16 do (those arrive as float16 and
    need no check)."""
    return all(
        a.dtype == np.float16 or np.array_equal(a.astype(np.float16).astype(np.float32), a)
        for a in arrays
    )


def decoder_parameters(ckpt: Checkpoint, matrix_dtype=np.float32) -> dict[str, np.ndarray]:
    """int8: the token embedding packed only, with its row scales (the lookup reads rows
    out of the packed layout, the vocabulary projection multiplies by it), every other matrix
    packed, as build_decoder_step wants."""
    t, dims, out = ckpt.tensors, ckpt.dims, {}
    _put(out, "decoder", {"positional_embedding": t["decoder.positional_embedding"]})
    _put(out, "decoder.token_embedding", {"weight": t["decoder.token_embedding.weight"]}, matrix_dtype)
    if matrix_dtype == np.int8:
        out["decoder.token_embedding.packed"] = pack_int8_matrix(out.pop("decoder.token_embedding.weight"))
        matrix_dtype = PACKED_INT8
    for i in range(dims.n_text_layer):
        block = f"decoder.blocks.{i}"
        _block_common(out, t, block, matrix_dtype, matrix_dtype)
        _put(out, f"{block}.cross_attn_ln", _norm(t, f"{block}.cross_attn_ln"))
        for layer in ("query", "out"):
            _put(out, f"{block}.cross_attn.{layer}", _linear(t, f"{block}.cross_attn.{layer}"), matrix_dtype)
    _put(out, "decoder.ln", _norm(t, "decoder.ln"))
    return out
