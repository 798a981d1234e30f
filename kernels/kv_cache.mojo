# Decoder self-attention over a key/value cache updated in place, with beam
# lineage instead of cache copies.
#
# Op "cached_attention" (mutates k_cache and v_cache):
#   q, k, v   [B, H, T, D] float32: queries, keys and values of the T tokens
#             fed this step, at text positions past .. past + T - 1
#   k_cache, v_cache [R, H, CTX, D] float32: cache row r keeps, at position
#             t, the key/value some token row computed there
#   slots     [B] int64: the cache row token row b stores its T new keys and
#             values in (at positions past .. past + T - 1)
#   lineage   [B, past + T] int64: the cache row holding position t of token
#             row b's history; beams that share a prefix point at the same
#             rows, so reordering beams permutes lineage rows (in the caller)
#             and never copies the cache; lineage[b, t >= past] == slots[b]
#   scale     [1] float32
#   out       [B, H, T, D] = softmax(scale q K^T, causal) V, where row b's
#             key t is k_cache[lineage[b, t], h, t] (after the stores)
# Algorithm: first every new key and value is stored; then one work item per
# (row, head) scores each query against its visible keys, takes an exact
# softmax (max, exp in W-wide vectors, sum) and sums the gathered values.
# At most CTX (448) keys, so the scores of one query fit in a small buffer.
# Tested against NumPy float64 attention over the gathered cache in
# tests/test_kv_cache.py.
import extensibility
from extensibility import InputTensor, OutputTensor, _MutableInputTensor
from max.gpu.host import DeviceContext
from .kv_cache_gpu import cached_attention_gpu
from .strides import Strides
from .team import Team
from std.math import exp
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys.info import simd_width_of

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
comptime NEG = -Float32.MAX
# Up to this many (query, key, d) products one thread beats waking the
# parallel workers (as in attention.mojo).
comptime SERIAL_WORK = 1 << 18


@always_inline
def _dot(a: Pointer[Float32, _], b: Pointer[Float32, _], D: Int) -> Float32:
    var acc = SIMD[F32, W](0)
    var d = 0
    while d + W <= D:
        acc = a.unsafe_load[width=W](d).fma(b.unsafe_load[width=W](d), acc)
        d += W
    var total = acc.reduce_add()
    while d < D:
        total += a.unsafe_load(d) * b.unsafe_load(d)
        d += 1
    return total


