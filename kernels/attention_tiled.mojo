# The tiled CPU path of "attention": many query rows (the encoder's 1500).
#
# attend_tiled: nr <= BQ query rows of one head over that head's keys and
# values, O = softmax(scale * q k^T, masked) v, FlashAttention-2 style:
# keys in tiles of BK, a running max m and normaliser l per row, O rescaled
# per tile, so the rows x keys score matrix never exists.
# Layouts: q and o rows of D at the offsets row_off[r] (any layout the
#   caller's Strides describes); row r sees keys 0 .. row_last[r]; k and v
#   [Tk, D] row-major for this head; Q is packed transposed ([D][BQ], times
#   scale), so the scores come out with queries in the SIMD lanes.
# Scores S^T = K Q^T: each K element is a broadcast straight from k's rows
# (K is never transposed) against QV query vectors, KJ keys x QV vectors of
# accumulators in registers; the softmax's max and sum over keys are then
# lane-wise, with no horizontal reductions. O += P V: attention_pv.mojo,
# RG rows at a time.
# Tested through the op in tests/test_attention.py against a NumPy float64
# softmax reference.
from .attention_pv import F32, NEG, VREGS, W, pv_accumulate
from .exp2 import exp_nonpositive
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.utils import StaticTuple

# Register blocking per instruction set (VREGS): QV * KJ score accumulators
# plus QV query vectors and one broadcast key must stay in registers.
comptime QV = 2  # query vectors per block
comptime BQ = QV * W  # query rows per work item
comptime KJ = 12 if VREGS == 32 else 6  # keys per score register tile
comptime BK = 48  # keys per tile (a multiple of KJ): its scores, V rows and O stay in L1
comptime RG = 4  # rows per O register tile


@always_inline
def attend_tiled[
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
            pv_accumulate[kvd, RG](acc.unsafe_offset(r0 * D), st.unsafe_offset(r0), BQ, 1, corr.unsafe_offset(r0), vt, nk, D)

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

