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
# The four bytes of a group sit in one 32-bit lane, as the instructions
# below want them. Inner product per instruction set, picked at compile time
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
#  - AMX (Intel Sapphire Rapids and later, see amx.mojo), taken by "native"
#    at run time for 16 rows or more when Linux grants this process the tile
#    registers and K is a multiple of 64. tdpbssd multiplies a tile of 16
#    rows x 64 signed bytes of x by a tile of 16 groups of the packed weights
#    (one panel, 64 k), which is exactly 16 rows of 64 bytes of that layout,
#    adding into 16 x 16 int32 sums: 16384 products per instruction. x stays signed (no shift).
#    A work item keeps a 32 x 32 block of sums in four tiles (two row tiles
#    of x by two panels), stores it and runs step 3 on it.
#  - portable (other CPUs): widen to int32, multiply, add.
# All paths give the same int32 sums, hence bit-identical outputs.
# Blocking: MR rows x NR vectors of int32 accumulators stay in registers
# over all of K (AVX-512: 6 x 4 zmm = 24 of 32 registers; AVX2: 4 x 2 ymm =
# 8 of 16, with the sign trick's temporaries). Work items of MB rows x NB
# channels run in parallel; inside one, each NR-vector strip of packed
# weights is reused by every MR-row tile. Rows past the last whole tile get a
# tile of their own height, so a 1-row decoder step computes one row.
# Tested against a NumPy integer reference (exact int sums, then the same
# float32 epilogue) in tests/test_matmul_int8.py, every path on every shape.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from std.math import ceildiv
from std.memory import Pointer, bitcast
from std.memory.alloc import unsafe_alloc
from std.sys._assembly import inlined_assembly
from .prefetch import prefetch_line
from .gelu import gelu_span
from .team import Team
from .amx import amx_configure, amx_permitted, amx_release, tile_load, tile_store, zero_sums
from std.sys.info import CompilationTarget, simd_width_of
from std.sys.intrinsics import llvm_intrinsic
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime I32 = DType.int32
comptime I8 = DType.int8
comptime PANEL = 16  # output channels per packed panel
comptime GROUP = 4 * PANEL  # bytes per panel and group of 4 k
comptime FW = simd_width_of[F32]()
comptime ROWS_PER_QUANT_ITEM = 64
# The first tile over a strip requests its weights this many groups (64 bytes
# each) ahead: a decoder step reads every weight once, and the hardware
# prefetcher alone left the 1-row tile waiting on memory (see linear.mojo).
comptime PF_GROUPS = 64

comptime VNNI = 0
comptime AVX2 = 1
comptime PORTABLE = 2
comptime AMX = 3
comptime AMX_BLOCK = 32  # rows and channels of the sums one AMX block holds in 4 tiles
# Fewer rows stay on VNNI: a block pads them to 32, and decoder steps of 1-8
# rows measured slower on AMX (1 row: 2.5 against 2.0 ms a step); from 16 rows
# AMX won on the vocabulary projection (51864 x 384: 1.96 against 2.79 ms).
comptime AMX_MIN_ROWS = 16


def _path[isa: StaticString]() -> Int:
    comptime if (isa == "native" or isa == "vnni") and CompilationTarget.has_avx512f() and CompilationTarget.has_vnni():
        return VNNI
    comptime if isa != "portable" and CompilationTarget.has_avx2():
        return AVX2
    return PORTABLE


def _lanes[path: Int]() -> Int:
    """int32 lanes per vector."""
    comptime if path == VNNI or path == AMX:
        return 16
    comptime if path == AVX2:
        return 8
    return min(PANEL, simd_width_of[I32]())


def _tile_rows[path: Int]() -> Int:
    """Rows per register tile; AMX: rows per block (two tiles)."""
    comptime if path == AMX:
        return AMX_BLOCK
    return 6 if path == VNNI else 4


def _tile_vectors[path: Int]() -> Int:
    comptime if path == AMX:
        return AMX_BLOCK // PANEL
    return 4 if path == VNNI else PANEL // _lanes[path]()


