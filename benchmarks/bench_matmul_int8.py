"""The encoder's linear layers at Whisper shapes (1500 rows: one 30 s
window): the int8 GEMM (kernels/matmul_int8.mojo, compute_type="int8")
against MAX's float32 matmul, the bar it has to clear.
Run: .venv/bin/python benchmarks/bench_matmul_int8.py [--quick] [--base]"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import numpy as np

from harness import DEVICE, Case, Contender, compile_graph, isa_tag, max_contender, run
from max.dtype import DType
from max.graph import TensorType, ops
from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.graph.parameters import quantize_rows
from maxwhisper_kernels.int8_layout import pack_int8_matrix

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from whisper_reference import gelu  # noqa: E402  (the exact GELU, in float64)

ROWS = 1500
# name: (d_in, d_out) of tiny.en's encoder layers (d = 384); --base adds base's (d = 512)
TINY = {
    "tiny QKV 384 -> 1152": (384, 1152),
    "tiny attn out 384 -> 384": (384, 384),
    "tiny MLP up 384 -> 1536": (384, 1536),
    "tiny MLP down 1536 -> 384": (1536, 384),
}
BASE = {
    "base QKV 512 -> 1536": (512, 1536),
    "base attn out 512 -> 512": (512, 512),
    "base MLP up 512 -> 2048": (512, 2048),
    "base MLP down 2048 -> 512": (2048, 512),
}
NOTES = [
    "Operations: 2*M*K*N (a multiply-add counts 2, int8 or float). % of peak is of the harness's "
    "nominal fp32 figure, not of the int8 ceiling. int8 peak, AVX-512 VNNI: cores x clock x 2 "
    "vpdpbusd per cycle (ports 0 and 5 on Intel server cores) x 64 multiply-adds x 2; for the "
    "2-core 2.6 GHz Xeon of the first run 1331 GOP/s nominal, and a loop of 24 independent "
    "vpdpbusd chains reached 438 GOP/s on one core at load ~13 (~880 on two). AVX2 has no int8 "
    "multiply-accumulate: vpmaddubsw + vpmaddwd (+ vpsignb, vpaddd) per 32 multiply-adds on the 2 "
    "multiply pipes of Zen 3 make its int8 peak about 2x its fp32 FMA peak.",
    "int8 GEMM: x float32 quantized per row inside the op (included in the time), weights int8 per "
    "output channel, packed once at load. Its error column is quantization (activations and "
    "weights), against the float64 product of the unquantized matrices.",
    "MAX built-in: x @ W, W [K, N] float32, bias added (as the encoder does today).",
    "int8 GEMM (the native path) uses AMX (tdpbssd on 16x64-byte tiles) where the CPU has it and "
    "Linux grants the tiles, else VNNI. The VNNI path row is the same kernel with vpdpbusd forced.",
    "int8 (AVX2 path) is the same kernel with the vpmaddubsw/vpmaddwd inner product forced: on an "
    "AVX-512 machine it shows that path's speed with 16 of 32 vector registers, not a Zen 3's.",
    "'+ GELU' cases: the MLP's first matrix as the int8 encoder runs it, GELU fused into the op "
    "(gelu=True, over each work item's block) against the same op followed by MAX's ops.gelu "
    "(the graph before round 22: two 1500 x N buffers) and MAX's matmul + gelu in float32.",
]


def make_cases(shapes: dict[str, tuple[int, int]]) -> list[Case]:
    def types(*dims):
        return [TensorType(DType.float32, ["M", "K"], DEVICE), *dims]

    int8_types = types(
        TensorType(DType.int8, ["P", "G"], DEVICE),
        TensorType(DType.float32, ["N"], DEVICE),
        TensorType(DType.float32, ["N"], DEVICE),
    )
    native = compile_graph("bench_matmul_int8", int8_types, custom_ops.matmul_int8, custom=True)
    forced = {}  # the paths "native" passes over on this CPU, forced
    if isa_tag() == "avx512":
        for path in ("vnni", "avx2"):
            body = functools.partial(custom_ops.matmul_int8, isa=path)
            forced[path] = compile_graph(f"bench_matmul_int8_{path}", int8_types, body, custom=True)
    builtin = compile_graph(
        "bench_matmul_max",
        types(TensorType(DType.float32, ["K", "N"], DEVICE), TensorType(DType.float32, ["N"], DEVICE)),
        lambda x, w, b: x @ w + b,
    )
    with_gelu = {
        "fused": compile_graph("bench_matmul_int8_gelu", int8_types, functools.partial(custom_ops.matmul_int8, gelu=True), custom=True),
        "then": compile_graph("bench_matmul_int8_then_gelu", int8_types, lambda *a: ops.gelu(custom_ops.matmul_int8(*a)), custom=True),
        "max": compile_graph(
            "bench_matmul_max_gelu",
            types(TensorType(DType.float32, ["K", "N"], DEVICE), TensorType(DType.float32, ["N"], DEVICE)),
            lambda x, w, b: ops.gelu(x @ w + b),
        ),
    }
    rng = np.random.default_rng(0)
    cases = []
    for name, (k, n) in shapes.items():
        x = rng.standard_normal((ROWS, k), dtype=np.float32)
        w = (rng.standard_normal((n, k)) * 0.05).astype(np.float32)
        bias = (rng.standard_normal(n) * 0.1).astype(np.float32)
        values, scale = quantize_rows(w)
        packed = pack_int8_matrix(values)
        wt = np.ascontiguousarray(w.T)
        case = Case(name, f"x [{ROWS}, {k}], W [{n}, {k}]", 2.0 * ROWS * k * n, "flop",
                    x.astype(np.float64) @ w.astype(np.float64).T + bias)
        case.contenders = [
            max_contender("int8 GEMM", "custom", native, x, packed, scale, bias),
            max_contender("MAX matmul f32", "max", builtin, x, wt, bias),
            Contender("NumPy f32", "numpy32", lambda x=x, wt=wt, b=bias: x @ wt + b),
        ]
        for i, (path, graph) in enumerate(forced.items()):
            label = f"int8 GEMM, {path.upper()} path"
            case.contenders.insert(1 + i, max_contender(label, f"custom_{path}", graph, x, packed, scale, bias))
        cases.append(case)
        if "MLP up" in name:
            fused = Case(f"{name} + GELU", case.shape, case.work, "flop", gelu(case.expected))
            fused.contenders = [
                max_contender("int8 GEMM, GELU fused", "custom", with_gelu["fused"], x, packed, scale, bias),
                max_contender("int8 GEMM, then ops.gelu", "custom_then_gelu", with_gelu["then"], x, packed, scale, bias),
                max_contender("MAX matmul f32 + gelu", "max", with_gelu["max"], x, wt, bias),
            ]
            cases.append(fused)
    return cases


if __name__ == "__main__":
    shapes = {**TINY, **BASE} if "--base" in sys.argv else TINY
    if "--base" in sys.argv:
        sys.argv.remove("--base")
    sys.exit(run("matmul_int8", "Encoder int8 GEMM vs MAX float32 matmul", lambda: make_cases(shapes), NOTES))
