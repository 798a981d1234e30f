# int8 GEMM for the encoder's linear layers (compute_type="int8").
#
# Op "matmul_int8": y [M, N] = x [M, K] @ W^T + bias, float32 in and out,
# with W held as int8 values q_w and one float32 scale per output channel
# (W[n, :] ~= w_scale[n] * q_w[n, :], see quantize_rows in graph/parameters.py).
# Algorithm:
#  1. Every row of x is quantized when the op runs (dynamic, symmetric):
#     peak = max |x[m, :]|, q_x[m, k] = roundeven(x[m, k] * (127 / peak)) in
#     [-127, 127], s_x[m] = peak / 127 (float32 arithmetic; 0 for a zero row).
#  2. acc[m, n] = sum_k q_x[m, k] * q_w[n, k], exact in int32.
#  3. y[m, n] = fma(float(acc[m, n]), s_x[m] * w_scale[n], bias[n]), then
#     GELU (gelu.mojo) when the compile-time `gelu` asks, over each work
#     item's block once it is done: the int8 encoder's first MLP matrix. Its
#     1500 x 1536 output then has one buffer, not two (MAX plans one for each
#     op's output): the encoder's largest live set of tensors went from 58.4
#     to 52.4 MB (tiny.en, jfk), at the same speed as MAX's separate GELU.
# Layouts (row-major):
#   x [M, K] float32; w_scale [N] float32; bias [N] float32, or [0] for none;
#   w [P, K4 * 64] int8, the packed weights: K4 = ceil(K / 4), P panels of 16
#     output channels, P = 4 * ceil(N / 64); panel p's group g (64 bytes) holds
#     channel 16p + c's values for k = 4g .. 4g + 3 at bytes 4c .. 4c + 3,
#     zero past N and K. ops.pack_int8_matrix writes it once, at load time.
# The inner products per instruction set (vpdpbusd on AVX-512 VNNI,
# vpmaddubsw + vpmaddwd on AVX2, widened int32 elsewhere) and their register
# tiles live in matmul_int8_tiles.mojo. The `isa` parameter ("vnni" / "avx2"
# / "portable") forces a path, for tests; "native" picks at compile time, and
# at run time:
#  - AMX (Intel Sapphire Rapids and later, see amx.mojo), taken by "native"
#    at run time for 16 rows or more when Linux grants this process the tile
#    registers and K is a multiple of 64. tdpbssd multiplies a tile of 16
#    rows x 64 signed bytes of x by a tile of 16 groups of the packed weights
#    (one panel, 64 k), which is exactly 16 rows of 64 bytes of that layout,
#    adding into 16 x 16 int32 sums: 16384 products per instruction. x stays signed (no shift).
#    A work item keeps a 32 x 32 block of sums in four tiles (two row tiles
#    of x by two panels), stores it and runs step 3 on it.
# All paths give the same int32 sums, hence bit-identical outputs.
# Work items of MB rows x NB channels run in parallel; inside one, each
# strip of packed weights is reused by every register tile of rows.
# Tested against a NumPy integer reference (exact int sums, then the same
# float32 epilogue) in tests/test_matmul_int8.py, every path on every shape.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from std.math import ceildiv
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys._assembly import inlined_assembly
from .gelu import gelu_span
from .team import Team
from .amx import amx_configure, amx_permitted, amx_release, tile_load, tile_store, zero_sums
from .matmul_int8_tiles import (
    AMX,
    AMX_BLOCK,
    F32,
    GROUP,
    I8,
    I32,
    PANEL,
    VNNI,
    lanes,
    path_for,
    quantize_row,
    store_tile,
    strip_shift,
    tile_rows,
    tile_sums,
    tile_vectors,
)
from std.sys.info import CompilationTarget
from std.utils import StaticTuple

comptime ROWS_PER_QUANT_ITEM = 64
# Fewer rows stay on VNNI: a block pads them to 32, and decoder steps of 1-8
# rows measured slower on AMX (1 row: 2.5 against 2.0 ms a step); from 16 rows
# AMX won on the vocabulary projection (51864 x 384: 1.96 against 2.79 ms).
comptime AMX_MIN_ROWS = 16


