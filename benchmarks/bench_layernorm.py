"""Layer norm at Whisper tiny shapes: the encoder's 1500 x 384 activations and
one decoder token (1 x 384). Run: .venv/bin/python benchmarks/bench_layernorm.py"""

from __future__ import annotations

import sys

import numpy as np

from harness import (
    DEVICE, Case, Contender, compile_graph, composite_kernels, max_contender, reference, run,
)
from max.dtype import DType
from max.graph import TensorType, ops
from maxwhisper_kernels import custom_ops

EPS = 1e-5
SHAPES = {"encoder 1500x384": (1500, 384), "decoder token 1x384": (1, 384)}
NOTES = [
    "Work is bytes moved: read x, write y, 4 bytes each (8 bytes per element); "
    "gamma/beta are ignored (they stay in L1).",
    "1500x384 fp32 is 2.3 MB in + 2.3 MB out: it lives in L2/L3 between samples, "
    "so GB/s can exceed the DRAM figure; 1x384 measures per-call overhead only.",
    "Both MAX graphs use symbolic [rows, cols] dims, one compile serving both shapes.",
]


def layer_norm_f32(x, gamma, beta):
    """A fast float32 NumPy layer norm (the float64 reference is no speed baseline)."""
    centred = x - x.mean(axis=-1, keepdims=True)
    rstd = 1.0 / np.sqrt(np.mean(centred * centred, axis=-1, keepdims=True) + EPS)
    return centred * rstd * gamma + beta


def make_cases() -> list[Case]:
    types = [
        TensorType(DType.float32, ["rows", "cols"], DEVICE),
        TensorType(DType.float32, ["cols"], DEVICE),
        TensorType(DType.float32, ["cols"], DEVICE),
    ]
    custom = compile_graph(
        "bench_layernorm_custom", types,
        lambda x, g, b: custom_ops.layer_norm(x, g, b, EPS), custom=True,
    )
    builtin = compile_graph(
        "bench_layernorm_max", types, lambda x, g, b: ops.layer_norm(x, g, b, EPS)
    )
    fused = ", ".join(composite_kernels(builtin[0]))
    rng = np.random.default_rng(0)
    cases = []
    for name, (rows, cols) in SHAPES.items():
        x = rng.standard_normal((rows, cols), dtype=np.float32) * 3 + 1
        gamma = (1 + 0.1 * rng.standard_normal(cols)).astype(np.float32)
        beta = (0.1 * rng.standard_normal(cols)).astype(np.float32)
        case = Case(name, f"x [{rows}, {cols}] fp32", 8.0 * rows * cols, "byte",
                    reference.layer_norm(x, gamma, beta, EPS))
        case.contenders = [
            max_contender("custom layernorm op", "custom", custom, x, gamma, beta),
            max_contender("MAX ops.layer_norm", "max", builtin, x, gamma, beta, detail=fused),
            Contender("NumPy f32", "numpy32", lambda x=x, g=gamma, b=beta: layer_norm_f32(x, g, b)),
            Contender("NumPy f64 reference", "numpy64",
                      lambda x=x, g=gamma, b=beta: reference.layer_norm(x, g, b, EPS)),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("layernorm", "Layer norm", make_cases, NOTES))
