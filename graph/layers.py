"""Pieces shared by the encoder and decoder graphs."""

from __future__ import annotations

import numpy as np
from max.dtype import DType
from max.graph import DeviceRef, TensorType, TensorValue, Weight, ops

from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.int8_layout import PACK_PANEL, packed_int8_shape

# Weights.matrix_dtype of the int8 encoder: linear layers are the int8 GEMM
# (kernels/matmul_int8.mojo) on packed int8 weights with a scale per channel.
PACKED_INT8 = "packed_int8"


class Weights:
    """Declares graph weights by name; parameters.py supplies their values
    under the same names when the graph is loaded.

    matrix_dtype None: linear layers are MAX matmuls with float32 weights
    stored [d_in, d_out] (the encoder's large, compute-bound matmuls).
    A dtype: linear layers are the project's row-streaming `linear` op with
    weights stored [d_out, d_in] in that dtype (the decoder's few-row,
    bandwidth-bound matmuls); int8 matrices come with a float32 scale per
    row, `<name>.weight_scale`. PACKED_INT8: the encoder's matmuls in int8,
    weights packed for the int8 GEMM, with scales as for the decoder."""

    def __init__(self, device: DeviceRef, matrix_dtype: DType | str | None = None):
        self.device = device
        self.matrix_dtype = matrix_dtype

    def __call__(self, name: str, *shape: int, dtype: DType = DType.float32) -> Weight:
        return Weight(name, dtype, list(shape), self.device)


def linear(x: TensorValue, w: Weights, name: str, d_in: int, d_out: int, bias: bool = True, gelu: bool = False):
    """x @ W^T + b for a torch-style Linear(d_in, d_out), then GELU if asked (inside the
    int8 GEMM, which spares the product's buffer; a separate op on the other paths)."""
    if w.matrix_dtype is None:
        y = x @ w(f"{name}.weight", d_in, d_out)
        y = y + w(f"{name}.bias", d_out) if bias else y
    else:
        weight, scale, b = projection(w, name, d_in, d_out, bias)
        if scale is not None:
            return custom_ops.matmul_int8(x, weight, scale, b, gelu=gelu)
        y = custom_ops.linear(x, weight, b)
    return ops.gelu(y) if gelu else y


def projection(w: Weights, name: str, d_in: int, d_out: int, bias: bool = True):
    """The (weight, int8 scale or None, bias or None) of a Linear(d_in, d_out) held for the
    project's own ops (w.matrix_dtype a dtype or PACKED_INT8)."""
    b = w(f"{name}.bias", d_out) if bias else None
    if w.matrix_dtype == PACKED_INT8:
        packed = w(f"{name}.weight", *packed_int8_shape(d_out, d_in), dtype=DType.int8)
        return packed, w(f"{name}.weight_scale", d_out), b
    return w(f"{name}.weight", d_out, d_in, dtype=w.matrix_dtype), None, b


def cross_kv(x: TensorValue, n_head: int, int8: bool) -> list[TensorValue]:
    """A cross-attention key or value projection [B, T, H*D] as the encoder hands it to the
    decoder, heads split: [x [B, H, T, D] float32] (the default mode stays exact), or in int8
    mode [x int8, its scale per row [B, H, T] float32], each row quantized on its own (scale =
    max |row| / 127, values rounded to even): every decoder step reads all of them for every
    row, at 8 rows 37 MB a layer in float32, more than the weights; int8 reads a quarter."""
    x = split_heads(x, n_head)
    if not int8:
        return [x]
    peak = ops.max(ops.abs(x), axis=-1)
    scale = peak / 127.0
    safe = ops.where(scale > 0, scale, ops.constant(1.0, DType.float32, x.device))  # a zero row stays 0
    quantized = ops.cast(ops.round(x / safe), DType.int8)
    return [quantized, ops.squeeze(scale, -1)]


def cross_kv_types(n_head: int, n_ctx: int, d_head: int, int8: bool, device: DeviceRef) -> list[TensorType]:
    """The graph types of one key or value as cross_kv gives it, for audio_batch audios."""
    rows = ["audio_batch", n_head, n_ctx]
    if not int8:
        return [TensorType(DType.float32, [*rows, d_head], device)]
    return [TensorType(DType.int8, [*rows, d_head], device), TensorType(DType.float32, rows, device)]


def packed_rows(packed: TensorValue, ids: TensorValue, d: int) -> TensorValue:
    """Rows ids (any shape) of an int8 matrix held only in pack_int8_matrix's layout, as
    [*ids.shape, d] int8. That layout keeps a row's 4-byte groups 16 channels apart: viewed
    as [groups, 4], row r's group g sits at (r // 16 * K4 + g) * 16 + r % 16 (K4 groups per
    row), so one gather of K4 groups per id reads it back. The int8 decoder looks its tokens
    up this way instead of keeping a second, row-major copy of the embedding (19 MiB for
    tiny)."""
    panels, width = (int(n) for n in packed.shape)
    k4 = width // (4 * PACK_PANEL)
    groups = ops.reshape(packed, [panels * k4 * PACK_PANEL, 4])
    first = ops.floor_div(ids, PACK_PANEL) * (k4 * PACK_PANEL) + ops.mod(ids, PACK_PANEL)
    steps = ops.constant(np.arange(k4, dtype=np.int64) * PACK_PANEL, DType.int64, ids.device)
    rows = ops.gather(groups, ops.unsqueeze(first, -1) + steps, axis=0)  # [*ids, K4, 4]
    rows = ops.reshape(rows, [*ids.shape, 4 * k4])
    return rows if 4 * k4 == d else ops.slice_tensor(rows, [*(slice(None),) * len(ids.shape), slice(0, d)])


def row_scale(w: Weights, name: str, d_out: int) -> TensorValue | None:
    """The per-row scales of an int8 matrix, packed or not (None for float matrices)."""
    return w(f"{name}.weight_scale", d_out) if w.matrix_dtype in (DType.int8, PACKED_INT8) else None


def layer_norm(x: TensorValue, w: Weights, name: str, d: int) -> TensorValue:
    return custom_ops.layer_norm(x, w(f"{name}.weight", d), w(f"{name}.bias", d))


def add_layer_norm(x: TensorValue, residual: TensorValue, w: Weights, name: str, d: int):
    """(LN(x + residual), x + residual): a residual add fused with the next norm."""
    return custom_ops.add_layer_norm(x, residual, w(f"{name}.weight", d), w(f"{name}.bias", d))


def mlp(x: TensorValue, w: Weights, name: str, d: int) -> TensorValue:
    h = linear(x, w, f"{name}.0", d, 4 * d, gelu=True)
    return linear(h, w, f"{name}.2", 4 * d, d)


def split_heads(x: TensorValue, n_head: int) -> TensorValue:
    """[B, T, H*D] -> [B, H, T, D], the layout the attention kernel reads."""
    batch, time, width = x.shape
    return ops.reshape(x, [batch, time, n_head, int(width) // n_head]).transpose(1, 2)


def merge_heads(x: TensorValue) -> TensorValue:
    batch, n_head, time, d_head = x.shape
    return ops.reshape(x.transpose(1, 2), [batch, time, int(n_head) * int(d_head)])


def head_scale(d: int, n_head: int) -> float:
    return (d // n_head) ** -0.5
