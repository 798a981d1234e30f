"""The project's Mojo kernels as MAX Graph operations.

Each function adds one custom op to the graph under construction and returns
its result; the model graphs (graph/) and the NumPy wrappers (ops.py) both
build on these. A graph using them needs `custom_extensions=[kernel_library()]`.
"""

from __future__ import annotations

import numpy as np
from max.dtype import DType
from max.graph import BufferValue, TensorType, TensorValue, ops

LAYER_NORM_EPS = 1e-5


def _outputs(name: str, values: list[TensorValue], out_types: list[TensorType]) -> tuple[TensorValue, ...]:
    """The results of a custom op with several outputs, on the device of its first input."""
    return tuple(out.tensor for out in ops.custom(name=name, device=values[0].device, values=values, out_types=out_types))


def _rows(x: TensorValue) -> TensorValue:
    """x as [rows, last]: the row kernels see 2-D row-major data."""
    return x if x.rank == 2 else ops.reshape(x, [-1, x.shape[-1]])


def layer_norm(
    x: TensorValue, weight: TensorValue, bias: TensorValue, eps: float = LAYER_NORM_EPS
) -> TensorValue:
    """Layer norm over the last axis of x (any rank >= 2)."""
    rows = _rows(x)
    y = ops.custom(
        name="layernorm",
        device=x.device,
        values=[rows, weight, bias],
        out_types=[TensorType(x.dtype, rows.shape, x.device)],
        parameters={"eps": float(eps)},
    )[0].tensor
    return ops.reshape(y, x.shape)


def add_layer_norm(
    x: TensorValue,
    residual: TensorValue,
    weight: TensorValue,
    bias: TensorValue,
    eps: float = LAYER_NORM_EPS,
) -> tuple[TensorValue, TensorValue]:
    """(layer_norm(x + residual), x + residual) in one pass over the rows."""
    rows, res_rows = _rows(x), _rows(residual)
    row_type = TensorType(x.dtype, rows.shape, x.device)
    y, total = ops.custom(
        name="add_layernorm",
        device=x.device,
        values=[rows, res_rows, weight, bias],
        out_types=[row_type, row_type],
        parameters={"eps": float(eps)},
    )
    return ops.reshape(y.tensor, x.shape), ops.reshape(total.tensor, x.shape)


def attention(
    q: TensorValue,
    k: TensorValue,
    v: TensorValue,
    scale: TensorValue | float,
    causal: bool = False,
    bf16: bool = False,
) -> TensorValue:
    """softmax(scale * q k^T [+ causal mask]) v for q [B, H, Tq, D] and
    k, v [B, H, Tk, D]; scale is a float or a [1] float32 tensor. bf16: a
    non-causal call with D = 64 and at least 128 query rows per key/value head
    (fewer do not repay packing the keys) may run on AMX tiles where the CPU has them:
    scores from bfloat16 hi/lo splits of q and k (close to float32), the
    probabilities and v rounded to bfloat16 (about 2^-8 of |v|), float32
    sums; for compute_type="int8" (kernels/attention_amx.mojo)."""
    if not isinstance(scale, TensorValue):
        scale = ops.constant([float(scale)], DType.float32, q.device)
    return ops.custom(
        name="attention",
        device=q.device,
        values=[q, k, v, scale],
        out_types=[TensorType(q.dtype, q.shape, q.device)],
        parameters={"causal": bool(causal), "bf16": bool(bf16)},
    )[0].tensor


def attention_int8kv(
    q: TensorValue,
    k: TensorValue,
    k_scale: TensorValue,
    v: TensorValue,
    v_scale: TensorValue,
    scale: TensorValue | float,
) -> TensorValue:
    """softmax(scale * q K^T) V for q [B, H, Tq, D] float32 over int8 keys and values
    k, v [Bk, H, Tk, D] whose row t stands for k_scale[.., t] * k[.., t] (scales [Bk, H,
    Tk] float32); B is a multiple of Bk; scale as attention's (kernels/attention_int8kv.mojo).
    CPU only."""
    if not isinstance(scale, TensorValue):
        scale = ops.constant([float(scale)], DType.float32, q.device)
    return ops.custom(
        name="attention_int8kv",
        device=q.device,
        values=[q, k, v, k_scale, v_scale, scale],
        out_types=[TensorType(q.dtype, q.shape, q.device)],
    )[0].tensor


