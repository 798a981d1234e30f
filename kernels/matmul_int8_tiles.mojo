# Register tiles of the int8 GEMM (matmul_int8.mojo): step 1 (quantize a
# row of x) and steps 2-3 (int32 sums of a tile of rows with a strip of
# packed channels, then y = sums * s_x * w_scale + bias) on each CPU path.
# Layouts: as in matmul_int8.mojo; a quantized row is K4 int32 words of 4
# consecutive k, and the four bytes of a packed group sit in one 32-bit
# lane, as the instructions below want them. Inner product per instruction set, picked at compile time
# (the `isa` parameter "vnni" / "avx2" / "portable" forces a path, for tests):
#  - AVX-512 VNNI: vpdpbusd (unsigned x signed bytes, 4 products summed into
#    each 32-bit lane). x is stored shifted to unsigned, q_x + 128, so each
#    sum carries an extra 128 * sum_k q_w[n, k], subtracted in step 3
#    (summed with vpdpbusd itself, per strip of channels, by the work item
#    about to read that strip: in cache, and in parallel).
#  - AVX2: vpmaddubsw (unsigned x signed bytes -> saturating s16 pair sums)
#    then vpmaddwd with ones (s16 pairs -> s32). Saturation is avoided by
#    moving q_x's sign onto the weights (vpsignb): |q_x| * (sign(q_x) q_w)
#    pairs are at most 2 * 127 * 127 = 32258 < 32767.
#  - portable (other CPUs): widen to int32, multiply, add.
# Blocking: MR rows x NR vectors of int32 accumulators stay in registers
# over all of K (AVX-512: 6 x 4 zmm = 24 of 32 registers; AVX2: 4 x 2 ymm =
# 8 of 16, with the sign trick's temporaries). Rows past the last whole tile
# get a tile of their own height, so a 1-row decoder step computes one row.
# Tested through the op in tests/test_matmul_int8.py (a NumPy integer
# reference), every path on every shape.
from std.math import ceildiv
from std.memory import Pointer, bitcast
from .prefetch import prefetch_line
from std.sys.info import CompilationTarget, simd_width_of
from std.sys.intrinsics import llvm_intrinsic
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime I32 = DType.int32
comptime I8 = DType.int8
comptime PANEL = 16  # output channels per packed panel
comptime GROUP = 4 * PANEL  # bytes per panel and group of 4 k
comptime FW = simd_width_of[F32]()
# The first tile over a strip requests its weights this many groups (64 bytes
# each) ahead: a decoder step reads every weight once, and the hardware
# prefetcher alone left the 1-row tile waiting on memory (see linear.mojo).
comptime PF_GROUPS = 64

comptime VNNI = 0
comptime AVX2 = 1
comptime PORTABLE = 2
comptime AMX = 3
comptime AMX_BLOCK = 32  # rows and channels of the sums one AMX block holds in 4 tiles


def path_for[isa: StaticString]() -> Int:
    comptime if (isa == "native" or isa == "vnni") and CompilationTarget.has_avx512f() and CompilationTarget.has_vnni():
        return VNNI
    comptime if isa != "portable" and CompilationTarget.has_avx2():
        return AVX2
    return PORTABLE


def lanes[path: Int]() -> Int:
    """int32 lanes per vector."""
    comptime if path == VNNI or path == AMX:
        return 16
    comptime if path == AVX2:
        return 8
    return min(PANEL, simd_width_of[I32]())


def tile_rows[path: Int]() -> Int:
    """Rows per register tile; AMX: rows per block (two tiles)."""
    comptime if path == AMX:
        return AMX_BLOCK
    return 6 if path == VNNI else 4


def tile_vectors[path: Int]() -> Int:
    comptime if path == AMX:
        return AMX_BLOCK // PANEL
    return 4 if path == VNNI else PANEL // lanes[path]()


@always_inline
def dot4[
    path: Int, L: Int
](acc: SIMD[I32, L], a: SIMD[I8, 4 * L], a_abs: SIMD[I8, 4 * L], b: SIMD[I8, 4 * L]) -> SIMD[I32, L]:
    """acc + per 32-bit lane, the sum of the 4 byte products of a and b
    (a holds q_x + 128 as unsigned bytes on the VNNI path, q_x elsewhere;
    a_abs = |q_x|, used by the AVX2 path only)."""
    comptime if path == VNNI:
        return llvm_intrinsic["llvm.x86.avx512.vpdpbusd.512", SIMD[I32, L]](acc, a, b)
    elif path == AVX2:
        var signed_b = llvm_intrinsic["llvm.x86.avx2.psign.b", SIMD[I8, 4 * L]](b, a)
        var pairs = llvm_intrinsic["llvm.x86.avx2.pmadd.ub.sw", SIMD[DType.int16, 2 * L]](a_abs, signed_b)
        return acc + llvm_intrinsic["llvm.x86.avx2.pmadd.wd", SIMD[I32, L]](pairs, SIMD[DType.int16, 2 * L](1))
    else:
        var products = a.cast[I32]() * b.cast[I32]()
        var halves = products.deinterleave()
        var pairs = (halves[0] + halves[1]).deinterleave()
        return acc + rebind[SIMD[I32, L]](pairs[0] + pairs[1])


