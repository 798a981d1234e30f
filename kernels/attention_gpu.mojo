# GPU branch of "attention" (and the attention half of "cached_attention",
# kv_cache_gpu.mojo): softmax(scale q k^T) v with an online softmax, so the
# Tq x Tk score matrix never exists.
#
# Layouts (as in attention.mojo / kv_cache.mojo, row-major): q and out
# [B, H, Tq, D]; k and v [Bk, H, Tk, D], query row b reading key/value row
# b // (B / Bk) (beams share their audio's keys); causal: query i sees keys
# 0 .. Tk - Tq + i. For the KV cache, key t of token row b is cache row
# lineage[b, t] at position t ([R, H, CTX, D]).
# Head sizes up to 128 are compiled in three widths DK = 32, 64, 128; a head
# of D < DK is zero-padded in registers (Whisper's is 64 in every size).
#
# Two kernels, by the number of query rows per key/value head:
# - _rows_kernel (many rows: the encoder's 1500, a prompt): FlashAttention-2
#   style. A block is BQ query rows of one head, one thread per row with its
#   pre-scaled q and its output accumulator in registers; the block stages
#   BK keys and values at a time in shared memory (coalesced 16-byte global
#   loads), every thread reads them as 16-byte broadcasts, takes BK scores,
#   rescales its running max, normaliser and accumulator once per tile.
#   Tiles past the block's last visible key are skipped.
# - _split_kernel (a few rows: decoder steps, cross attention over 1500
#   keys): a block of SPLIT_WARPS warps per query row splits the keys; each
#   lane holds DK / 32 adjacent dims, a key's score is a butterfly sum over
#   the warp, and every warp keeps its own online softmax; the warps' (max,
#   normaliser, accumulator) are merged through shared memory at the end.
#   Through the lineage table the same kernel reads the in-place KV cache.
# Scores are kept in base 2 (q pre-multiplied by scale * log2 e, exp2), which
# lowers to ex2.approx: GPU results are checked with looser tolerances than
# the CPU's (tests/test_gpu_kernels.py). fp32 accumulation throughout.
# Compile-checked for sm_90 / sm_80 / gfx942 by maxwhisper_kernels.gpu_check.
from max.gpu import thread_idx, block_idx, barrier, MAX_THREADS_PER_BLOCK_METADATA
from max.gpu.host import DeviceContext
from max.gpu.memory import AddressSpace
from .gpu_reduce import warp_sum
from std.math import ceildiv, exp2
from std.memory import Pointer, stack_allocation
from std.sys.info import size_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime NEG = -Float32.MAX  # a hidden key's score: exp2(NEG - m) is 0
comptime LOG2E: Float32 = 1.4426950408889634
comptime BQ = 64  # query rows (threads) per block in _rows_kernel
comptime BK = 32  # keys per shared-memory tile
comptime SPLIT_WARPS = 4  # warps sharing one query row in _split_kernel
comptime SPLIT_TPB = SPLIT_WARPS * 32
# Up to this many query rows per key/value head the split kernel is used:
# below it the rows kernel would leave most of a block's threads idle.
comptime SPLIT_ROWS = 16




@always_inline
def _last_key(causal: Bool, Tk: Int32, Tq: Int32, i: Int32) -> Int32:
    return Tk - Tq + i if causal else Tk - 1


@always_inline
def _stage[
    dtype: DType, DK: Int, TPB: Int
](
    src: Pointer[Scalar[dtype], MutAnyOrigin],
    tile: Pointer[Float32, MutUntrackedOrigin, address_space=AddressSpace.SHARED],
    base: Int64,
    k0: Int32,
    nk: Int32,
    D: Int32,
    tid: Int32,
):
    """Copies keys (or values) k0 .. k0 + nk - 1 of one head into the
    [BK][DK] shared tile, zeros past nk or past D (0 * garbage could be NaN)."""
    comptime TILE = Int32(BK * DK)
    comptime DK32 = Int32(DK)
    if D == DK32:
        # 4 adjacent elements per thread and step: one 16-byte load for
        # float32, and a 16-byte shared store.
        var e = tid * 4
        while e < TILE:
            var j = e // DK32
            var vals = SIMD[F32, 4](0)
            if j < nk:
                var off = Int(base + Int64(k0 + j) * Int64(DK) + Int64(e - j * DK32))
                vals = src.unsafe_load[width=4, alignment=4 * size_of[dtype]()](off).cast[F32]()
            tile.unsafe_store[alignment=16](Int(e), vals)
            e += Int32(TPB * 4)
    else:
        var e = tid
        while e < TILE:
            var j = e // DK32
            var d = e - j * DK32
            var val: Float32 = 0
            if j < nk and d < D:
                val = src.unsafe_load(Int(base + Int64(k0 + j) * Int64(D) + Int64(d))).cast[F32]()
            tile.unsafe_store(Int(e), val)
            e += Int32(TPB)