@always_inline
def _add_scaled[o_origin: MutOrigin, //](acc: Pointer[Float32, o_origin], p: Float32, v: Pointer[Float32, _], D: Int):
    """acc += p * v over D values."""
    var d = 0
    while d + W <= D:
        acc.unsafe_store(d, v.unsafe_load[width=W](d).fma(SIMD[F32, W](p), acc.unsafe_load[width=W](d)))
        d += W
    while d < D:
        acc.unsafe_store(d, acc.unsafe_load(d) + p * v.unsafe_load(d))
        d += 1


def cached_attention_cpu[
    o_origin: MutOrigin, //
](
    qp: Pointer[Float32, _],
    kp: Pointer[Float32, _],
    vp: Pointer[Float32, _],
    qkv_strides: Strides,
    kc: Pointer[Float32, MutAnyOrigin],
    vc: Pointer[Float32, MutAnyOrigin],
    sp: Pointer[Int64, _],
    lp: Pointer[Int64, _],
    op: Pointer[Float32, o_origin],
    o_strides: Strides,
    B: Int,
    H: Int,
    T: Int,
    D: Int,
    CTX: Int,
    total: Int,
    s: Float32,
    mut team: Team,
):
    """The CPU op on checked arguments, spread as team says. q, k, v and the
    output may lie in any layout of rows of D (Strides): the op's [B, H, T, D],
    or the fused decoder layer's [B, T, H, D] slices of wider rows."""
    var past = total - T

    def store() {kp, vp, qkv_strides, kc, vc, sp, B, H, T, D, CTX, past}:
        for b in range(B):
            var slot = Int(sp.unsafe_load(b))
            for h in range(H):
                for i in range(T):
                    var src = qkv_strides.at(b, h, i)
                    var dst = ((slot * H + h) * CTX + past + i) * D
                    for x in range(D):
                        kc.unsafe_store(dst + x, kp.unsafe_load(src + x))
                        vc.unsafe_store(dst + x, vp.unsafe_load(src + x))

    team.once(store)

    def work(item: Int) {qp, qkv_strides, kc, vc, lp, op, o_strides, H, T, D, CTX, total, past, s}:
        var b = item // H
        var h = item % H
        var padded = ((total + W - 1) // W) * W
        var scores = unsafe_alloc[Float32](padded)
        var acc = unsafe_alloc[Float32](D)
        var history = lp.unsafe_offset(b * total)
        for i in range(T):
            var qrow = qp.unsafe_offset(qkv_strides.at(b, h, i))
            var n = past + i + 1
            var mx = NEG
            for t in range(n):
                var key = kc.unsafe_offset(((Int(history.unsafe_load(t)) * H + h) * CTX + t) * D)
                var score = _dot(qrow, key, D) * s
                scores.unsafe_store(t, score)
                mx = max(mx, score)
            for t in range(n, padded):
                scores.unsafe_store(t, NEG)
            var sum = SIMD[F32, W](0)
            for t0 in range(0, padded, W):
                var e = exp(scores.unsafe_load[width=W](t0) - mx)
                scores.unsafe_store(t0, e)
                sum += e
            for d in range(D):
                acc.unsafe_store(d, 0)
            for t in range(n):
                var value = vc.unsafe_offset(((Int(history.unsafe_load(t)) * H + h) * CTX + t) * D)
                _add_scaled(acc, scores.unsafe_load(t), value, D)
            var inv = 1.0 / sum.reduce_add()
            var orow = op.unsafe_offset(o_strides.at(b, h, i))
            for d in range(D):
                orow.unsafe_store(d, acc.unsafe_load(d) * inv)
        scores.unsafe_free()
        acc.unsafe_free()

    if not team.is_team() and B * H * T * total * D <= SERIAL_WORK:
        for item in range(B * H):
            work(item)
    else:
        team.items(B * H, work)


def check_cache(B: Int, T: Int, R: Int, CTX: Int, total: Int, sp: Pointer[Int64, _], lp: Pointer[Int64, _]) raises:
    """Raises unless the slots [B] and lineage [B, total] name rows of an
    [R, H, CTX, D] cache and T new tokens fit it."""
    if total - T < 0 or total > CTX:
        raise Error("cached_attention: ", total, " positions for ", T, " new tokens in a cache of ", CTX)
    for i in range(B * total):
        var row = Int(lp.unsafe_load(i))
        if row < 0 or row >= R:
            raise Error("cached_attention: lineage names cache row ", row, " of ", R)
    for b in range(B):
        var slot = Int(sp.unsafe_load(b))
        if slot < 0 or slot >= R:
            raise Error("cached_attention: slot ", slot, " of ", R, " cache rows")


@extensibility.register("cached_attention")
struct CachedAttention:
    @staticmethod
    def execute[
        target: StaticString
    ](
        output: OutputTensor[dtype=F32, rank=4, ...],
        q: InputTensor[dtype=F32, rank=4, ...],
        k: InputTensor[dtype=F32, rank=4, ...],
        v: InputTensor[dtype=F32, rank=4, ...],
        k_cache: _MutableInputTensor[dtype=F32, rank=4, ...],
        v_cache: _MutableInputTensor[dtype=F32, rank=4, ...],
        slots: InputTensor[dtype=DType.int64, rank=1, ...],
        lineage: InputTensor[dtype=DType.int64, rank=2, ...],
        scale: InputTensor[dtype=F32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target == "gpu":
            cached_attention_gpu(
                q.unsafe_ptr(), k.unsafe_ptr(), v.unsafe_ptr(), k_cache.unsafe_ptr(), v_cache.unsafe_ptr(),
                slots.unsafe_ptr(), lineage.unsafe_ptr(), output.unsafe_ptr(), scale.unsafe_ptr(),
                q.dim_size(0), q.dim_size(1), q.dim_size(2), q.dim_size(3),
                k_cache.dim_size(0), k_cache.dim_size(2), lineage.dim_size(1), ctx,
            )
            return
        comptime if target != "cpu":
            raise Error("cached_attention: no path for target ", target)
        var B = q.dim_size(0)
        var H = q.dim_size(1)
        var T = q.dim_size(2)
        var D = q.dim_size(3)
        var CTX = k_cache.dim_size(2)
        var total = lineage.dim_size(1)
        check_cache(B, T, k_cache.dim_size(0), CTX, total, slots.unsafe_ptr(), lineage.unsafe_ptr())
        var heads_outer = Strides.heads_outer(H, T, D)
        var pool = Team.pool()
        cached_attention_cpu(
            q.unsafe_ptr(), k.unsafe_ptr(), v.unsafe_ptr(), heads_outer, k_cache.unsafe_ptr(), v_cache.unsafe_ptr(),
            slots.unsafe_ptr(), lineage.unsafe_ptr(), output.unsafe_ptr(), heads_outer,
            B, H, T, D, CTX, total, scale.unsafe_ptr().unsafe_load(0), pool,
        )
