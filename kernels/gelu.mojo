# GELU, the exact form: x / 2 * (1 + erf(x / sqrt 2)).
# Written in the float32 operations MAX's ops.gelu uses (a division by sqrt 2,
# not a product with its inverse, and std's erf), so a kernel that applies it
# to its own output gives the bits of the separate op. That matters in int8
# mode, where GELU's output is quantized: one bit there can move a whole token.
# Used by decoder_layer.mojo (its MLP) and matmul_int8.mojo (the fused epilogue
# of the int8 encoder's first MLP matrix); tested through both, against MAX's
# ops.gelu on the unfused result (tests/test_decoder_layer.py,
# tests/test_matmul_int8.py).
from std.math import erf


@always_inline
def gelu[width: Int](x: SIMD[DType.float32, width]) -> SIMD[DType.float32, width]:
    return 0.5 * x * (1 + erf(x / 1.4142135623730951))
