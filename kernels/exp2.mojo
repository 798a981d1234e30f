# A softmax's exponential: 2^y for y <= 0, as 2^k times a polynomial in the
# fraction. std's float32 exp handles every input (NaN, overflow, a long
# reduction); a softmax only ever exponentiates s - max(s) <= 0, and there
# the checks cost more than the arithmetic (under perf, std's exp was a
# quarter of the int8 encoder's samples).
# Algorithm: k = roundeven(y), f = y - k in [-1/2, 1/2]; 2^f is a degree-5
# polynomial fitted here for least relative error (at most 2.6e-7, about two
# float32 ulps); 2^k is put straight into the exponent field. Below -126.5
# (and for -inf) the result is 0 instead of a subnormal.
# Used by attention.mojo and attention_amx.mojo; tested through them: their
# outputs against float64 softmax attention (tests/test_attention.py,
# tests/test_attention_amx.py).
from std.memory import bitcast
from std.sys.intrinsics import llvm_intrinsic

comptime F32 = DType.float32
comptime LOG2E = Float32(1.4426950408889634)
comptime C0 = Float32(1.000000037446685)
comptime C1 = Float32(0.693146473129283)
comptime C2 = Float32(0.24022265069595486)
comptime C3 = Float32(0.05551688893866382)
comptime C4 = Float32(0.009668535253690526)
comptime C5 = Float32(0.0012915651233283718)


@always_inline
def exp2_nonpositive[n: Int](y: SIMD[F32, n]) -> SIMD[F32, n]:
    """2^y for y <= 0 (see the file's header)."""
    var z = max(y, SIMD[F32, n](-127))
    var k = llvm_intrinsic["llvm.roundeven", SIMD[F32, n]](z)
    var f = z - k
    var poly = C5 * f + C4
    poly = poly.fma(f, SIMD[F32, n](C3))
    poly = poly.fma(f, SIMD[F32, n](C2))
    poly = poly.fma(f, SIMD[F32, n](C1))
    poly = poly.fma(f, SIMD[F32, n](C0))
    var scale = bitcast[F32, n]((k.cast[DType.int32]() + 127) << 23)
    return poly * scale


@always_inline
def exp_nonpositive[n: Int](x: SIMD[F32, n]) -> SIMD[F32, n]:
    """e^x for x <= 0, as 2^(x log2(e))."""
    return exp2_nonpositive[n](x * LOG2E)