@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(BQ)))
def _rows_kernel[
    dtype: DType, DK: Int, causal: Bool
](
    q: Pointer[Scalar[dtype], MutAnyOrigin],
    k: Pointer[Scalar[dtype], MutAnyOrigin],
    v: Pointer[Scalar[dtype], MutAnyOrigin],
    o: Pointer[Scalar[dtype], MutAnyOrigin],
    scale: Pointer[Float32, MutAnyOrigin],
    group: Int32,
    H: Int32,
    Tq: Int32,
    Tk: Int32,
    D: Int32,
):
    comptime NV = DK // 4
    var tid = Int32(thread_idx.x)
    var kvh = Int32(block_idx.y)  # bk * H + h
    var bk = kvh // H
    var h = kvh - bk * H
    var rows = group * Tq
    var r0 = Int32(block_idx.x) * Int32(BQ)
    var r = r0 + tid
    var g = r // Tq
    var i = r - g * Tq
    var live = r < rows
    var last = _last_key(causal, Tk, Tq, i) if live else -1
    # The block's furthest visible key: its last row's, or the whole cache
    # when the block spans two beams' rows.
    var r_hi = min(r0 + Int32(BQ), rows) - 1
    var key_end = Tk
    comptime if causal:
        var i_hi = Tq - 1 if r_hi // Tq != r0 // Tq else r_hi - (r_hi // Tq) * Tq
        key_end = Tk - Tq + i_hi + 1

    var row_off = ((Int64(bk * group + g) * Int64(H) + Int64(h)) * Int64(Tq) + Int64(i)) * Int64(D)
    var c = scale.unsafe_load(0) * LOG2E
    var qv = StaticTuple[SIMD[F32, 4], NV](SIMD[F32, 4](0))
    var acc = StaticTuple[SIMD[F32, 4], NV](SIMD[F32, 4](0))
    if live:
        comptime for n in range(NV):
            comptime for e in range(4):
                if n * 4 + e < Int(D):
                    qv[n][e] = q.unsafe_load(Int(row_off) + n * 4 + e).cast[F32]() * c

    var ks = stack_allocation[BK * DK, Float32, alignment=16, address_space=AddressSpace.SHARED]()
    var vs = stack_allocation[BK * DK, Float32, alignment=16, address_space=AddressSpace.SHARED]()
    var kv_base = Int64(kvh) * Int64(Tk) * Int64(D)
    var m = NEG
    var l: Float32 = 0
    var k0: Int32 = 0
    while k0 < key_end:
        var nk = min(Int32(BK), key_end - k0)
        barrier()  # every thread is done with the previous tile
        _stage[dtype, DK, BQ](k, ks, kv_base, k0, nk, D, tid)
        _stage[dtype, DK, BQ](v, vs, kv_base, k0, nk, D, tid)
        barrier()
        var s = StaticTuple[Float32, BK](0)
        var m_new = m
        comptime for j in range(BK):
            var dot = SIMD[F32, 4](0)
            comptime for n in range(NV):
                dot = qv[n].fma(ks.unsafe_load[width=4, alignment=16](j * DK + n * 4), dot)
            # Keys past the row's last (causal or past the tile) are hidden.
            var sj = dot.reduce_add() if k0 + Int32(j) <= last else NEG
            s[j] = sj
            m_new = max(m_new, sj)
        var corr = exp2(m - m_new)
        l *= corr
        comptime for n in range(NV):
            acc[n] *= corr
        comptime for j in range(BK):
            var p = exp2(s[j] - m_new)
            l += p
            comptime for n in range(NV):
                acc[n] = vs.unsafe_load[width=4, alignment=16](j * DK + n * 4).fma(SIMD[F32, 4](p), acc[n])
        m = m_new
        k0 += Int32(BK)

    if live:
        var inv = 1.0 / l
        comptime for n in range(NV):
            comptime for e in range(4):
                if n * 4 + e < Int(D):
                    o.unsafe_store(Int(row_off) + n * 4 + e, (acc[n][e] * inv).cast[dtype]())


