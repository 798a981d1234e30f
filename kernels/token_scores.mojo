# What a decoding step needs from the vocabulary projection's logits, in one
# visit to each row, so that Python never walks 51864 floats per row.
#
# Op "token_scores", per row of logits (the next token's scores):
#   1. filtered = logits with barred tokens set to -inf: the ids in
#      `suppressed` (every row), and each range [lo, hi) of the row's `bars`
#      (Whisper's token rules, worked out in Python from the tokens written:
#      decoding/rules.py);
#   2. if first_timestamp >= 0, the timestamp rule: when the log of the summed
#      probability of all timestamp tokens [first_timestamp, V) beats the best
#      text token's, text [0, first_timestamp) is barred too. Compared as
#      logits (the softmax normaliser is common to both sides), the timestamp
#      sum as peak + log(sum(exp(t - peak))), float32 exponentials summed
#      in float64;
#   3. stats = (peak, normaliser): the row's largest filtered logit and
#      log(sum(exp(filtered - peak))), float32 exponentials summed in float64,
#      so that log_softmax(filtered)[i] = (filtered[i] - peak) - normaliser
#      (NaN for a row with everything barred);
#   4. top = the k largest filtered logits' ids, best first, equal values by
#      lower id (k = top's width, at most MAX_TOP).
# Layouts (row-major): logits, filtered [rows, V] float32; bars [rows, n, 2]
# int64 (an empty range, lo >= hi, bars nothing); suppressed [s] int64;
# first_timestamp [1] int64 (-1: no timestamp rule); top [rows, k] int64;
# stats [rows, 2] float64.
# The top-k pass compares a whole vector against the k-th best so far and
# goes to scalar code only where a lane beats it: logits are dense near the
# top, so after the first few hundred tokens almost no vector does.
# Tested against rules and search in NumPy as openai-whisper orders them
# (tests/test_token_scores.py).
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from max.algorithm.backend.cpu.parallelize import parallelize
from std.math import log
from std.memory import Pointer
from std.sys.info import simd_width_of
from std.utils import StaticTuple
from std.utils.numerics import nan, neg_inf
from .exp2 import exp_nonpositive

comptime F32 = DType.float32
comptime F64 = DType.float64
comptime W = simd_width_of[F32]()
comptime MAX_TOP = 32


@always_inline
def _fill(row: Pointer[Float32, MutAnyOrigin], lo: Int, hi: Int):
    var barred = SIMD[F32, W](neg_inf[F32]())
    var c = lo
    while c + W <= hi:
        row.unsafe_store(c, barred)
        c += W
    while c < hi:
        row.unsafe_store(c, barred[0])
        c += 1


@always_inline
def _max(row: Pointer[Float32, MutAnyOrigin], lo: Int, hi: Int) -> Float32:
    var best = SIMD[F32, W](neg_inf[F32]())
    var c = lo
    while c + W <= hi:
        best = max(best, row.unsafe_load[width=W](c))
        c += W
    var peak = best.reduce_max()
    while c < hi:
        peak = max(peak, row.unsafe_load(c))
        c += 1
    return peak


def _timestamp_rule(row: Pointer[Float32, MutAnyOrigin], first: Int, cols: Int) -> Float32:
    """Bars text when the timestamps together outweigh the best text token;
    returns the row's peak afterwards."""
    var text_peak = _max(row, 0, first)
    var time_peak = _max(row, first, cols)
    if time_peak == neg_inf[F32]():
        return text_peak
    var sums = SIMD[F64, W](0)
    var c = first
    while c + W <= cols:
        sums += exp_nonpositive[W](row.unsafe_load[width=W](c) - time_peak).cast[F64]()
        c += W
    var spread = sums.reduce_add()
    while c < cols:
        spread += Float64(exp_nonpositive[1](row.unsafe_load(c) - time_peak))
        c += 1
    if Float64(time_peak) + log(spread) > Float64(text_peak):
        _fill(row, 0, first)
        return time_peak
    return max(text_peak, time_peak)


def _normaliser(row: Pointer[Float32, MutAnyOrigin], cols: Int, peak: Float32) -> Float64:
    # Two float64 sums of W lanes each: float32 exponentials, widened before
    # they are added, as NumPy's float32 terms summed with dtype=float64. The
    # exponential is exp2.mojo's (at most 2.6e-7 off, two float32 ulps): std's
    # exp, with its checks for inputs a softmax never has, made the op 1.5-2x
    # slower (about 100 us a row of 51864 here).
    var a = SIMD[F64, W](0)
    var b = SIMD[F64, W](0)
    var c = 0
    while c + 2 * W <= cols:
        a += exp_nonpositive[W](row.unsafe_load[width=W](c) - peak).cast[F64]()
        b += exp_nonpositive[W](row.unsafe_load[width=W](c + W) - peak).cast[F64]()
        c += 2 * W
    var total = (a + b).reduce_add()
    while c < cols:
        total += Float64(exp_nonpositive[1](row.unsafe_load(c) - peak))
        c += 1
    return log(total)


