# Non-causal attention on AMX tiles: the "attention" op's path for the int8
# encoder's self-attention (parameter bf16=True) on CPUs where Linux grants
# the tile registers (amx.mojo). tdpbf16ps multiplies bfloat16 pairs and
# sums in float32.
#
# out = softmax(scale * q k^T) v, as attention.mojo, with these roundings:
#  - scores: q (scaled) and k are split as x = hi + lo, both bfloat16
#    (hi = bf16(x), lo = bf16(x - hi): 16 bits of mantissa together), and
#    S = q_hi k_hi + q_lo k_hi + q_hi k_lo (q_lo k_lo lies below float32's
#    rounding). The exponential amplifies score errors, and plain bfloat16
#    scores (relative error 2^-9 on each factor) tipped long-form decoding
#    (lincoln, greedy, int8: WER 13.6 -> 29.7 %).
#  - P V: the probabilities (unnormalised, exp(s - max) in [0, 1]) and v
#    are rounded to bfloat16 once; their errors average over the keys, and
#    are below the int8 encoder's own (activations quantized to 8 bits per row).
# Max and the normaliser are float32; exp is exp2.mojo's (relative error
# 2.6e-7, far under P's bfloat16 rounding of 2^-9). Rounding: to nearest,
# ties to even.
# Layouts: q, out [B, H, Tq, D], k, v [Bk, H, Tk, D] row-major, D = 64;
# B is a multiple of Bk and query row b reads key/value row b // (B / Bk).
# Algorithm:
#  1. Per key/value head, one work item packs the operands into the tiles'
#     layout, zero past Tk (Tkp = Tk rounded up to 32), each tile 1 KB in a row:
#       kp: per 16 keys, pairs (k[t, 2i], k[t, 2i+1]) as [i = 0..31][t], hi
#           parts, then all lo parts: 2 B tiles (pairs 0-15, 16-31) per part;
#       vp: per 32 keys and 16 columns d, pairs (v[2j, d], v[2j+1, d]) as
#           [j][d]: one B tile.
#  2. A work item is one head and 64 query rows (4 row tiles):
#     S [64, Tkp] = Q K^T, per 16 keys: each K tile is loaded once for the 4
#     row tiles (their Q tiles reload from L1), 4 sum tiles in flight;
#     the whole rows fit in L2 (Tk = 1500: 385 KB), so the softmax is the
#     plain two-pass one (max, then exp and sum) with no running rescale;
#     P [64, Tkp] in bfloat16; O = P V in 4 passes of 2 row tiles x 2 column
#     tiles summed over all keys; out = O / l.
# Why 64 rows per item: the packed keys and values of a head (Tk = 1500:
# 575 KB) stream from L2 once per item, and with 16 rows that stream, not the
# tile products, set the speed. Time per call (6 heads, 1500 x 1500, 2 cores,
# standalone): 5.3 ms against 13.4 ms for attention.mojo's float32 path (7.0 ms
# with std's exp, of which the softmax was about half).
# The default mode keeps float32 attention and openai-whisper's exact output.
# Tested against a NumPy float64 model of these roundings and against exact
# attention in tests/test_attention_amx.py.
from std.math import ceildiv, iota
from std.memory import Pointer, bitcast
from std.memory.alloc import unsafe_alloc
from std.sys._assembly import inlined_assembly
from std.sys.intrinsics import llvm_intrinsic
from max.algorithm.backend.cpu.parallelize import parallelize
from .exp2 import LOG2E, exp2_nonpositive
from .amx import amx_configure, amx_release, tile_load, tile_store, zero_sums

comptime F32 = DType.float32
comptime U16 = DType.uint16
comptime U32 = DType.uint32
comptime D = 64  # the head size this path takes
comptime TILE = 16  # rows of a tile
comptime ROW_TILES = 4
comptime ROWS = TILE * ROW_TILES  # query rows per work item
comptime KEY_ALIGN = 32  # keys per P tile (16 pairs of 2 keys)
comptime K_TILE = TILE * TILE  # u32 words per K tile (16 pairs x 16 keys)
comptime V_TILE = TILE * 32  # u16 values per V tile (16 key pairs x 16 columns x 2)
comptime NEG = -Float32.MAX