@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(SPLIT_TPB)))
def _split_kernel[
    dtype: DType, DK: Int, causal: Bool, cached: Bool
](
    q: Pointer[Scalar[dtype], MutAnyOrigin],
    k: Pointer[Scalar[dtype], MutAnyOrigin],
    v: Pointer[Scalar[dtype], MutAnyOrigin],
    o: Pointer[Scalar[dtype], MutAnyOrigin],
    scale: Pointer[Float32, MutAnyOrigin],
    lineage: Pointer[Int64, MutAnyOrigin],
    group: Int32,
    H: Int32,
    Tq: Int32,
    Tk: Int32,
    D: Int32,
    R: Int32,
    CTX: Int32,
):
    """One block per (query row, key/value head). When cached, k and v are
    the caches [R, H, CTX, D], Tk is the history length and key t of row b
    is cache row lineage[b * Tk + t]; a lineage entry outside 0 .. R - 1
    makes the row's output NaN rather than reading out of bounds."""
    comptime NPL = DK // 32  # dims per lane
    var tid = Int32(thread_idx.x)
    var w = tid // 32
    var lane = tid - w * 32
    var r = Int32(block_idx.x)
    var kvh = Int32(block_idx.y)
    var bk = kvh // H
    var h = kvh - bk * H
    var g = r // Tq
    var i = r - g * Tq
    var b = bk * group + g
    var last = _last_key(causal, Tk, Tq, i)
    var row_off = ((Int64(b) * Int64(H) + Int64(h)) * Int64(Tq) + Int64(i)) * Int64(D)
    var d0 = lane * Int32(NPL)
    var full = D == Int32(DK)

    var c = scale.unsafe_load(0) * LOG2E
    var qv = SIMD[F32, NPL](0)
    if full:
        qv = q.unsafe_load[width=NPL, alignment=NPL * size_of[dtype]()](Int(row_off + Int64(d0))).cast[F32]() * c
    else:
        comptime for e in range(NPL):
            if d0 + Int32(e) < D:
                qv[e] = q.unsafe_load(Int(row_off + Int64(d0 + Int32(e)))).cast[F32]() * c

    var m = NEG
    var l: Float32 = 0
    var acc = SIMD[F32, NPL](0)
    var bad = False
    var t = w
    while t <= last:
        var off: Int64
        comptime if cached:
            var row = Int32(lineage.unsafe_load(Int(Int64(b) * Int64(Tk) + Int64(t))))
            if row < 0 or row >= R:
                bad = True
                row = 0
            off = ((Int64(row) * Int64(H) + Int64(h)) * Int64(CTX) + Int64(t)) * Int64(D)
        else:
            off = (Int64(kvh) * Int64(Tk) + Int64(t)) * Int64(D)
        var kv = SIMD[F32, NPL](0)
        var vv = SIMD[F32, NPL](0)
        if full:
            kv = k.unsafe_load[width=NPL, alignment=NPL * size_of[dtype]()](Int(off + Int64(d0))).cast[F32]()
            vv = v.unsafe_load[width=NPL, alignment=NPL * size_of[dtype]()](Int(off + Int64(d0))).cast[F32]()
        else:
            comptime for e in range(NPL):
                if d0 + Int32(e) < D:
                    kv[e] = k.unsafe_load(Int(off + Int64(d0 + Int32(e)))).cast[F32]()
                    vv[e] = v.unsafe_load(Int(off + Int64(d0 + Int32(e)))).cast[F32]()
        var s = warp_sum((qv * kv).reduce_add())
        var m_new = max(m, s)
        var corr = exp2(m - m_new)
        var p = exp2(s - m_new)
        l = l * corr + p
        acc = vv.fma(SIMD[F32, NPL](p), acc * corr)
        m = m_new
        t += Int32(SPLIT_WARPS)

    var ms = stack_allocation[SPLIT_WARPS, Float32, address_space=AddressSpace.SHARED]()
    var ls = stack_allocation[SPLIT_WARPS, Float32, address_space=AddressSpace.SHARED]()
    var flag = stack_allocation[SPLIT_WARPS, Int32, address_space=AddressSpace.SHARED]()
    var os = stack_allocation[SPLIT_WARPS * DK, Float32, alignment=16, address_space=AddressSpace.SHARED]()
    if lane == 0:
        ms.unsafe_store(Int(w), m)
        ls.unsafe_store(Int(w), l)
        flag.unsafe_store(Int(w), Int32(1) if bad else Int32(0))
    comptime for e in range(NPL):
        os.unsafe_store(Int(w * Int32(DK) + d0 + Int32(e)), acc[e])
    barrier()
    if tid < D:
        var top = NEG
        comptime for x in range(SPLIT_WARPS):
            top = max(top, ms.unsafe_load(x))
        var total: Float32 = 0
        var out: Float32 = 0
        var broken: Int32 = 0
        comptime for x in range(SPLIT_WARPS):
            var f = exp2(ms.unsafe_load(x) - top)
            total += ls.unsafe_load(x) * f
            out += os.unsafe_load(x * DK + Int(tid)) * f
            broken |= flag.unsafe_load(x)
        var y = out / total
        if broken != 0:
            y = Float32(0) / Float32(0) * y  # NaN: the caller's lineage is corrupt
        o.unsafe_store(Int(row_off + Int64(tid)), y.cast[dtype]())