@always_inline
def _offer(
    mut values: StaticTuple[Float32, MAX_TOP], mut ids: StaticTuple[Int, MAX_TOP], k: Int, held: Int, id: Int, value: Float32
):
    """Puts (id, value) in place among the first `held` entries, after those of
    equal value (ids arrive in increasing order), dropping the k-th if all k
    were held."""
    var at = min(held, k - 1)
    while at > 0 and values[at - 1] < value:
        values[at] = values[at - 1]
        ids[at] = ids[at - 1]
        at -= 1
    values[at] = value
    ids[at] = id


def _top(row: Pointer[Float32, MutAnyOrigin], cols: Int, k: Int, out_ids: Pointer[Int64, MutAnyOrigin]):
    var values = StaticTuple[Float32, MAX_TOP](0)
    var ids = StaticTuple[Int, MAX_TOP](0)
    for c in range(k):
        _offer(values, ids, k, c, c, row.unsafe_load(c))
    var bar = values[k - 1]
    var c = k
    while c + W <= cols:
        var v = row.unsafe_load[width=W](c)
        if v.gt(SIMD[F32, W](bar)).reduce_or():
            for lane in range(W):
                if v[lane] > bar:
                    _offer(values, ids, k, k, c + lane, v[lane])
                    bar = values[k - 1]
        c += W
    while c < cols:
        var value = row.unsafe_load(c)
        if value > bar:
            _offer(values, ids, k, k, c, value)
            bar = values[k - 1]
        c += 1
    for i in range(k):
        out_ids.unsafe_store(i, Int64(ids[i]))


@extensibility.register("token_scores")
struct TokenScores:
    @staticmethod
    def execute[
        target: StaticString
    ](
        filtered: OutputTensor[dtype=F32, rank=2, ...],
        top: OutputTensor[dtype=DType.int64, rank=2, ...],
        stats: OutputTensor[dtype=F64, rank=2, ...],
        logits: InputTensor[dtype=F32, rank=2, ...],
        bars: InputTensor[dtype=DType.int64, rank=3, ...],
        suppressed: InputTensor[dtype=DType.int64, rank=1, ...],
        first_timestamp: InputTensor[dtype=DType.int64, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu":
            raise Error("token_scores: no GPU path (the GPU decoder returns logits to NumPy)")
        var rows = logits.dim_size(0)
        var cols = logits.dim_size(1)
        var k = top.dim_size(1)
        var n_bars = bars.dim_size(1)
        var n_suppressed = suppressed.dim_size(0)
        if k < 1 or k > MAX_TOP or k > cols:
            raise Error("token_scores: top must have 1 to 32 columns, and no more than the vocabulary")
        if bars.dim_size(0) != rows or bars.dim_size(2) != 2:
            raise Error("token_scores: bars must be [rows, n, 2]")
        var first = Int(first_timestamp.unsafe_ptr().unsafe_load(0))
        var src = logits.unsafe_ptr()
        var dst = filtered.unsafe_ptr()
        var bp = bars.unsafe_ptr()
        var sp = suppressed.unsafe_ptr()
        var tp = top.unsafe_ptr()
        var stp = stats.unsafe_ptr()

        def one_row(r: Int) {src, dst, bp, sp, tp, stp, cols, k, n_bars, n_suppressed, first}:
            var row = dst.unsafe_offset(r * cols)
            var c = 0
            while c + W <= cols:
                row.unsafe_store(c, src.unsafe_load[width=W](r * cols + c))
                c += W
            while c < cols:
                row.unsafe_store(c, src.unsafe_load(r * cols + c))
                c += 1
            for i in range(n_suppressed):
                var id = Int(sp.unsafe_load(i))
                if id >= 0 and id < cols:
                    row.unsafe_store(id, neg_inf[F32]())
            for i in range(n_bars):
                var lo = max(Int(bp.unsafe_load((r * n_bars + i) * 2)), 0)
                var hi = min(Int(bp.unsafe_load((r * n_bars + i) * 2 + 1)), cols)
                if lo < hi:
                    _fill(row, lo, hi)
            var peak: Float32
            if first >= 0 and first < cols:
                peak = _timestamp_rule(row, first, cols)
            else:
                peak = _max(row, 0, cols)
            stp.unsafe_store(2 * r, Float64(peak))
            # a row with every token barred has no distribution: NaN, as log_softmax gives
            var normaliser = _normaliser(row, cols, peak) if peak > neg_inf[F32]() else nan[F64]()
            stp.unsafe_store(2 * r + 1, normaliser)
            _top(row, cols, k, tp.unsafe_offset(r * k))

        if rows == 1:
            one_row(0)
        else:
            parallelize(one_row, rows)