@always_inline
def _amx_block[
    c_origin: MutOrigin, //
](a: Pointer[Int32, _], strip: Pointer[Int8, _], K4: Int, sums: Pointer[Int32, c_origin]):
    """sums [32, 32] (row-major) = the int32 sums of 32 quantized rows at a
    (K4 words each, K4 a multiple of 16) with the 32 channels of the two
    panels at strip. Tiles: 0-3 sums, 4-5 rows of x, 6-7 panels."""
    var a_stride = K4 * 4
    var panel_stride = K4 * GROUP
    zero_sums()
    for kb in range(K4 // 16):
        var a0 = a.unsafe_offset(kb * 16)
        var b0 = strip.unsafe_offset(kb * 16 * GROUP)
        tile_load[4](a0, a_stride)
        tile_load[5](a0.unsafe_offset(16 * K4), a_stride)
        tile_load[6](b0, GROUP)
        tile_load[7](b0.unsafe_offset(panel_stride), GROUP)
        inlined_assembly["tdpbssd %tmm6, %tmm4, %tmm0", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbssd %tmm7, %tmm4, %tmm1", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbssd %tmm6, %tmm5, %tmm2", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbssd %tmm7, %tmm5, %tmm3", NoneType, constraints="~{memory}"]()
    comptime row_bytes = AMX_BLOCK * 4
    tile_store[0](sums, row_bytes)
    tile_store[1](sums.unsafe_offset(PANEL), row_bytes)
    tile_store[2](sums.unsafe_offset(PANEL * AMX_BLOCK), row_bytes)
    tile_store[3](sums.unsafe_offset(PANEL * AMX_BLOCK + PANEL), row_bytes)


@always_inline
def _amx_store[
    y_origin: MutOrigin, //
](
    sums: Pointer[Int32, _],
    y: Pointer[Float32, y_origin],
    x_scale: Pointer[Float32, _],
    w_scale: Pointer[Float32, _],
    bias: Pointer[Float32, _],
    has_bias: Bool,
    m0: Int,
    n0: Int,
    M: Int,
    N: Int,
):
    """Step 3 for one AMX block, 16 rows at a time through store_tile."""
    comptime NR = AMX_BLOCK // PANEL
    var no_shift = StaticTuple[SIMD[I32, PANEL], NR](SIMD[I32, PANEL](0))
    comptime for half in range(AMX_BLOCK // PANEL):
        var acc = StaticTuple[SIMD[I32, PANEL], PANEL * NR](SIMD[I32, PANEL](0))
        comptime for r in range(PANEL):
            comptime for j in range(NR):
                acc[r * NR + j] = sums.unsafe_load[width=PANEL]((half * PANEL + r) * AMX_BLOCK + j * PANEL)
        store_tile[AMX, PANEL, PANEL, NR](acc, y, x_scale, w_scale, bias, no_shift, has_bias, m0 + half * PANEL, n0, M, N)


def quantized_words[path: Int](M: Int, K: Int) -> Int:
    """The int32 words of scratch `matmul_int8_cpu[path]` needs for M rows of K."""
    return ceildiv(M, tile_rows[path]()) * tile_rows[path]() * ceildiv(K, 4)  # whole tiles


def matmul_int8_cpu[
    y_origin: MutOrigin, //, path: Int, gelu: Bool = False
](
    xp: Pointer[Float32, _],
    wp: Pointer[Int8, _],
    sp: Pointer[Float32, _],
    bp: Pointer[Float32, _],
    yp: Pointer[Float32, y_origin],
    has_bias: Bool,
    M: Int,
    N: Int,
    K: Int,
    words: Pointer[Int32, MutUntrackedOrigin],
    x_scale: Pointer[Float32, MutUntrackedOrigin],
    mut team: Team,
):
    """Steps 1-3 on one inner-product path, spread as team says. words
    (quantized_words(M, K)) and x_scale (M) are the caller's scratch, shared
    by a team's members."""
    comptime L = lanes[path]()
    comptime MR = tile_rows[path]()
    comptime NR = tile_vectors[path]()
    comptime MB = 2 * AMX_BLOCK if path == AMX else 16 * MR  # rows per work item
    # Channels per work item; a team's members claim items as they come, and
    # 384 channels in items of 128 would leave one of two members a third.
    var NB = 64 if team.is_team() else 128
    var K4 = ceildiv(K, 4)
    var rows = ceildiv(M, MR) * MR  # padded to whole tiles with zero rows
    var zero_word = Int32(-2139062144) if path == VNNI else Int32(0)  # bytes 0x80 = q 0 shifted

    def quantize(item: Int) {xp, words, x_scale, M, K, K4, rows, zero_word}:
        for m in range(item * ROWS_PER_QUANT_ITEM, min(M, (item + 1) * ROWS_PER_QUANT_ITEM)):
            quantize_row[path](xp.unsafe_offset(m * K), K, words.unsafe_offset(m * K4), x_scale.unsafe_offset(m))
        if item == 0:
            for i in range(M * K4, rows * K4):
                words.unsafe_store(i, zero_word)

    # A decoder step's rows are one item: Team.items runs it on this thread.
    team.items(ceildiv(M, ROWS_PER_QUANT_ITEM), quantize)

    var n_blocks = ceildiv(N, NB)

    def block(item: Int) {words, x_scale, wp, sp, bp, yp, has_bias, M, N, K4, n_blocks, NB}:
        var m_start = (item // n_blocks) * MB
        var n_start = (item % n_blocks) * NB
        comptime if path == AMX:
            var cfg = unsafe_alloc[UInt8](64)
            var sums = unsafe_alloc[Int32](AMX_BLOCK * AMX_BLOCK)
            amx_configure(cfg)
            for n0 in range(n_start, min(N, n_start + NB), AMX_BLOCK):
                var strip = wp.unsafe_offset((n0 // PANEL) * K4 * GROUP)
                for m0 in range(m_start, min(M, m_start + MB), AMX_BLOCK):
                    _amx_block(words.unsafe_offset(m0 * K4), strip, K4, sums)
                    _amx_store(sums, yp, x_scale, sp, bp, has_bias, m0, n0, M, N)
            amx_release()
            cfg.unsafe_free()
            sums.unsafe_free()
        else:
            for n0 in range(n_start, min(N, n_start + NB), NR * L):
                var strip = wp.unsafe_offset((n0 // PANEL) * K4 * GROUP)
                var shift = strip_shift[path, L, NR](strip, K4)
                for m0 in range(m_start, min(M, m_start + MB), MR):
                    var a = words.unsafe_offset(m0 * K4)
                    var left = M - m0
                    # the strip's first reader asks ahead for its weights (on VNNI, strip_shift was)
                    var ahead = path != VNNI and m0 == m_start
                    if left >= MR:
                        store_tile[path, L, MR, NR](tile_sums[path, L, MR, NR](a, strip, K4, ahead), yp, x_scale, sp, bp, shift, has_bias, m0, n0, M, N)
                    else:
                        # the last rows: a tile of just those (a decoder step has 1-8 rows,
                        # where a full tile would spend most of its products on padding)
                        comptime for R in range(1, MR):
                            if left == R:
                                store_tile[path, L, R, NR](tile_sums[path, L, R, NR](a, strip, K4, ahead), yp, x_scale, sp, bp, shift, has_bias, m0, n0, M, N)
        comptime if gelu:  # over the item's finished block, while it is in cache
            for m in range(m_start, min(M, m_start + MB)):
                gelu_span(yp, m * N + n_start, m * N + min(N, n_start + NB))

    team.items(ceildiv(M, MB) * n_blocks, block)


def _matmul[
    y_origin: MutOrigin, //, path: Int, gelu: Bool
](
    xp: Pointer[Float32, _],
    wp: Pointer[Int8, _],
    sp: Pointer[Float32, _],
    bp: Pointer[Float32, _],
    yp: Pointer[Float32, y_origin],
    has_bias: Bool,
    M: Int,
    N: Int,
    K: Int,
):
    """matmul_int8_cpu through MAX's pool, with scratch of its own."""
    var words = unsafe_alloc[Int32](quantized_words[path](M, K))
    var x_scale = unsafe_alloc[Float32](M)
    var pool = Team.pool()
    matmul_int8_cpu[path, gelu](xp, wp, sp, bp, yp, has_bias, M, N, K, words, x_scale, pool)
    words.unsafe_free()
    x_scale.unsafe_free()


@extensibility.register("matmul_int8")
struct MatmulInt8:
    @staticmethod
    def execute[
        target: StaticString, isa: StaticString, gelu: Bool
    ](
        y: OutputTensor[dtype=F32, rank=2, ...],
        x: InputTensor[dtype=F32, rank=2, ...],
        w: InputTensor[dtype=I8, rank=2, ...],
        w_scale: InputTensor[dtype=F32, rank=1, ...],
        bias: InputTensor[dtype=F32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu":
            raise Error("matmul_int8: no GPU path yet")
        comptime if isa == "avx2" and not CompilationTarget.has_avx2():
            raise Error("matmul_int8: the AVX2 path was requested on a CPU without AVX2")
        comptime path = path_for[isa]()
        var M = x.dim_size(0)
        var K = x.dim_size(1)
        var N = w_scale.dim_size(0)
        var K4 = ceildiv(K, 4)
        var P = w.dim_size(0)
        if w.dim_size(1) != K4 * GROUP or P % 4 != 0 or P * PANEL < N:
            raise Error("matmul_int8: packed weights [", P, ", ", w.dim_size(1), "] do not fit K=", K, ", N=", N)
        var has_bias = bias.dim_size(0) > 0
        if has_bias and bias.dim_size(0) != N:
            raise Error("matmul_int8: ", bias.dim_size(0), " biases for ", N, " channels")
        if M == 0 or N == 0:
            return
        var xp = x.unsafe_ptr()
        var wp = w.unsafe_ptr()
        var sp = w_scale.unsafe_ptr()
        var bp = bias.unsafe_ptr()
        var yp = y.unsafe_ptr()
        comptime if path == VNNI and isa == "native":
            if M >= AMX_MIN_ROWS and K % 64 == 0 and amx_permitted():
                _matmul[AMX, gelu](xp, wp, sp, bp, yp, has_bias, M, N, K)
                return
        _matmul[path, gelu](xp, wp, sp, bp, yp, has_bias, M, N, K)
