"""Scaled-dot-product attention at Whisper tiny shapes (6 heads of 64).
Run: .venv/bin/python benchmarks/bench_attention.py [--quick]"""

from __future__ import annotations

import sys

import numpy as np

from harness import (
    DEVICE, Case, Contender, compile_graph, composite_kernels, max_contender, reference, run,
)
from max.dtype import DType
from max.graph import TensorType, ops
from maxwhisper_kernels import custom_ops

H, D = 6, 64
SCALE = D**-0.5
# name: (batch, Tq, Tk, causal)
SHAPES = {
    "encoder self 1500x1500": (1, 1500, 1500, False),
    "decoder self 1 over 448 keys": (1, 1, 448, True),
    "decoder self causal 448x448": (1, 448, 448, True),
    "cross 1 over 1500 keys": (1, 1, 1500, False),
    "cross 8 audios, 1 over 1500 keys each": (8, 1, 1500, False),
}
NOTES = [
    "FLOPs: 4*B*H*D per visible (query, key) pair (QK^T and PV, 2 flops per "
    "multiply-add); causal counts only the Tq*(Tk-Tq) + Tq*(Tq+1)/2 visible pairs; "
    "softmax exps are not counted.",
    "MAX built-in: softmax((q @ k^T) * scale [+ mask]) @ v with symbolic dims; the "
    "parenthesised kernel is the fused kernel MAX substituted (none: it ran unfused). "
    "The causal mask is an additive [Tq, Tk] input built once, outside the timing.",
    "\"decoder self 1 over 448 keys\" is causal with Tq=1: every key is visible.",
    "NumPy f32: batched np.matmul (OpenBLAS sgemm) + exp/normalise in place.",
    "bf16=True (the int8 encoder's setting): on a CPU with AMX, scores from bfloat16 hi/lo "
    "splits (three tile products) and P V in bfloat16 (kernels/attention_amx.mojo); elsewhere "
    "the same float32 kernel as the custom op row. Its max abs err column shows the rounding.",
    "int8 keys/values (cross-attention only): kernels/attention_int8kv.mojo, what the int8 "
    "decoder runs, over k and v quantized per 64-value row with a float32 scale each (a "
    "quarter of float32's bytes); its error column is that quantization, the time includes "
    "nothing of it (the encoder graph quantizes once a window). The batched pipeline's steps "
    "read 8 audios' keys and values: the 8-audio case.",
]


def visible_pairs(tq: int, tk: int, causal: bool) -> int:
    return tq * (tk - tq) + tq * (tq + 1) // 2 if causal else tq * tk


def causal_mask(tq: int, tk: int) -> np.ndarray:
    hidden = np.arange(tk)[None, :] > (tk - tq + np.arange(tq))[:, None]
    return np.where(hidden, -np.inf, 0).astype(np.float32)


def attention_f32(q, k, v, mask=None):
    """A fast float32 NumPy attention (the float64 reference is no speed baseline)."""
    scores = np.matmul(q, k.swapaxes(-1, -2))
    scores *= SCALE
    if mask is not None:
        scores += mask
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores @ v


def _graphs() -> dict:
    qkv = [TensorType(DType.float32, ["B", "H", t, "D"], DEVICE) for t in ("Tq", "Tk", "Tk")]
    mask = TensorType(DType.float32, ["Tq", "Tk"], DEVICE)
    int8_kv = [TensorType(DType.int8, ["B", "H", "Tk", "D"], DEVICE), TensorType(DType.float32, ["B", "H", "Tk"], DEVICE)]

    def builtin(q, k, v, m=None):
        scores = ops.matmul(q, ops.transpose(k, -1, -2)) * SCALE
        return ops.matmul(ops.softmax(scores if m is None else scores + m), v)

    return {
        ("custom", False): compile_graph(
            "bench_attention_custom", qkv,
            lambda q, k, v: custom_ops.attention(q, k, v, SCALE, causal=False), custom=True),
        ("custom", True): compile_graph(
            "bench_attention_custom_causal", qkv,
            lambda q, k, v: custom_ops.attention(q, k, v, SCALE, causal=True), custom=True),
        ("custom_bf16", False): compile_graph(
            "bench_attention_custom_bf16", qkv,
            lambda q, k, v: custom_ops.attention(q, k, v, SCALE, causal=False, bf16=True), custom=True),
        ("int8kv", False): compile_graph(
            "bench_attention_int8kv", qkv[:1] + int8_kv * 2,
            lambda q, k, ks, v, vs: custom_ops.attention_int8kv(q, k, ks, v, vs, SCALE), custom=True),
        ("max", False): compile_graph("bench_attention_max", qkv, builtin),
        ("max", True): compile_graph("bench_attention_max_masked", qkv + [mask], builtin),
    }


def make_cases() -> list[Case]:
    graphs = _graphs()
    rng = np.random.default_rng(0)
    cases = []
    for name, (batch, tq, tk, causal) in SHAPES.items():
        q = rng.standard_normal((batch, H, tq, D), dtype=np.float32)
        k, v = (rng.standard_normal((batch, H, tk, D), dtype=np.float32) for _ in range(2))
        cross = not causal and tq == 1
        mask = causal_mask(tq, tk) if causal else None
        extra = [mask] if causal else []
        builtin = graphs[("max", causal)]
        fused = ", ".join(composite_kernels(builtin[0])) or "none"
        case = Case(
            name,
            f"q [{batch}, {H}, {tq}, {D}], k/v [{batch}, {H}, {tk}, {D}]" + (", causal" if causal else ""),
            4.0 * batch * H * D * visible_pairs(tq, tk, causal),
            "flop",
            reference.attention(q, k, v, causal=causal, scale=SCALE),
        )
        custom = graphs[("custom", causal)]
        case.contenders = [
            max_contender("custom attention op", "custom", custom, q, k, v),
            max_contender(
                "MAX matmul+softmax+matmul", "max", builtin, q, k, v, *extra, detail=fused
            ),
            *([max_contender("custom op, bf16=True (AMX where present)", "custom_bf16",
                             graphs[("custom_bf16", False)], q, k, v)] if not causal else []),
            *([max_contender("custom op, int8 keys/values", "int8kv", graphs[("int8kv", False)],
                             q, *reference.quantize_rows(k), *reference.quantize_rows(v))] if cross else []),
            Contender(
                "NumPy f32", "numpy32", lambda q=q, k=k, v=v, m=mask: attention_f32(q, k, v, m)
            ),
            Contender(
                "NumPy f64 reference", "numpy64",
                lambda q=q, k=k, v=v, c=causal: reference.attention(q, k, v, c, SCALE),
            ),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("attention", "Attention", make_cases, NOTES))