def head_width(D: Int) raises -> Int:
    if D <= 32:
        return 32
    if D <= 64:
        return 64
    if D <= 128:
        return 128
    raise Error("attention: the GPU kernels take head sizes up to 128, got ", D)


def launch_split[
    dtype: DType, DK: Int, causal: Bool, cached: Bool
](
    q: Pointer[Scalar[dtype], MutAnyOrigin],
    k: Pointer[Scalar[dtype], MutAnyOrigin],
    v: Pointer[Scalar[dtype], MutAnyOrigin],
    o: Pointer[Scalar[dtype], MutAnyOrigin],
    scale: Pointer[Float32, MutAnyOrigin],
    lineage: Pointer[Int64, MutAnyOrigin],
    rows: Int,
    kv_heads: Int,
    group: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    R: Int,
    CTX: Int,
    ctx: DeviceContext,
) raises:
    ctx.enqueue_function[_split_kernel[dtype, DK, causal, cached]](
        q, k, v, o, scale, lineage,
        Int32(group), Int32(H), Int32(Tq), Int32(Tk), Int32(D), Int32(R), Int32(CTX),
        grid_dim=(rows, kv_heads), block_dim=SPLIT_TPB,
    )


def _launch[
    dtype: DType, DK: Int, causal: Bool
](
    q: Pointer[Scalar[dtype], MutAnyOrigin],
    k: Pointer[Scalar[dtype], MutAnyOrigin],
    v: Pointer[Scalar[dtype], MutAnyOrigin],
    o: Pointer[Scalar[dtype], MutAnyOrigin],
    scale: Pointer[Float32, MutAnyOrigin],
    B: Int,
    Bk: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    ctx: DeviceContext,
) raises:
    var group = B // Bk
    var rows = group * Tq
    if rows <= SPLIT_ROWS:
        # No lineage: k stands in for the unused pointer, never read.
        var none = k.unsafe_bitcast[Int64]()
        launch_split[dtype, DK, causal, False](q, k, v, o, scale, none, rows, Bk * H, group, H, Tq, Tk, D, Bk, Tk, ctx)
    else:
        ctx.enqueue_function[_rows_kernel[dtype, DK, causal]](
            q, k, v, o, scale, Int32(group), Int32(H), Int32(Tq), Int32(Tk), Int32(D),
            grid_dim=(ceildiv(rows, BQ), Bk * H), block_dim=BQ,
        )


def attention_gpu[
    dtype: DType, causal: Bool
](
    q: Pointer[Scalar[dtype], MutAnyOrigin],
    k: Pointer[Scalar[dtype], MutAnyOrigin],
    v: Pointer[Scalar[dtype], MutAnyOrigin],
    o: Pointer[Scalar[dtype], MutAnyOrigin],
    scale: Pointer[Float32, MutAnyOrigin],
    B: Int,
    Bk: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    ctx: DeviceContext,
) raises:
    """Op "attention" on the GPU (shapes as in attention.mojo)."""
    if B == 0 or Tq == 0 or H == 0:
        return
    if Bk == 0 or B % Bk != 0:
        raise Error("attention: ", B, " query batches do not share ", Bk, " key batches evenly")
    if causal and Tk < Tq:
        raise Error("attention: causal with ", Tq, " queries over only ", Tk, " keys")
    var dk = head_width(D)
    if dk == 32:
        _launch[dtype, 32, causal](q, k, v, o, scale, B, Bk, H, Tq, Tk, D, ctx)
    elif dk == 64:
        _launch[dtype, 64, causal](q, k, v, o, scale, B, Bk, H, Tq, Tk, D, ctx)
    else:
        _launch[dtype, 128, causal](q, k, v, o, scale, B, Bk, H, Tq, Tk, D, ctx)