@always_inline
def _dot4[
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
def _prefetch_panels[L: Int, NR: Int](w: Pointer[Int8, _], panel_stride: Int, g: Int):
    """Asks for group g + PF_GROUPS of each panel that a strip of NR * L
    channels starts in (a group of one panel is one 64-byte line)."""
    comptime for j in range(NR):
        comptime if (j * L) % PANEL == 0:
            prefetch_line(w, ((j * L) // PANEL) * panel_stride + (g + PF_GROUPS) * GROUP)


@always_inline
def _tile[
    path: Int, L: Int, MR: Int, NR: Int
](a: Pointer[Int32, _], w: Pointer[Int8, _], K4: Int, ahead: Bool) -> StaticTuple[SIMD[I32, L], MR * NR]:
    """int32 sums of MR quantized rows (a: one 32-bit word per group of 4 k,
    K4 words per row) with NR * L packed channels starting at w (a panel);
    ahead: prefetch the panels' groups PF_GROUPS ahead (the strip's first tile,
    where _shift has not read it already)."""
    var acc = StaticTuple[SIMD[I32, L], MR * NR](SIMD[I32, L](0))
    var panel_stride = K4 * GROUP
    for g in range(K4):
        if ahead:
            _prefetch_panels[L, NR](w, panel_stride, g)
        var b = StaticTuple[SIMD[I8, 4 * L], NR](SIMD[I8, 4 * L](0))
        comptime for j in range(NR):
            comptime offset = ((j * L) % PANEL) * 4
            b[j] = w.unsafe_load[width=4 * L](((j * L) // PANEL) * panel_stride + g * GROUP + offset)
        comptime for r in range(MR):
            var av = bitcast[I8, 4 * L](SIMD[I32, L](a.unsafe_load(r * K4 + g)))
            var a_abs = abs(av) if path == AVX2 else av
            comptime for j in range(NR):
                acc[r * NR + j] = _dot4[path, L](acc[r * NR + j], av, a_abs, b[j])
    return acc


@always_inline
def _shift[path: Int, L: Int, NR: Int](w: Pointer[Int8, _], K4: Int) -> StaticTuple[SIMD[I32, L], NR]:
    """VNNI only: 128 * sum_k q_w[n, k] for the NR * L channels of a strip,
    summed by vpdpbusd with ones while the strip is about to be read anyway
    (once per call, serially, it cost a whole extra pass over the weights)."""
    var sums = StaticTuple[SIMD[I32, L], NR](SIMD[I32, L](0))
    comptime if path == VNNI:
        var ones = SIMD[I8, 4 * L](1)
        var panel_stride = K4 * GROUP
        for g in range(K4):
            _prefetch_panels[L, NR](w, panel_stride, g)
            comptime for j in range(NR):
                comptime offset = ((j * L) % PANEL) * 4
                var b = w.unsafe_load[width=4 * L](((j * L) // PANEL) * panel_stride + g * GROUP + offset)
                sums[j] = _dot4[path, L](sums[j], ones, ones, b)
        comptime for j in range(NR):
            sums[j] = sums[j] * 128
    return sums


@always_inline
def _store[
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
def _quantize_row[
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
    """Step 3 for one AMX block, 16 rows at a time through _store."""
    comptime NR = AMX_BLOCK // PANEL
    var no_shift = StaticTuple[SIMD[I32, PANEL], NR](SIMD[I32, PANEL](0))
    comptime for half in range(AMX_BLOCK // PANEL):
        var acc = StaticTuple[SIMD[I32, PANEL], PANEL * NR](SIMD[I32, PANEL](0))
        comptime for r in range(PANEL):
            comptime for j in range(NR):
                acc[r * NR + j] = sums.unsafe_load[width=PANEL]((half * PANEL + r) * AMX_BLOCK + j * PANEL)
        _store[AMX, PANEL, PANEL, NR](acc, y, x_scale, w_scale, bias, no_shift, has_bias, m0 + half * PANEL, n0, M, N)


def quantized_words[path: Int](M: Int, K: Int) -> Int:
    """The int32 words of scratch `matmul_int8_cpu[path]` needs for M rows of K."""
    return ceildiv(M, _tile_rows[path]()) * _tile_rows[path]() * ceildiv(K, 4)  # whole tiles


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
    comptime L = _lanes[path]()
    comptime MR = _tile_rows[path]()
    comptime NR = _tile_vectors[path]()
    comptime MB = 2 * AMX_BLOCK if path == AMX else 16 * MR  # rows per work item
    # Channels per work item; a team's members claim items as they come, and
    # 384 channels in items of 128 would leave one of two members a third.
    var NB = 64 if team.is_team() else 128
    var K4 = ceildiv(K, 4)
    var rows = ceildiv(M, MR) * MR  # padded to whole tiles with zero rows
    var zero_word = Int32(-2139062144) if path == VNNI else Int32(0)  # bytes 0x80 = q 0 shifted

    def quantize(item: Int) {xp, words, x_scale, M, K, K4, rows, zero_word}:
        for m in range(item * ROWS_PER_QUANT_ITEM, min(M, (item + 1) * ROWS_PER_QUANT_ITEM)):
            _quantize_row[path](xp.unsafe_offset(m * K), K, words.unsafe_offset(m * K4), x_scale.unsafe_offset(m))
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
                var shift = _shift[path, L, NR](strip, K4)
                for m0 in range(m_start, min(M, m_start + MB), MR):
                    var a = words.unsafe_offset(m0 * K4)
                    var left = M - m0
                    # the strip's first reader asks ahead for its weights (on VNNI, _shift was)
                    var ahead = path != VNNI and m0 == m_start
                    if left >= MR:
                        _store[path, L, MR, NR](_tile[path, L, MR, NR](a, strip, K4, ahead), yp, x_scale, sp, bp, shift, has_bias, m0, n0, M, N)
                    else:
                        # the last rows: a tile of just those (a decoder step has 1-8 rows,
                        # where a full tile would spend most of its products on padding)
                        comptime for R in range(1, MR):
                            if left == R:
                                _store[path, L, R, NR](_tile[path, L, R, NR](a, strip, K4, ahead), yp, x_scale, sp, bp, shift, has_bias, m0, n0, M, N)
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
        comptime path = _path[isa]()
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
