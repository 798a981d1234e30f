# O += P V register tiles, shared by both CPU paths of "attention"
# (attention_tiled.mojo and attention_direct.mojo).
#
# pv_accumulate: O[r, :] = corr[r] * O[r, :] + sum_j P[r, j] * V[j, :] for R
# rows at once, where O is float32 rows of D (D apart), P a tile of
# probabilities addressed by (key, row) strides (queries in lanes for the
# tiled path, keys contiguous per row for the direct one) and V nk rows of D
# in float32, float16 or int8 (converted in registers). corr is the online
# softmax's rescale of what O held before this tile of keys.
# Each loaded V vector is reused by all R rows; each row's P value is a
# broadcast. How many O vectors a row keeps in registers is chosen per
# instruction set at compile time (_pv_vectors).
# Tested through the op in tests/test_attention.py (NumPy float64 softmax
# reference) and tests/test_attention_int8kv.py.
from std.memory import Pointer
from std.sys.info import CompilationTarget, simd_width_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
comptime NEG = -Float32.MAX  # masked score: exp(NEG - m) is 0 for any real m
# AVX-512 and NEON have 32 vector registers, AVX2 16: register tiles sized
# for 32 spill on AVX2 (the attention ran at 0.67x MAX's there while 1.16x
# on AVX-512, before the blocking was chosen per instruction set).
comptime VREGS = 32 if (CompilationTarget.has_avx512f() or CompilationTarget.has_neon()) else 16


def _pv_vectors[dtype: DType, R: Int]() -> Int:
    """O vectors per row in one P V register tile of R rows: the most of 8, 4,
    2 that fits R * NC accumulators, NC loaded V vectors and a broadcast in
    the registers. One row of float32 values needs no V registers (each load
    folds into its FMA), so it takes 8: every FMA of a key then feeds its own
    accumulator. With 2 (AVX2's old setting for every R) one row's pass over
    a tile of keys was a chain of dependent FMAs, 4 cycles a key per 2
    vectors, and the decoder's 1-row cross-attention spent most of its time
    there. int8 or float16 values are converted in registers first."""
    var loaded = 0 if R == 1 and dtype == F32 else 1  # V vectors held per accumulator column
    if (R + loaded) * 8 + 1 <= VREGS:
        return 8
    if (R + loaded) * 4 + 1 <= VREGS:
        return 4
    if (R + loaded) * 2 + 1 <= VREGS:
        return 2
    return 1


@always_inline
def _pv_chunk[
    o_origin: MutOrigin, //, dtype: DType, R: Int, NC: Int, VW: Int
](
    acc_mem: Pointer[Float32, o_origin],
    p: Pointer[Float32, _],
    key_stride: Int,
    row_stride: Int,
    corr: Pointer[Float32, _],
    v: Pointer[Scalar[dtype], _],
    nk: Int,
    D: Int,
    d0: Int,
):
    """O[r, d0 : d0 + NC*VW] = corr[r] * O[r, ...] + sum_j P[r, j] * v[j, ...]
    for the R rows r starting at acc_mem (rows D apart); P[r, j] is at
    p[j * key_stride + r * row_stride]."""
    var acc = StaticTuple[SIMD[F32, VW], R * NC](SIMD[F32, VW](0))
    comptime for r in range(R):
        var c = SIMD[F32, VW](corr.unsafe_load(r))
        comptime for n in range(NC):
            acc[r * NC + n] = acc_mem.unsafe_load[width=VW](r * D + d0 + n * VW) * c
    for j in range(nk):
        var vv = StaticTuple[SIMD[F32, VW], NC](SIMD[F32, VW](0))
        comptime for n in range(NC):
            vv[n] = v.unsafe_load[width=VW](j * D + d0 + n * VW).cast[F32]()
        comptime for r in range(R):
            var pj = SIMD[F32, VW](p.unsafe_load(j * key_stride + r * row_stride))
            comptime for n in range(NC):
                acc[r * NC + n] = vv[n].fma(pj, acc[r * NC + n])
    comptime for r in range(R):
        comptime for n in range(NC):
            acc_mem.unsafe_store(r * D + d0 + n * VW, acc[r * NC + n])


@always_inline
def pv_accumulate[
    o_origin: MutOrigin, //, dtype: DType, R: Int
](
    acc_mem: Pointer[Float32, o_origin],
    p: Pointer[Float32, _],
    key_stride: Int,
    row_stride: Int,
    corr: Pointer[Float32, _],
    v: Pointer[Scalar[dtype], _],
    nk: Int,
    D: Int,
):
    """_pv_chunk over all of D: _pv_vectors() vectors at a time, then
    fewer, then single values."""
    comptime NC = _pv_vectors[dtype, R]()
    var d0 = 0
    while d0 + NC * W <= D:
        _pv_chunk[dtype, R, NC, W](acc_mem, p, key_stride, row_stride, corr, v, nk, D, d0)
        d0 += NC * W
    comptime if NC > 4:
        while d0 + 4 * W <= D:
            _pv_chunk[dtype, R, 4, W](acc_mem, p, key_stride, row_stride, corr, v, nk, D, d0)
            d0 += 4 * W
    comptime if NC > 2:
        while d0 + 2 * W <= D:
            _pv_chunk[dtype, R, 2, W](acc_mem, p, key_stride, row_stride, corr, v, nk, D, d0)
            d0 += 2 * W
    while d0 + W <= D:
        _pv_chunk[dtype, R, 1, W](acc_mem, p, key_stride, row_stride, corr, v, nk, D, d0)
        d0 += W
    while d0 < D:
        _pv_chunk[dtype, R, 1, 1](acc_mem, p, key_stride, row_stride, corr, v, nk, D, d0)
        d0 += 1
