"""Decoder self-attention over the KV cache at Whisper tiny shapes (6 heads of
64, text context 448): one new token per row attending over the cached ones,
with the beams' cache rows reordered every step.
Run: .venv/bin/python benchmarks/bench_kv_cache.py [--quick]"""

from __future__ import annotations

import sys

import numpy as np

from harness import DEVICE, Case, Contender, compile_graph, max_contender, reference, run
from max.dtype import DType
from max.graph import BufferType, TensorType, ops
from maxwhisper_kernels import custom_ops

H, D, CTX = 6, 64, 448
SCALE = D**-0.5
# name: (rows, cached tokens)
SHAPES = {
    "1 row, 1 token over 400 cached": (1, 400),
    "5 beams, 1 token over 200 cached": (5, 200),
    "5 beams, 1 token over 400 cached": (5, 400),
}
NOTES = [
    "Work is bytes: the keys and values each row attends over, 2*B*H*(past+1)*D*4; they fit "
    "in L2/L3 between samples (5 x 400 tokens: 2.5 MB per layer), so GB/s can pass the DRAM figure.",
    "Custom cached_attention: kernels/kv_cache.mojo, what the decoder runs: the new key/value "
    "stored in place in [rows, 6, 448, 64] buffers, each row reading its history through a lineage "
    "table (beam reordering costs no copy; here each beam's history is a random mix of rows).",
    "Before (gather + concat + custom attention): what the decoder ran until a482924: the cache as "
    "a value [rows, 6, past, 64], gathered by beam index, the new token concatenated (a new cache "
    "each step), then the custom attention op.",
    "MAX built-in: the same gather + concat, then softmax(q k^T * scale) v with MAX ops.",
    "NumPy f32: fancy-index gather + concatenate + matmul/softmax.",
]


def attention_f32(q, k, v):
    scores = np.matmul(q, k.swapaxes(-1, -2)) * SCALE
    scores -= scores.max(axis=-1, keepdims=True)
    np.exp(scores, out=scores)
    scores /= scores.sum(axis=-1, keepdims=True)
    return scores @ v


def make_cases() -> list[Case]:
    rows_t = TensorType(DType.float32, ["B", H, 1, D], DEVICE)
    in_place = compile_graph(
        "bench_kv_cache_custom",
        [rows_t, rows_t, rows_t, BufferType(DType.float32, ["R", H, CTX, D], DEVICE),
         BufferType(DType.float32, ["R", H, CTX, D], DEVICE),
         TensorType(DType.int64, ["B"], DEVICE), TensorType(DType.int64, ["B", "T"], DEVICE)],
        lambda q, k, v, kc, vc, slots, lineage: custom_ops.cached_attention(q, k, v, kc, vc, slots, lineage, SCALE),
        custom=True,
    )
    value_types = [rows_t, rows_t, rows_t, TensorType(DType.float32, ["B", H, "P", D], DEVICE),
                   TensorType(DType.float32, ["B", H, "P", D], DEVICE), TensorType(DType.int64, ["B"], DEVICE)]

    def gathered(k, v, kc, vc, index):
        k_all = ops.concat([ops.gather(kc, index, axis=0), k], axis=2)
        v_all = ops.concat([ops.gather(vc, index, axis=0), v], axis=2)
        return k_all, v_all

    def before(q, k, v, kc, vc, index):
        k_all, v_all = gathered(k, v, kc, vc, index)
        return custom_ops.attention(q, k_all, v_all, SCALE, causal=True)

    def builtin(q, k, v, kc, vc, index):
        k_all, v_all = gathered(k, v, kc, vc, index)
        return ops.softmax(ops.matmul(q, k_all.transpose(2, 3)) * SCALE) @ v_all

    old = compile_graph("bench_kv_cache_before", value_types, before, custom=True)
    max_graph = compile_graph("bench_kv_cache_max", value_types, builtin)
    rng = np.random.default_rng(0)
    cases = []
    for name, (b, past) in SHAPES.items():
        q, k, v = (rng.standard_normal((b, H, 1, D), dtype=np.float32) for _ in range(3))
        k_hist, v_hist = (rng.standard_normal((b, H, past, D), dtype=np.float32) for _ in range(2))
        index = rng.integers(0, b, b)  # this step's beam reordering
        k_all = np.concatenate([k_hist[index], k], axis=2)
        v_all = np.concatenate([v_hist[index], v], axis=2)
        # the same history in place: cache row r holds k_hist[r]; lineage follows index
        k_cache, v_cache = (np.zeros((b, H, CTX, D), np.float32) for _ in range(2))
        k_cache[:, :, :past], v_cache[:, :, :past] = k_hist, v_hist
        slots = np.arange(b)
        lineage = np.concatenate([np.repeat(index[:, None], past, axis=1), slots[:, None]], axis=1)
        case = Case(name, f"q [{b}, {H}, 1, {D}], {past} cached", 2.0 * b * H * (past + 1) * D * 4, "byte",
                    reference.attention(q, k_all, v_all, causal=True, scale=SCALE))
        case.contenders = [
            max_contender("custom cached_attention (in place)", "custom", in_place,
                          q, k, v, k_cache, v_cache, slots, lineage),
            max_contender("before: gather + concat + custom attention", "before", old,
                          q, k, v, k_hist, v_hist, index),
            max_contender("MAX gather + concat + softmax attention", "max", max_graph,
                          q, k, v, k_hist, v_hist, index),
            Contender("NumPy f32", "numpy32",
                      lambda q=q, k=k, v=v, kh=k_hist, vh=v_hist, i=index: attention_f32(
                          q, np.concatenate([kh[i], k], axis=2), np.concatenate([vh[i], v], axis=2))),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("kv_cache", "Decoder self-attention over the KV cache", make_cases, NOTES))