def cached_attention(
    q: TensorValue,
    k: TensorValue,
    v: TensorValue,
    k_cache: BufferValue,
    v_cache: BufferValue,
    slots: TensorValue,
    lineage: TensorValue,
    scale: float,
) -> TensorValue:
    """Causal attention of q [B, H, T, D] over a cache [R, H, ctx, D] kept
    in place: stores k and v [B, H, T, D] in cache row slots[b] [B], then
    reads row b's key and value at position t from cache row lineage[b, t]
    ([B, past + T]); see kernels/kv_cache.mojo."""
    scale_value = ops.constant([float(scale)], DType.float32, q.device)
    return ops.inplace_custom(
        name="cached_attention",
        device=q.device,
        values=[q, k, v, k_cache, v_cache, slots, lineage, scale_value],
        out_types=[TensorType(q.dtype, q.shape, q.device)],
    )[0].tensor


def linear(x: TensorValue, weight: TensorValue, bias: TensorValue | None = None) -> TensorValue:
    """x @ weight^T + bias with weight [N, K] in float32 or float16 (PyTorch's
    layout), for the few-row matmuls of a decoder step; x has any rank. No
    bias: zeros."""
    rows = _rows(x)
    if bias is None:
        bias = ops.constant(np.zeros(int(weight.shape[0]), np.float32), DType.float32, x.device)
    y = ops.custom(
        name="linear",
        device=x.device,
        values=[rows, weight, bias],
        out_types=[TensorType(DType.float32, [rows.shape[0], weight.shape[0]], x.device)],
    )[0].tensor
    return ops.reshape(y, [*x.shape[:-1], weight.shape[0]])


def matmul_int8(
    x: TensorValue,
    weight: TensorValue,
    weight_scale: TensorValue,
    bias: TensorValue | None = None,
    isa: str = "native",
    gelu: bool = False,
) -> TensorValue:
    """x @ W^T + bias with W = weight_scale[:, None] * int8 values, weight
    packed by int8_layout.pack_int8_matrix; x (any rank, float32) is quantized per
    row to int8 inside the op (kernels/matmul_int8.mojo). isa "vnni", "avx2"
    or "portable" forces that inner product (tests); "native" picks the best.
    gelu: the op applies GELU to its result (the bits of ops.gelu), so the
    product never needs a buffer of its own."""
    rows = _rows(x)
    if bias is None:
        bias = ops.constant(np.zeros(0, np.float32), DType.float32, x.device)
    n = weight_scale.shape[0]
    y = ops.custom(
        name="matmul_int8",
        device=x.device,
        values=[rows, weight, weight_scale, bias],
        out_types=[TensorType(DType.float32, [rows.shape[0], n], x.device)],
        parameters={"isa": isa, "gelu": bool(gelu)},
    )[0].tensor
    return ops.reshape(y, [*x.shape[:-1], n])