@always_inline
def prefetch_panels[L: Int, NR: Int](w: Pointer[Int8, _], panel_stride: Int, g: Int):
    """Asks for group g + PF_GROUPS of each panel that a strip of NR * L
    channels starts in (a group of one panel is one 64-byte line)."""
    comptime for j in range(NR):
        comptime if (j * L) % PANEL == 0:
            prefetch_line(w, ((j * L) // PANEL) * panel_stride + (g + PF_GROUPS) * GROUP)


@always_inline
def tile_sums[
    path: Int, L: Int, MR: Int, NR: Int
](a: Pointer[Int32, _], w: Pointer[Int8, _], K4: Int, ahead: Bool) -> StaticTuple[SIMD[I32, L], MR * NR]:
    """int32 sums of MR quantized rows (a: one 32-bit word per group of 4 k,
    K4 words per row) with NR * L packed channels starting at w (a panel);
    ahead: prefetch the panels' groups PF_GROUPS ahead (the strip's first tile,
    where strip_shift has not read it already)."""
    var acc = StaticTuple[SIMD[I32, L], MR * NR](SIMD[I32, L](0))
    var panel_stride = K4 * GROUP
    for g in range(K4):
        if ahead:
            prefetch_panels[L, NR](w, panel_stride, g)
        var b = StaticTuple[SIMD[I8, 4 * L], NR](SIMD[I8, 4 * L](0))
        comptime for j in range(NR):
            comptime offset = ((j * L) % PANEL) * 4
            b[j] = w.unsafe_load[width=4 * L](((j * L) // PANEL) * panel_stride + g * GROUP + offset)
        comptime for r in range(MR):
            var av = bitcast[I8, 4 * L](SIMD[I32, L](a.unsafe_load(r * K4 + g)))
            var a_abs = abs(av) if path == AVX2 else av
            comptime for j in range(NR):
                acc[r * NR + j] = dot4[path, L](acc[r * NR + j], av, a_abs, b[j])
    return acc


@always_inline
def strip_shift[path: Int, L: Int, NR: Int](w: Pointer[Int8, _], K4: Int) -> StaticTuple[SIMD[I32, L], NR]:
    """VNNI only: 128 * sum_k q_w[n, k] for the NR * L channels of a strip,
    summed by vpdpbusd with ones while the strip is about to be read anyway
    (once per call, serially, it cost a whole extra pass over the weights)."""
    var sums = StaticTuple[SIMD[I32, L], NR](SIMD[I32, L](0))
    comptime if path == VNNI:
        var ones = SIMD[I8, 4 * L](1)
        var panel_stride = K4 * GROUP
        for g in range(K4):
            prefetch_panels[L, NR](w, panel_stride, g)
            comptime for j in range(NR):
                comptime offset = ((j * L) % PANEL) * 4
                var b = w.unsafe_load[width=4 * L](((j * L) // PANEL) * panel_stride + g * GROUP + offset)
                sums[j] = dot4[path, L](sums[j], ones, ones, b)
        comptime for j in range(NR):
            sums[j] = sums[j] * 128
    return sums


@always_inline
def store_tile[
    y_origin: MutOrigin, //, path: Int, L: Int, MR: Int, NR: Int
](
    acc: StaticTuple[SIMD[I32, L], MR * NR],
    y: Pointer[Float32, y_origin],
    x_scale: Pointer[Float32, _],
    w_scale: Pointer[Float32, _],
    bias: Pointer[Float32, _],
    shift: StaticTuple[SIMD[I32, L], NR],
    has_bias: Bool,
    m0: Int,
    n0: Int,
    M: Int,
    N: Int,
):
    """Step 3 for one tile: rows past M and channels past N are dropped."""
    comptime for r in range(MR):
        var m = m0 + r
        if m < M:
            var sx = x_scale.unsafe_load(m)
            comptime for j in range(NR):
                var n = n0 + j * L
                var sums = acc[r * NR + j]
                comptime if path == VNNI:
                    sums = sums - shift[j]
                if n + L <= N:
                    var b = bias.unsafe_load[width=L](n) if has_bias else SIMD[F32, L](0)
                    var s = w_scale.unsafe_load[width=L](n) * sx
                    y.unsafe_store(m * N + n, sums.cast[F32]().fma(s, b))
                elif n < N:
                    for i in range(N - n):
                        var b = bias.unsafe_load(n + i) if has_bias else Float32(0)
                        var s = w_scale.unsafe_load(n + i) * sx
                        y.unsafe_store(m * N + n + i, sums[i].cast[F32]().fma(s, b))


@always_inline
def quantize_row[
    w_origin: MutOrigin, s_origin: MutOrigin, //, path: Int
](x: Pointer[Float32, _], K: Int, words: Pointer[Int32, w_origin], scale: Pointer[Float32, s_origin]):
    """Step 1 for one row: K4 words of 4 bytes (q + 128 on the VNNI path)."""
    var peak = SIMD[F32, FW](0)
    var k = 0
    while k + FW <= K:
        peak = max(peak, abs(x.unsafe_load[width=FW](k)))
        k += FW
    var top = peak.reduce_max()
    for t in range(k, K):
        top = max(top, abs(x.unsafe_load(t)))
    var inv = Float32(127) / top if top > 0 else Float32(0)
    scale.unsafe_store(0, top / 127)
    comptime shift = SIMD[DType.uint8, 16](128 if path == VNNI else 0)
    k = 0
    while k < K:
        var v = SIMD[F32, 16](0)
        if k + 16 <= K:
            v = x.unsafe_load[width=16](k)
        else:
            for t in range(K - k):
                v[t] = x.unsafe_load(k + t)
        var scaled = llvm_intrinsic["llvm.roundeven", SIMD[F32, 16]](v * inv)
        var q = bitcast[DType.uint8, 16](min(max(scaled, -127), 127).cast[I8]()) ^ shift
        var packed = bitcast[I32, 4](q)
        var n_words = min(4, ceildiv(K - k, 4))
        if n_words == 4:
            words.unsafe_store(k // 4, packed)
        else:
            for i in range(n_words):
                words.unsafe_store(k // 4 + i, packed[i])
        k += 16

