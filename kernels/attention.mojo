# Fused scaled-dot-product attention with an online (streaming) softmax.
#
# Op "attention":  out = softmax(scale * q @ k^T + mask) @ v
# Layout: q [B, H, Tq, D], k and v [Bk, H, Tk, D], out [B, H, Tq, D], row-major;
#         B is a multiple of Bk and query row b reads key/value row
#         b // (B / Bk), so beams share one copy of their audio's keys;
#         scale is a runtime [1] float32 tensor so one compiled graph serves
#         every head size; `causal` (compile-time) lets query i see keys
#         0 .. Tk - Tq + i, so one new token can attend over a KV cache;
#         `bf16` (compile-time) lets a non-causal call with D = 64 and at
#         least AMX_MIN_ROWS query rows per key/value head run on AMX tiles
#         in bfloat16 where the CPU and OS allow it (attention_amx.mojo; the
#         int8 encoder), else it changes nothing.
# Rows: the B / Bk query batches that share one key/value head are treated
# as one set of group * Tq query rows, so every key is read once per head
# however many beams attend to it.
# Algorithm (FlashAttention-2 style, CPU). Keys are visited in tiles; the
# running max m, normaliser l and output accumulator O of each row are
# rescaled per tile, so the Tq x Tk score matrix never exists. Two paths:
# - Tiled (many rows, e.g. the encoder's 1500): a work item is one head and
#   a block of BQ rows. Q is packed transposed ([D][BQ], pre-scaled), so the
#   scores come out with queries in the SIMD lanes: S^T = K Q^T takes each
#   K element as a broadcast straight from k's rows (K is never transposed)
#   against QV query vectors, KJ keys x QV vectors of accumulators in
#   registers; the softmax's max and sum over keys are then lane-wise, with
#   no horizontal reductions. O += P V holds RG rows x D of O in registers
#   and broadcasts each row's probability against V's rows.
# - Direct (a few rows: decoding, beams): lanes over D. Each key's dot
#   product with a row is a few vector FMAs; W keys' partial sums are
#   reduced together by a transpose-and-add tree into one vector of W
#   scores. O += P V reuses each loaded V row for up to 6 rows. Each
#   thread takes one contiguous run of (audio, head) items, so it streams
#   its keys and values in address order.
# D = 64 (Whisper) is compiled as a constant; other D take the same code
# with a runtime D (the direct path needs D % W == 0, else the tiled path).
# Work items run in parallel, except small calls (SERIAL_WORK).
# Tested against a NumPy float64 softmax reference in tests/test_attention.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from .attention_gpu import attention_gpu
from .attention_amx import attention_amx
from .amx import amx_permitted
from .exp2 import exp_nonpositive
from .strides import Strides
from .team import Team
from std.math import ceildiv, iota
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys.info import CompilationTarget, simd_width_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
comptime LOG_W = 4 if W == 16 else (3 if W == 8 else 2)
comptime NEG = -Float32.MAX  # masked score: exp(NEG - m) is 0 for any real m
# Register blocking is chosen per instruction set at compile time: AVX-512
# and NEON have 32 vector registers, AVX2 16. Tiled path: QV * KJ score
# accumulators plus QV query vectors and one broadcast key, and RG rows x
# NC vectors of O accumulators plus NC loaded V vectors (_pv_vectors), must stay in
# registers; blocks sized for 32 spill on AVX2 (its attention ran at 0.67x
# MAX's there while 1.16x on AVX-512).
comptime VREGS = 32 if (CompilationTarget.has_avx512f() or CompilationTarget.has_neon()) else 16
comptime QV = 2  # query vectors per block
comptime BQ = QV * W  # query rows per work item
comptime KJ = 12 if VREGS == 32 else 6  # keys per score register tile
comptime BK = 48  # keys per tile (a multiple of KJ): its scores, V rows and O stay in L1
comptime RG = 4  # rows per O register tile
# Up to this many (query, key, d) products (about 20 us on one core here:
# one token over 448 keys) one thread beats waking the parallel workers;
# measured idle, one token over 1500 keys already ran faster on two.
comptime SERIAL_WORK = 1 << 18
# Direct path: at most SMALL rows per head; keys per tile.
comptime SMALL = 8
comptime BKD = 4 * W


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
def _pv[
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


@always_inline
def _tiled[
    o_origin: MutOrigin, //, dtype: DType, kvd: DType, DK: Int, causal: Bool
](
    q: Pointer[Scalar[dtype], _],
    k: Pointer[Scalar[kvd], _],
    v: Pointer[Scalar[kvd], _],
    o: Pointer[Scalar[dtype], o_origin],
    row_off: Pointer[Int, _],
    row_last: Pointer[Int32, _],
    nr: Int,
    Tk: Int,
    D_runtime: Int,
    scale: Float32,
):
    """Attends nr <= BQ rows (row r at q/o offset row_off[r], seeing keys
    0 .. row_last[r]) over one head's k and v."""
    var D = DK if DK > 0 else D_runtime
    var qt = unsafe_alloc[Float32](D * BQ)
    var st = unsafe_alloc[Float32](BK * BQ)
    var acc = unsafe_alloc[Float32](BQ * D)
    var last = unsafe_alloc[Int32](BQ)
    var corr = unsafe_alloc[Float32](BQ)
    var key_end = 0
    var min_last = Tk
    for r in range(BQ):
        var lr = Tk - 1
        if r < nr:
            lr = Int(row_last.unsafe_load(r))
            key_end = max(key_end, lr + 1)
            min_last = min(min_last, lr)
        last.unsafe_store(r, Int32(lr))
        for d in range(D):
            var x: Float32 = 0
            if r < nr:
                x = q.unsafe_load(row_off.unsafe_load(r) + d).cast[F32]() * scale
            qt.unsafe_store(d * BQ + r, x)
    for x in range(BQ * D):
        acc.unsafe_store(x, 0)

    var m = StaticTuple[SIMD[F32, W], QV](SIMD[F32, W](NEG))
    var l = StaticTuple[SIMD[F32, W], QV](SIMD[F32, W](0))
    for k0 in range(0, key_end, BK):
        var nk = min(BK, key_end - k0)
        var hide_late = causal and k0 + nk - 1 > min_last
        var m_new = m
        # Scores S^T[j, r] for the tile, KJ keys at a time, and their running
        # max. Keys past the end read the last key instead and are masked,
        # as are keys hidden by causality (NEG never raises the max).
        for j0 in range(0, nk, KJ):
            var koff = StaticTuple[Int, KJ](0)
            comptime for jj in range(KJ):
                koff[jj] = min(k0 + j0 + jj, Tk - 1) * D
            var s = StaticTuple[SIMD[F32, W], KJ * QV](SIMD[F32, W](0))
            for d in range(D):
                var qv = StaticTuple[SIMD[F32, W], QV](SIMD[F32, W](0))
                comptime for c in range(QV):
                    qv[c] = qt.unsafe_load[width=W](d * BQ + c * W)
                comptime for jj in range(KJ):
                    var kb = SIMD[F32, W](k.unsafe_load(koff[jj] + d).cast[F32]())
                    comptime for c in range(QV):
                        s[jj * QV + c] = qv[c].fma(kb, s[jj * QV + c])
            var masked = hide_late or j0 + KJ > nk
            comptime for jj in range(KJ):
                comptime for c in range(QV):
                    var sj = s[jj * QV + c]
                    if masked:
                        var key = SIMD[DType.int32, W](Int32(k0 + j0 + jj))
                        var hidden = last.unsafe_load[width=W](c * W).lt(key)
                        if j0 + jj >= nk:
                            hidden = SIMD[DType.bool, W](fill=True)
                        sj = hidden.select(SIMD[F32, W](NEG), sj)
                    m_new[c] = max(m_new[c], sj)
                    st.unsafe_store((j0 + jj) * BQ + c * W, sj)

        comptime for c in range(QV):
            var cr = exp_nonpositive[W](m[c] - m_new[c])
            corr.unsafe_store(c * W, cr)
            l[c] = l[c] * cr
        for j in range(nk):
            comptime for c in range(QV):
                var pj = exp_nonpositive[W](st.unsafe_load[width=W](j * BQ + c * W) - m_new[c])
                st.unsafe_store(j * BQ + c * W, pj)
                l[c] = l[c] + pj
        m = m_new

        var vt = v.unsafe_offset(k0 * D)
        for r0 in range(0, nr, RG):
            _pv[kvd, RG](acc.unsafe_offset(r0 * D), st.unsafe_offset(r0), BQ, 1, corr.unsafe_offset(r0), vt, nk, D)

    comptime for c in range(QV):
        corr.unsafe_store(c * W, 1.0 / l[c])
    for r in range(nr):
        var inv = corr.unsafe_load(r)
        var orow = o.unsafe_offset(row_off.unsafe_load(r))
        for d in range(D):
            orow.unsafe_store(d, (acc.unsafe_load(r * D + d) * inv).cast[dtype]())
    qt.unsafe_free()
    st.unsafe_free()
    acc.unsafe_free()
    last.unsafe_free()
    corr.unsafe_free()


@always_inline
def _sum_lanes(x: StaticTuple[SIMD[F32, W], W]) -> SIMD[F32, W]:
    """Lane j of the result is the sum of x[j]'s lanes: at each level
    adjacent vectors are interleaved and their neighbouring lanes added,
    halving the vectors and doubling the keys per vector."""
    var t = x
    comptime for level in range(LOG_W):
        comptime for i in range(W >> (level + 1)):
            var pair = t[2 * i].join(t[2 * i + 1]).deinterleave()
            t[i] = rebind[SIMD[F32, W]](pair[0] + pair[1])
    return t[0]


@always_inline
def _dot[kd: DType, //, DK: Int](q: Pointer[Float32, _], k: Pointer[Scalar[kd], _], D: Int) -> SIMD[F32, W]:
    """Lane-wise partial sums of q . k over D (a multiple of W; DK if > 0)."""
    var t = SIMD[F32, W](0)
    comptime if DK > 0:
        comptime for d in range(0, DK, W):
            t = q.unsafe_load[width=W](d).fma(k.unsafe_load[width=W](d).cast[F32](), t)
    else:
        for d in range(0, D, W):
            t = q.unsafe_load[width=W](d).fma(k.unsafe_load[width=W](d).cast[F32](), t)
    return t


@always_inline
def _key_scales(s: Pointer[Float32, _], t0: Int, Tk: Int) -> SIMD[F32, W]:
    """The scales of keys t0 .. t0 + W - 1, 0 past Tk (never read past the array)."""
    if t0 + W <= Tk:
        return s.unsafe_load[width=W](t0)
    var out = SIMD[F32, W](0)
    for j in range(max(0, Tk - t0)):
        out[j] = s.unsafe_load(t0 + j)
    return out


@always_inline
def _direct[
    o_origin: MutOrigin, //, dtype: DType, kvd: DType, DK: Int, causal: Bool, scaled: Bool
](
    q: Pointer[Scalar[dtype], _],
    k: Pointer[Scalar[kvd], _],
    v: Pointer[Scalar[kvd], _],
    ks: Pointer[Float32, _],
    vs: Pointer[Float32, _],
    o: Pointer[Scalar[dtype], o_origin],
    row_off: Pointer[Int, _],
    row_last: Pointer[Int32, _],
    nr: Int,
    Tk: Int,
    D_runtime: Int,
    scale: Float32,
):
    """Attends nr <= SMALL rows over one head; D must be a multiple of W.
    scaled: key and value t are ks[t] * k[t] and vs[t] * v[t] (int8 rows with
    a scale each, see attention_int8kv.mojo); a score is scaled after its dot
    product, a probability before it weighs its value row, and the
    normaliser sums the probabilities themselves."""
    var D = DK if DK > 0 else D_runtime
    var qs = unsafe_alloc[Float32](SMALL * D)
    var p = unsafe_alloc[Float32](BKD * SMALL)
    var acc = unsafe_alloc[Float32](SMALL * D)
    var m = unsafe_alloc[Float32](SMALL)
    var l = unsafe_alloc[Float32](SMALL)
    var corr = unsafe_alloc[Float32](SMALL)
    var key_end = 0
    for r in range(SMALL):
        m.unsafe_store(r, NEG)
        l.unsafe_store(r, 0)
        corr.unsafe_store(r, 0)
        for d in range(D):
            var x: Float32 = 0
            if r < nr:
                x = q.unsafe_load(row_off.unsafe_load(r) + d).cast[F32]() * scale
            qs.unsafe_store(r * D + d, x)
            acc.unsafe_store(r * D + d, 0)
    for r in range(nr):
        key_end = max(key_end, Int(row_last.unsafe_load(r)) + 1)

    # Keys past Tk in the last block of W are read from a zero-padded copy.
    var tail0 = (Tk // W) * W
    var tail = unsafe_alloc[Float32](W * D)
    for x in range(W * D):
        var val: Float32 = 0
        if tail0 * D + x < Tk * D:
            val = k.unsafe_load(tail0 * D + x).cast[F32]()
            comptime if scaled:
                val *= ks.unsafe_load(tail0 + x // D)
        tail.unsafe_store(x, val)

    for k0 in range(0, key_end, BKD):
        var nk = min(BKD, key_end - k0)
        for r in range(nr):
            var qr = qs.unsafe_offset(r * D)
            var visible = min(Int(row_last.unsafe_load(r)) + 1, k0 + nk)
            var mx = SIMD[F32, W](m.unsafe_load(r))
            for j0 in range(0, nk, W):
                var parts = StaticTuple[SIMD[F32, W], W](SIMD[F32, W](0))
                if k0 + j0 < tail0:
                    var kb = k.unsafe_offset((k0 + j0) * D)
                    comptime for jj in range(W):
                        parts[jj] = _dot[DK](qr, kb.unsafe_offset(jj * D), D)
                else:
                    comptime for jj in range(W):
                        parts[jj] = _dot[DK](qr, tail.unsafe_offset(jj * D), D)
                var dots = _sum_lanes(parts)
                comptime if scaled:
                    if k0 + j0 < tail0:  # the tail copy holds scaled keys already
                        dots *= ks.unsafe_load[width=W](k0 + j0)
                var keys = iota[DType.int32, W](Int32(k0 + j0))
                var s = keys.lt(Int32(visible)).select(dots, SIMD[F32, W](NEG))
                p.unsafe_store(r * BKD + j0, s)
                mx = max(mx, s)
            var m_new = mx.reduce_max()
            var sum = SIMD[F32, W](0)
            for j0 in range(0, nk, W):
                var e = exp_nonpositive[W](p.unsafe_load[width=W](r * BKD + j0) - m_new)
                sum += e
                comptime if scaled:
                    e *= _key_scales(vs, k0 + j0, Tk)
                p.unsafe_store(r * BKD + j0, e)
            var cr = exp_nonpositive[1](m.unsafe_load(r) - m_new)
            corr.unsafe_store(r, cr)
            l.unsafe_store(r, l.unsafe_load(r) * cr + sum.reduce_add())
            m.unsafe_store(r, m_new)
        var vt = v.unsafe_offset(k0 * D)
        var r0 = 0
        while r0 < nr:
            var n = min(nr - r0, 6)
            var a = acc.unsafe_offset(r0 * D)
            var pr = p.unsafe_offset(r0 * BKD)
            var c = corr.unsafe_offset(r0)
            comptime for R in range(1, 7):
                if n == R:
                    _pv[kvd, R](a, pr, 1, BKD, c, vt, nk, D)
            r0 += n

    for r in range(nr):
        var inv = 1.0 / l.unsafe_load(r)
        var orow = o.unsafe_offset(row_off.unsafe_load(r))
        for d in range(D):
            orow.unsafe_store(d, (acc.unsafe_load(r * D + d) * inv).cast[dtype]())
    qs.unsafe_free()
    p.unsafe_free()
    acc.unsafe_free()
    tail.unsafe_free()
    m.unsafe_free()
    l.unsafe_free()
    corr.unsafe_free()


def attention_cpu[
    o_origin: MutOrigin, //, dtype: DType, kvd: DType, causal: Bool, scaled: Bool = False
](
    q: Pointer[Scalar[dtype], _],
    k: Pointer[Scalar[kvd], _],
    v: Pointer[Scalar[kvd], _],
    ks: Pointer[Float32, _],
    vs: Pointer[Float32, _],
    o: Pointer[Scalar[dtype], o_origin],
    B: Int,
    Bk: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    scale: Float32,
    rows_at: Strides,
    mut team: Team,
):
    """The CPU paths on checked arguments, spread as team says. rows_at: the
    layout of q's and o's rows (Strides.heads_outer for the op's [B, H, Tq, D])."""
    var group = B // Bk
    var rows = group * Tq
    var direct = rows <= SMALL and D % W == 0
    var block = SMALL if direct else BQ
    var blocks = ceildiv(rows, block)

    def work(item: Int) {q, k, v, ks, vs, o, H, Tq, Tk, D, scale, group, rows, direct, block, blocks, rows_at}:
        var kvh = item // blocks  # bk * H + h
        var r0 = (item % blocks) * block
        var nr = min(block, rows - r0)
        var bk = kvh // H
        var h = kvh % H
        var row_off = unsafe_alloc[Int](block)
        var row_last = unsafe_alloc[Int32](block)
        for r in range(nr):
            var g = (r0 + r) // Tq
            var i = (r0 + r) % Tq
            row_off.unsafe_store(r, rows_at.at(bk * group + g, h, i))
            row_last.unsafe_store(r, Int32(Tk - Tq + i if causal else Tk - 1))
        var kv = kvh * Tk * D
        var kp = k.unsafe_offset(kv)
        var vp = v.unsafe_offset(kv)
        var ksp = ks.unsafe_offset(kvh * Tk)
        var vsp = vs.unsafe_offset(kvh * Tk)
        if direct:
            if D == 64:
                _direct[dtype, kvd, 64, causal, scaled](q, kp, vp, ksp, vsp, o, row_off, row_last, nr, Tk, D, scale)
            else:
                _direct[dtype, kvd, 0, causal, scaled](q, kp, vp, ksp, vsp, o, row_off, row_last, nr, Tk, D, scale)
        else:
            # scaled keys never get here: attention_int8kv dequantizes them for many rows
            comptime if not scaled:
                if D == 64:
                    _tiled[dtype, kvd, 64, causal](q, kp, vp, o, row_off, row_last, nr, Tk, D, scale)
                else:
                    _tiled[dtype, kvd, 0, causal](q, kp, vp, o, row_off, row_last, nr, Tk, D, scale)
        row_off.unsafe_free()
        row_last.unsafe_free()

    var n_items = Bk * H * blocks
    if not team.is_team() and B * H * Tq * Tk * D <= SERIAL_WORK:
        for i in range(n_items):
            work(i)
    elif direct:
        # A few rows read every key and value once: one run of items per
        # thread (8 audios of float32 keys and values, 37 MB: 1.17-1.20
        # against 1.20-1.37 ms handed out item by item, Zen 3).
        team.runs(n_items, work)
    else:
        team.items(n_items, work)


# The AMX path packs each head's keys and values into tiles before any
# product, which few query rows do not repay: 6 heads over 1500 keys on the
# Intel Xeon (model 207), AMX against float32, 1 row 2.0 ms against 1.0
# (through ops.attention, about 0.8 ms of it the call), 64 rows 3.0 against
# 2.5, 96 rows even, 128 rows 2.4 against 2.8, 1500 rows 7.7 against 14.9.
comptime AMX_MIN_ROWS = 128


@extensibility.register("attention")
struct Attention:
    @staticmethod
    def execute[
        target: StaticString, causal: Bool, bf16: Bool
    ](
        output: OutputTensor[rank=4, ...],
        q: InputTensor[dtype=output.dtype, rank=4, ...],
        k: InputTensor[rank=4, ...],
        v: InputTensor[dtype=k.dtype, rank=4, ...],
        scale: InputTensor[dtype=DType.float32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target == "gpu":
            comptime if k.dtype != output.dtype:
                raise Error("attention: the GPU path takes keys and values in the queries' dtype")
            else:
                attention_gpu[output.dtype, causal](
                    q.unsafe_ptr(), rebind[Pointer[Scalar[output.dtype], MutAnyOrigin]](k.unsafe_ptr()),
                    rebind[Pointer[Scalar[output.dtype], MutAnyOrigin]](v.unsafe_ptr()),
                    output.unsafe_ptr(), scale.unsafe_ptr(),
                    q.dim_size(0), k.dim_size(0), q.dim_size(1), q.dim_size(2), k.dim_size(2), q.dim_size(3), ctx,
                )
            return
        comptime if target != "cpu":
            raise Error("attention: no path for target ", target)
        # Every CPU with AMX has AVX-512: a kernel compiled for a target without it (an AVX2
        # build, MAXWHISPER_CPU_TARGET) stands for a CPU without AMX even on a host with it.
        comptime if bf16 and not causal and CompilationTarget.has_avx512f():
            var rows = q.dim_size(0) // k.dim_size(0) * q.dim_size(2)
            if q.dim_size(3) == 64 and rows >= AMX_MIN_ROWS and amx_permitted():
                attention_amx(
                    q.unsafe_ptr(), k.unsafe_ptr(), v.unsafe_ptr(), output.unsafe_ptr(),
                    q.dim_size(0), k.dim_size(0), q.dim_size(1), q.dim_size(2), k.dim_size(2),
                    scale.unsafe_ptr().unsafe_load(0),
                )
                return
        var no_scales = scale.unsafe_ptr()  # read only by the scaled variant
        var pool = Team.pool()
        attention_cpu[output.dtype, k.dtype, causal](
            q.unsafe_ptr(),
            k.unsafe_ptr(),
            v.unsafe_ptr(),
            no_scales,
            no_scales,
            output.unsafe_ptr(),
            q.dim_size(0),
            k.dim_size(0),
            q.dim_size(1),
            q.dim_size(2),
            k.dim_size(2),
            q.dim_size(3),
            scale.unsafe_ptr().unsafe_load(0),
            Strides.heads_outer(q.dim_size(1), q.dim_size(2), q.dim_size(3)),
            pool,
        )
