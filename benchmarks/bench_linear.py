"""The decoder's matmuls at Whisper tiny shapes: one token (or 5 beams) times
a weight matrix, the vocabulary projection above all.
Run: .venv/bin/python benchmarks/bench_linear.py [--quick]"""

from __future__ import annotations

import sys

import numpy as np

from harness import DEVICE, Case, Contender, compile_graph, max_contender, run
from max.dtype import DType
from max.graph import TensorType
from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.graph.parameters import quantize_rows
from maxwhisper_kernels.int8_layout import pack_int8_matrix

# name: (rows, d_in, d_out)
SHAPES = {
    "vocab projection 1x384 -> 51864": (1, 384, 51864),
    "vocab projection 5 beams": (5, 384, 51864),
    "MLP up 1x384 -> 1536": (1, 384, 1536),
}
NOTES = [
    "FLOPs: 2*M*K*N. A decoder step is bound by reading the weights, not by flops: "
    "K*N*4 bytes in float32, 2 in float16, 1 in int8 (+ 4*N of row scales); the vocabulary "
    "projection reads 80 / 40 / 20 MB, which does not fit in cache, so GB/s = weight bytes / time "
    "is what to hold against the DRAM figure.",
    "Custom linear: kernels/linear.mojo, weights [N, K] as stored for the default decoder "
    "(float16 is exact for the CTranslate2 checkpoints). int8 GEMM: kernels/matmul_int8.mojo, "
    "what a compute_type=\"int8\" decoder runs (weights packed, x quantized per row inside the "
    "op), so its error column shows the quantization, not the kernel.",
    "MAX built-in: x @ W with W [K, N] float32 (MAX's float16 matmul is far slower on this CPU).",
]


def make_cases() -> list[Case]:
    def types(wdtype):
        return [
            TensorType(DType.float32, ["M", "K"], DEVICE),
            TensorType(wdtype, ["N", "K"], DEVICE),
            TensorType(DType.float32, ["N"], DEVICE),
        ]

    fp16 = compile_graph("bench_linear_fp16", types(DType.float16), custom_ops.linear, custom=True)
    int8 = compile_graph(
        "bench_linear_int8_gemm",
        [
            TensorType(DType.float32, ["M", "K"], DEVICE),
            TensorType(DType.int8, ["P", "G"], DEVICE),
            TensorType(DType.float32, ["N"], DEVICE),
            TensorType(DType.float32, ["N"], DEVICE),
        ],
        custom_ops.matmul_int8,
        custom=True,
    )
    builtin = compile_graph(
        "bench_linear_max",
        [TensorType(DType.float32, ["M", "K"], DEVICE), TensorType(DType.float32, ["K", "N"], DEVICE)],
        lambda x, w: x @ w,
    )
    rng = np.random.default_rng(0)
    cases = []
    for name, (m, k, n) in SHAPES.items():
        x = rng.standard_normal((m, k), dtype=np.float32)
        w16 = (rng.standard_normal((n, k)) * 0.05).astype(np.float16)
        w32t = np.ascontiguousarray(w16.astype(np.float32).T)
        values, scale = quantize_rows(w16.astype(np.float32))
        packed = pack_int8_matrix(values)
        bias = np.zeros(n, np.float32)
        case = Case(name, f"x [{m}, {k}], W [{n}, {k}]", 2.0 * m * k * n, "flop",
                    x.astype(np.float64) @ w16.astype(np.float64).T)
        case.contenders = [
            max_contender("custom linear, float16 W", "custom", fp16, x, w16, bias),
            max_contender("int8 GEMM, packed int8 W", "int8_gemm", int8, x, packed, scale, bias),
            max_contender("MAX matmul, float32 W", "max", builtin, x, w32t),
            Contender("NumPy f32", "numpy32", lambda x=x, w=w32t: x @ w),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("linear", "Decoder linear layers", make_cases, NOTES))