def decoder_layer(
    x: TensorValue,
    h: TensorValue,
    projections: list[tuple[TensorValue, TensorValue | None, TensorValue]],
    cache: tuple[BufferValue, BufferValue],
    slots: TensorValue,
    lineage: TensorValue,
    norms: list[tuple[TensorValue, TensorValue]],
    audio: list[TensorValue],
    scale: float,
    eps: float = LAYER_NORM_EPS,
) -> tuple[TensorValue, TensorValue]:
    """One decoder block on the CPU as one op (kernels/decoder_layer.mojo):
    x [B, T, d] the residual stream, h its normed rows; projections the
    (weight, int8 scale or None, bias) of qkv, attention out, cross query,
    cross out, mlp.0 and mlp.2, weights as `linear` or `matmul_int8` take
    them; norms the (weight, bias) of cross_attn_ln, mlp_ln and the next
    block's attn_ln (or the final ln); cache, slots and lineage as for
    cached_attention; audio the block's cross keys and values as
    layers.cross_kv gives them. Returns the block's (x, h)."""
    device = x.device
    rows, h_rows = _rows(x), _rows(h)
    no_scale = ops.constant(np.zeros(0, np.float32), DType.float32, device)
    values = [rows, h_rows]
    for i, (weight, weight_scale, bias) in enumerate(projections):
        values += [weight, no_scale if weight_scale is None else weight_scale, bias]
        if i == 1:  # after the attention out projection: the cache and the first norm
            values += [*cache, slots, lineage, *norms[0]]
        if i == 3:  # after the cross out projection: the audio and the second norm
            if len(audio) == 2:
                no_scales = ops.constant(np.zeros((0, 0, 0), np.float32), DType.float32, device)
                audio = [audio[0], no_scales, audio[1], no_scales]
            values += [*audio, *norms[1]]
    values += [*norms[2], ops.constant([float(scale)], DType.float32, device)]
    row_type = TensorType(DType.float32, rows.shape, device)
    new_x, new_h = ops.inplace_custom(
        name="decoder_layer",
        device=device,
        values=values,
        out_types=[row_type, row_type],
        parameters={"eps": float(eps)},
    )
    return ops.reshape(new_x.tensor, x.shape), ops.reshape(new_h.tensor, x.shape)


def log_mel(audio: TensorValue, filters: TensorValue) -> TensorValue:
    """Whisper's normalised log-mel spectrogram of audio [L] (16 kHz, padding
    already appended) with filters [n_mels, 201]: [n_mels, L // 160]."""
    n_frames = audio.shape[0] // 160
    return ops.custom(
        name="log_mel",
        device=audio.device,
        values=[audio, filters],
        out_types=[TensorType(DType.float32, [filters.shape[0], n_frames], audio.device)],
    )[0].tensor


def lstm_sequence(
    gates_in: TensorValue, w_hh: TensorValue, h0: TensorValue, c0: TensorValue
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """An LSTM cell's recurrence over time (kernels/lstm.mojo, CPU only): gates_in [T, 4H]
    (input projection and both biases), w_hh [H, 4H], state h0, c0 [H]. Returns every step's
    h [T, H] and the final h, c [H]."""
    steps, hidden = gates_in.shape[0], h0.shape[0]
    device = gates_in.device
    return _outputs(
        "lstm_sequence",
        [gates_in, w_hh, h0, c0],
        [
            TensorType(DType.float32, [steps, hidden], device),
            TensorType(DType.float32, [hidden], device),
            TensorType(DType.float32, [hidden], device),
        ],
    )


def token_scores(
    logits: TensorValue, bars: TensorValue, suppressed: TensorValue, first_timestamp: TensorValue, k: int
) -> tuple[TensorValue, TensorValue, TensorValue]:
    """A decoding step's use of logits [rows, V] in one op (kernels/token_scores.mojo, CPU
    only): (filtered [rows, V] with the token rules applied, the ids of the k best filtered
    logits [rows, k] best first, (peak, log normaliser) [rows, 2] float64). bars [rows, n, 2]
    int64 holds each row's barred ranges [lo, hi), suppressed [s] the ids barred everywhere,
    first_timestamp [1] the id of <|0.00|> or -1 for no timestamp rule."""
    rows, vocab = logits.shape
    device = logits.device
    return _outputs(
        "token_scores",
        [logits, bars, suppressed, first_timestamp],
        [
            TensorType(DType.float32, [rows, vocab], device),
            TensorType(DType.int64, [rows, k], device),
            TensorType(DType.float64, [rows, 2], device),
        ],
    )
