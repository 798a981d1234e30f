# GELU, the exact form: x / 2 * (1 + erf(x / sqrt 2)).
# Written in the float32 operations MAX's ops.gelu uses (a division by sqrt 2,
# not a product with its inverse, and std's erf), so a kernel that applies it
# to its own output gives the bits of the separate op. That matters in int8
# mode, where GELU's output is quantized: one bit there can move a whole token.
# gelu_span applies it in place to a run of values, 4 vectors at a time (with
# one vector at a time, the erf chains left the op 8 % slower than MAX's own
# GELU in the int8 encoder).
# Used by decoder_layer.mojo (its MLP) and matmul_int8.mojo (the fused epilogue
# of the int8 encoder's first MLP matrix); tested through both, against MAX's
# ops.gelu on the unfused result (tests/test_decoder_layer.py,
# tests/test_matmul_int8.py).
from std.math import erf
from std.memory import Pointer
from std.sys.info import simd_width_of

comptime FW = simd_width_of[DType.float32]()


@always_inline
def gelu[width: Int](x: SIMD[DType.float32, width]) -> SIMD[DType.float32, width]:
    return 0.5 * x * (1 + erf(x / 1.4142135623730951))


@always_inline
def gelu_span[origin: MutOrigin, //](p: Pointer[Float32, origin], start: Int, stop: Int):
    """p[start:stop] = GELU(p[start:stop])."""
    var i = start
    while i + 4 * FW <= stop:
        p.unsafe_store(i, gelu(p.unsafe_load[width=4 * FW](i)))
        i += 4 * FW
    while i + FW <= stop:
        p.unsafe_store(i, gelu(p.unsafe_load[width=FW](i)))
        i += FW
    while i < stop:
        p.unsafe_store(i, gelu[1](p.unsafe_load(i)))
        i += 1