@always_inline
def _bf16[n: Int](x: SIMD[F32, n]) -> SIMD[U16, n]:
    """Bits of x rounded to the nearest bfloat16, ties to even (no NaNs here)."""
    var bits = bitcast[U32, n](x)
    var bias = ((bits >> 16) & 1) + 0x7FFF
    return ((bits + bias) >> 16).cast[U16]()


@always_inline
def _split[n: Int](x: SIMD[F32, n]) -> Tuple[SIMD[U16, n], SIMD[U16, n]]:
    """x as hi + lo, both bfloat16: hi = bf16(x), lo = bf16(x - hi)."""
    var hi = _bf16[n](x)
    var widened = bitcast[F32, n](hi.cast[U32]() << 16)
    return (hi, _bf16[n](x - widened))


def _pack_head[
    kvd: DType, o1: MutOrigin, o2: MutOrigin, //
](k: Pointer[Scalar[kvd], _], v: Pointer[Scalar[kvd], _], kp: Pointer[UInt32, o1], vp: Pointer[UInt16, o2], Tk: Int, Tkp: Int):
    """Step 1 for one head: k, v [Tk, D] -> kp (hi, then lo), vp."""
    var kp_lo = kp.unsafe_offset(Tkp * (D // 2))
    for t in range(Tkp):
        var hi = SIMD[U32, D // 2](0)
        var lo = SIMD[U32, D // 2](0)
        if t < Tk:
            var parts = _split[D](k.unsafe_load[width=D](t * D).cast[F32]())
            hi = bitcast[U32, D // 2](parts[0])
            lo = bitcast[U32, D // 2](parts[1])
        var base = (t // TILE) * 2 * K_TILE + t % TILE
        comptime for i in range(D // 2):
            kp.unsafe_store(base + i * TILE, hi[i])
            kp_lo.unsafe_store(base + i * TILE, lo[i])
    for j in range(Tkp // 2):
        var even = SIMD[U16, D](0)
        var odd = SIMD[U16, D](0)
        if 2 * j < Tk:
            even = _bf16[D](v.unsafe_load[width=D](2 * j * D).cast[F32]())
        if 2 * j + 1 < Tk:
            odd = _bf16[D](v.unsafe_load[width=D]((2 * j + 1) * D).cast[F32]())
        var pairs = even.interleave(odd)
        var base = (j // TILE) * (D // TILE) * V_TILE + (j % TILE) * 32
        comptime for c in range(D // TILE):
            vp.unsafe_store(base + c * V_TILE, pairs.slice[32, offset=32 * c]())


@always_inline
def _score_products[c: Int]():
    """Sum tile c += q_hi k_hi + q_lo k_hi + q_hi k_lo, with k_hi, k_lo in
    tiles 4, 5 and q_hi, q_lo in tiles 6, 7."""
    comptime if c == 0:
        inlined_assembly["tdpbf16ps %tmm4, %tmm6, %tmm0", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm4, %tmm7, %tmm0", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm5, %tmm6, %tmm0", NoneType, constraints="~{memory}"]()
    elif c == 1:
        inlined_assembly["tdpbf16ps %tmm4, %tmm6, %tmm1", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm4, %tmm7, %tmm1", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm5, %tmm6, %tmm1", NoneType, constraints="~{memory}"]()
    elif c == 2:
        inlined_assembly["tdpbf16ps %tmm4, %tmm6, %tmm2", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm4, %tmm7, %tmm2", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm5, %tmm6, %tmm2", NoneType, constraints="~{memory}"]()
    else:
        inlined_assembly["tdpbf16ps %tmm4, %tmm6, %tmm3", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm4, %tmm7, %tmm3", NoneType, constraints="~{memory}"]()
        inlined_assembly["tdpbf16ps %tmm5, %tmm6, %tmm3", NoneType, constraints="~{memory}"]()


@always_inline
def _value_products():
    """Sums 0-3 += P tiles 4, 5 (two row tiles) x V tiles 6, 7 (two column tiles)."""
    inlined_assembly["tdpbf16ps %tmm6, %tmm4, %tmm0", NoneType, constraints="~{memory}"]()
    inlined_assembly["tdpbf16ps %tmm7, %tmm4, %tmm1", NoneType, constraints="~{memory}"]()
    inlined_assembly["tdpbf16ps %tmm6, %tmm5, %tmm2", NoneType, constraints="~{memory}"]()
    inlined_assembly["tdpbf16ps %tmm7, %tmm5, %tmm3", NoneType, constraints="~{memory}"]()


def _attend_rows[
    dtype: DType, o_origin: MutOrigin, //
](
    q: Pointer[Scalar[dtype], _],
    o: Pointer[Scalar[dtype], o_origin],
    row_off: Pointer[Int, _],
    nr: Int,
    kp: Pointer[UInt32, _],
    vp: Pointer[UInt16, _],
    Tk: Int,
    Tkp: Int,
    scale: Float32,
):
    """Step 2 for nr <= 64 rows (row r at q/o offset row_off[r]) of one head."""
    var cfg = unsafe_alloc[UInt8](64)
    var qa = unsafe_alloc[UInt16](2 * ROWS * D)  # hi rows, then lo rows
    var s = unsafe_alloc[Float32](ROWS * Tkp)
    var p = unsafe_alloc[UInt16](ROWS * Tkp)
    var acc = unsafe_alloc[Float32](ROWS * D)
    var inv = unsafe_alloc[Float32](ROWS)
    var q_lo = qa.unsafe_offset(ROWS * D)
    for r in range(ROWS):
        var row = SIMD[F32, D](0)
        if r < nr:
            row = q.unsafe_load[width=D](row_off.unsafe_load(r)).cast[F32]() * scale
        var parts = _split[D](row)
        qa.unsafe_store(r * D, parts[0])
        q_lo.unsafe_store(r * D, parts[1])
    amx_configure(cfg)

    # S, 16 keys at a time, per half h of the pairs (d 0-31, 32-63).
    comptime q_stride = D * 2  # bytes per row of qa
    var kp_lo = kp.unsafe_offset(Tkp * (D // 2))
    var s_stride = Tkp * 4
    for t0 in range(0, Tkp, TILE):
        var kb = (t0 // TILE) * 2 * K_TILE
        zero_sums()
        comptime for h in range(2):
            tile_load[4](kp.unsafe_offset(kb + h * K_TILE), 64)
            tile_load[5](kp_lo.unsafe_offset(kb + h * K_TILE), 64)
            comptime for c in range(ROW_TILES):
                var qr = c * TILE * D + h * (D // 2)
                tile_load[6](qa.unsafe_offset(qr), q_stride)
                tile_load[7](q_lo.unsafe_offset(qr), q_stride)
                _score_products[c]()
        comptime for c in range(ROW_TILES):
            tile_store[c](s.unsafe_offset(c * TILE * Tkp + t0), s_stride)

    # Softmax per row over the Tk real keys; the scores of the padding keys
    # (zero vectors) are replaced by NEG in the last vector, so P is zero there.
    comptime W = 16
    var last = (Tk - 1) // W * W  # the last vector holding a real key
    var real = iota[DType.int32, W](Int32(last)).lt(Int32(Tk))
    for r in range(ROWS):
        var sr = s.unsafe_offset(r * Tkp)
        sr.unsafe_store(last, real.select(sr.unsafe_load[width=W](last), SIMD[F32, W](NEG)))
        for t in range(last + W, Tkp, W):
            sr.unsafe_store(t, SIMD[F32, W](NEG))
        var top = SIMD[F32, W](NEG)
        for t in range(0, last + W, W):
            var x = sr.unsafe_load[width=W](t)
            top = top.gt(x).select(top, x)  # vmaxps: no NaN here to care for
        # exp(s - m) = 2^(s log2(e) - m log2(e)): one multiply-add a score
        var shift = SIMD[F32, W](-top.reduce_max() * LOG2E)
        var total = SIMD[F32, W](0)
        for t in range(0, Tkp, W):
            var e = exp2_nonpositive[W](sr.unsafe_load[width=W](t).fma(SIMD[F32, W](LOG2E), shift))
            total += e
            p.unsafe_store(r * Tkp + t, _bf16[W](e))
        inv.unsafe_store(r, 1.0 / total.reduce_add())

    # O = P V in passes of 2 row tiles (P in tiles 4, 5) x 2 column tiles (V in 6, 7).
    var p_stride = Tkp * 2
    comptime o_stride = D * 4
    comptime for rp in range(ROW_TILES // 2):
        comptime for cp in range(D // TILE // 2):
            zero_sums()
            for t0 in range(0, Tkp, KEY_ALIGN):
                var vb = (t0 // KEY_ALIGN) * (D // TILE) * V_TILE + 2 * cp * V_TILE
                tile_load[4](p.unsafe_offset(2 * rp * TILE * Tkp + t0), p_stride)
                tile_load[5](p.unsafe_offset((2 * rp + 1) * TILE * Tkp + t0), p_stride)
                tile_load[6](vp.unsafe_offset(vb), 64)
                tile_load[7](vp.unsafe_offset(vb + V_TILE), 64)
                _value_products()
            var ob = 2 * rp * TILE * D + 2 * cp * TILE
            tile_store[0](acc.unsafe_offset(ob), o_stride)
            tile_store[1](acc.unsafe_offset(ob + TILE), o_stride)
            tile_store[2](acc.unsafe_offset(ob + TILE * D), o_stride)
            tile_store[3](acc.unsafe_offset(ob + TILE * D + TILE), o_stride)
    amx_release()

    for r in range(nr):
        var out = acc.unsafe_load[width=D](r * D) * inv.unsafe_load(r)
        o.unsafe_store(row_off.unsafe_load(r), out.cast[dtype]())
    cfg.unsafe_free()
    qa.unsafe_free()
    s.unsafe_free()
    p.unsafe_free()
    acc.unsafe_free()
    inv.unsafe_free()


def attention_amx[
    dtype: DType, kvd: DType, o_origin: MutOrigin, //
](
    q: Pointer[Scalar[dtype], _],
    k: Pointer[Scalar[kvd], _],
    v: Pointer[Scalar[kvd], _],
    o: Pointer[Scalar[dtype], o_origin],
    B: Int,
    Bk: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    scale: Float32,
):
    """The whole op (D = 64, not causal); the caller checked amx_permitted()."""
    var group = B // Bk
    var rows = group * Tq
    var Tkp = ceildiv(Tk, KEY_ALIGN) * KEY_ALIGN
    var heads = Bk * H
    var k_words = D * Tkp  # per head: hi and lo pairs
    var v_values = Tkp * D
    var kp = unsafe_alloc[UInt32](heads * k_words)
    var vp = unsafe_alloc[UInt16](heads * v_values)

    def pack(head: Int) {k, v, kp, vp, Tk, Tkp, k_words, v_values}:
        var kv = head * Tk * D
        _pack_head(k.unsafe_offset(kv), v.unsafe_offset(kv), kp.unsafe_offset(head * k_words), vp.unsafe_offset(head * v_values), Tk, Tkp)

    parallelize(pack, heads)

    var blocks = ceildiv(rows, ROWS)

    def work(item: Int) {q, o, kp, vp, H, Tq, Tk, Tkp, k_words, v_values, scale, group, rows, blocks}:
        var head = item // blocks  # bk * H + h
        var r0 = (item % blocks) * ROWS
        var nr = min(ROWS, rows - r0)
        var bk = head // H
        var h = head % H
        var row_off = unsafe_alloc[Int](ROWS)
        for r in range(nr):
            var g = (r0 + r) // Tq
            var i = (r0 + r) % Tq
            row_off.unsafe_store(r, (((bk * group + g) * H + h) * Tq + i) * D)
        _attend_rows(q, o, row_off, nr, kp.unsafe_offset(head * k_words), vp.unsafe_offset(head * v_values), Tk, Tkp, scale)
        row_off.unsafe_free()

    parallelize(work, heads * blocks)
    kp.unsafe_free()
    vp.unsafe_free()
