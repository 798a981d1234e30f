# Fused scaled-dot-product attention with an online (streaming) softmax.
#
# Op "attention":  out = softmax(scale * q @ k^T + mask) @ v
# Layout: q [B, H, Tq, D], k and v [Bk, H, Tk, D], out [B, H, Tq, D], row-major;
#         B is a multiple of Bk and query row b reads key/value row
#         b // (B / Bk), so beams share one copy of their audio's keys;
#         scale is a runtime [1] float32 tensor so one compiled graph serves
#         every head size; `causal` (compile-time) lets query i see keys
#         0 .. Tk - Tq + i, so one new token can attend over a KV cache.
# Algorithm (FlashAttention-2 style, CPU): a work item is one (batch, head)
# and a block of BQ queries. Keys are visited in tiles of BK: the tile of K is
# transposed once so that a query's BK scores are one SIMD accumulation over
# D; the running max m, normaliser l and output accumulator are rescaled per
# tile, so the Tq x Tk score matrix never exists (scratch is D*BK + BQ*D).
# Tested against a NumPy float64 softmax reference in tests/test_attention.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from max.algorithm.backend.cpu.parallelize import parallelize
from std.math import exp, ceildiv, iota
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc

comptime F32 = DType.float32
comptime BK = 64  # keys per tile: one SIMD score vector per query
comptime BQ = 32  # queries per work item


@always_inline
def _attend_block[
    dtype: DType, DC: Int, causal: Bool
](
    q: Pointer[Scalar[dtype], _],
    k: Pointer[Scalar[dtype], _],
    v: Pointer[Scalar[dtype], _],
    o: Pointer[Scalar[dtype], MutAnyOrigin],
    nq: Int,
    first_query: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    scale: Float32,
):
    """Attends nq queries (rows of q, starting at query index first_query)
    over all visible keys; D is processed in chunks of DC lanes."""
    var kt = unsafe_alloc[Float32](D * BK)
    var acc = unsafe_alloc[Float32](nq * D)
    var p = unsafe_alloc[Float32](BK)
    var m = unsafe_alloc[Float32](nq)
    var l = unsafe_alloc[Float32](nq)
    for i in range(nq):
        m.unsafe_store(i, -Float32.MAX)
        l.unsafe_store(i, 0)
    for x in range(nq * D):
        acc.unsafe_store(x, 0)

    # Query i (absolute first_query + i) sees keys <= Tk - Tq + first_query + i.
    var key_end = Tk
    comptime if causal:
        key_end = min(Tk, Tk - Tq + first_query + nq)

    for k0 in range(0, key_end, BK):
        var nk = min(BK, key_end - k0)
        for j in range(BK):
            for d in range(D):
                var val: Float32 = 0
                if j < nk:
                    val = k.unsafe_load((k0 + j) * D + d).cast[F32]()
                kt.unsafe_store(d * BK + j, val)

        for i in range(nq):
            var visible = nk
            comptime if causal:
                visible = min(nk, Tk - Tq + first_query + i - k0 + 1)
            if visible <= 0:
                continue
            var s = SIMD[F32, BK](0)
            for d in range(D):
                var qd = q.unsafe_load(i * D + d).cast[F32]()
                s = kt.unsafe_load[width=BK](d * BK).fma(SIMD[F32, BK](qd), s)
            var live = iota[DType.int32, BK]().lt(Int32(visible))
            s = live.select(s * scale, SIMD[F32, BK](-Float32.MAX))
            var m_old = m.unsafe_load(i)
            var m_new = max(m_old, s.reduce_max())
            var pv = live.select(exp(s - m_new), SIMD[F32, BK](0))
            var corr = exp(m_old - m_new)
            l.unsafe_store(i, l.unsafe_load(i) * corr + pv.reduce_add())
            m.unsafe_store(i, m_new)
            p.unsafe_store(0, pv)
            for dc in range(0, D, DC):
                var a = acc.unsafe_load[width=DC](i * D + dc) * corr
                for j in range(visible):
                    var vj = v.unsafe_load[width=DC]((k0 + j) * D + dc).cast[F32]()
                    a = vj.fma(SIMD[F32, DC](p.unsafe_load(j)), a)
                acc.unsafe_store(i * D + dc, a)

    for i in range(nq):
        var inv = 1.0 / l.unsafe_load(i)
        for dc in range(0, D, DC):
            var a = acc.unsafe_load[width=DC](i * D + dc) * inv
            o.unsafe_store(i * D + dc, a.cast[dtype]())
    kt.unsafe_free()
    acc.unsafe_free()
    p.unsafe_free()
    m.unsafe_free()
    l.unsafe_free()


@extensibility.register("attention")
struct Attention:
    @staticmethod
    def execute[
        target: StaticString, causal: Bool
    ](
        output: OutputTensor[rank=4, ...],
        q: InputTensor[dtype=output.dtype, rank=4, ...],
        k: InputTensor[dtype=output.dtype, rank=4, ...],
        v: InputTensor[dtype=output.dtype, rank=4, ...],
        scale: InputTensor[dtype=DType.float32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu":
            raise Error("attention: no GPU path yet")
        var H = q.dim_size(1)
        var BH = q.dim_size(0) * H
        var group = q.dim_size(0) // k.dim_size(0)
        var Tq = q.dim_size(2)
        var Tk = k.dim_size(2)
        var D = q.dim_size(3)
        var sc = scale.unsafe_ptr().unsafe_load(0)
        var qp = q.unsafe_ptr()
        var kp = k.unsafe_ptr()
        var vp = v.unsafe_ptr()
        var op = output.unsafe_ptr()
        var qblocks = ceildiv(Tq, BQ)

        def work(item: Int) {qp, kp, vp, op, qblocks, H, group, Tq, Tk, D, sc}:
            var bh = item // qblocks
            var q0 = (item % qblocks) * BQ
            var nq = min(BQ, Tq - q0)
            var qo = (bh * Tq + q0) * D
            var ko = ((bh // H) // group * H + bh % H) * Tk * D
            var args = (qp.unsafe_offset(qo), kp.unsafe_offset(ko), vp.unsafe_offset(ko), op.unsafe_offset(qo))
            if D % BK == 0:
                _attend_block[output.dtype, BK, causal](args[0], args[1], args[2], args[3], nq, q0, Tq, Tk, D, sc)
            elif D % 8 == 0:
                _attend_block[output.dtype, 8, causal](args[0], args[1], args[2], args[3], nq, q0, Tq, Tk, D, sc)
            else:
                _attend_block[output.dtype, 1, causal](args[0], args[1], args[2], args[3], nq, q0, Tq, Tk, D, sc)

        parallelize(work, BH * qblocks)
