# The direct CPU path of "attention": a few query rows (decoding, beams).
#
# attend_direct: nr <= SMALL query rows of one head over that head's keys
# and values, O = softmax(scale * q k^T, masked) v with an online softmax
# over key tiles of BKD.
# Layouts: q and o rows of D at the offsets row_off[r]; row r sees keys
#   0 .. row_last[r]; k and v [Tk, D] row-major for this head (float32,
#   float16, or int8 with a scale per key: `scaled`, attention_int8kv.mojo).
#   D must be a multiple of W.
# Lanes run over D: each key's dot product with a row is a few vector FMAs
# (_dot), and W keys' partial sums are reduced together by a
# transpose-and-add tree into one vector of W scores (_sum_lanes). O += P V
# (attention_pv.mojo) reuses each loaded V row for up to 6 rows.
# Tested through the op in tests/test_attention.py (NumPy float64 softmax
# reference) and tests/test_attention_int8kv.py.
from .attention_pv import F32, NEG, W, pv_accumulate
from .exp2 import exp_nonpositive
from std.math import iota
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.utils import StaticTuple

comptime LOG_W = 4 if W == 16 else (3 if W == 8 else 2)
comptime SMALL = 8  # at most this many rows per head take this path
comptime BKD = 4 * W  # keys per tile


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
def attend_direct[
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
                    pv_accumulate[kvd, R](a, pr, 1, BKD, c, vt, nk, D)
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
