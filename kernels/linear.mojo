# Matrix-vector style linear layer for the decoder: y = x @ w^T + b.
#
# Op "linear": x [M, K] float32, w [N, K] (float32 or float16, PyTorch's
# layout: one output feature per row), b [N] float32 -> y [M, N] float32.
# The decoder feeds a handful of rows per step (one per beam), so the layer is
# bound by reading w: rows of w are split across the cores, each row is read
# once for all M rows of x, and float16 weights (exact for checkpoints stored
# in float16, such as the CTranslate2 packages) halve the bytes read.
# (compute_type="int8" decoders use the int8 GEMM, matmul_int8.mojo.)
# Weights are requested from memory a few rows ahead (PF_ROWS).
# Products accumulate in float32, four weight rows at a time so the four FMA
# chains run in parallel. With several rows of x (beams, a batch of windows)
# a tile of MR of them shares each loaded and widened weight vector: MR x 4
# accumulators (MR per instruction set at compile time: 4 with 32 vector
# registers, 2 with AVX2's 16). Every output still sums the same products in
# the same order, so results do not depend on M.
# Tested against NumPy float64 in tests/test_linear.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from .linear_gpu import linear_gpu
from .team import Team
from .prefetch import prefetch_range
from std.math import ceildiv
from std.memory import Pointer
from std.sys.info import CompilationTarget, simd_width_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
comptime ROWS = 4  # weight rows per pass
comptime CHUNK = 256  # weight rows per work item
comptime TEAM_CHUNK = 64  # the same for a team (below)
# Each pass requests the weight rows PF_ROWS ahead of the ones it reads. Left
# to the hardware prefetcher, the 1-row float16 vocabulary projection (40 MB)
# drew 14 GB/s on Zen 3 where NumPy's float32 one drew 25. With it: looped
# alone (much of it then in L3) 1.1-1.3 instead of 2.6 ms, from DRAM about
# 2.7 instead of 3.5, a whole decoder step 5.4 instead of 6.8 ms (4, 12, 16,
# 32 and 64 rows ahead were no better than 8).
comptime PF_ROWS = 8
comptime MR = 4 if (CompilationTarget.has_avx512f() or CompilationTarget.has_neon()) else 2


@always_inline
def _dots_tile[
    wtype: DType
](x: Pointer[Float32, _], w: Pointer[Scalar[wtype], _], K: Int) -> StaticTuple[SIMD[F32, ROWS], MR]:
    """_dots for MR consecutive rows of x (K apart) at once."""
    var acc = StaticTuple[SIMD[F32, W], MR * ROWS](SIMD[F32, W](0))
    var k = 0
    while k + W <= K:
        var wv = StaticTuple[SIMD[F32, W], ROWS](SIMD[F32, W](0))
        comptime for r in range(ROWS):
            wv[r] = w.unsafe_load[width=W](r * K + k).cast[F32]()
        comptime for m in range(MR):
            var xv = x.unsafe_load[width=W](m * K + k)
            comptime for r in range(ROWS):
                acc[m * ROWS + r] = wv[r].fma(xv, acc[m * ROWS + r])
        k += W
    var out = StaticTuple[SIMD[F32, ROWS], MR](SIMD[F32, ROWS](0))
    comptime for m in range(MR):
        comptime for r in range(ROWS):
            out[m][r] = acc[m * ROWS + r].reduce_add()
        for t in range(k, K):
            var xt = x.unsafe_load(m * K + t)
            comptime for r in range(ROWS):
                out[m][r] += xt * w.unsafe_load(r * K + t).cast[F32]()
    return out


@always_inline
def _dots[
    wtype: DType
](
    x: Pointer[Float32, _],
    w: Pointer[Scalar[wtype], _],
    K: Int,
) -> SIMD[F32, ROWS]:
    """Dot products of x [K] with ROWS (4) consecutive rows of w."""
    var a0 = SIMD[F32, W](0)
    var a1 = SIMD[F32, W](0)
    var a2 = SIMD[F32, W](0)
    var a3 = SIMD[F32, W](0)
    var k = 0
    while k + W <= K:
        var xv = x.unsafe_load[width=W](k)
        a0 = w.unsafe_load[width=W](k).cast[F32]().fma(xv, a0)
        a1 = w.unsafe_load[width=W](K + k).cast[F32]().fma(xv, a1)
        a2 = w.unsafe_load[width=W](2 * K + k).cast[F32]().fma(xv, a2)
        a3 = w.unsafe_load[width=W](3 * K + k).cast[F32]().fma(xv, a3)
        k += W
    var out = SIMD[F32, ROWS](a0.reduce_add(), a1.reduce_add(), a2.reduce_add(), a3.reduce_add())
    for t in range(k, K):
        var xt = x.unsafe_load(t)
        comptime for r in range(ROWS):
            out[r] += xt * w.unsafe_load(r * K + t).cast[F32]()
    return out


@always_inline
def _dot[wtype: DType](x: Pointer[Float32, _], w: Pointer[Scalar[wtype], _], K: Int) -> Float32:
    var acc = SIMD[F32, W](0)
    var k = 0
    while k + W <= K:
        acc = w.unsafe_load[width=W](k).cast[F32]().fma(x.unsafe_load[width=W](k), acc)
        k += W
    var total = acc.reduce_add()
    for t in range(k, K):
        total += x.unsafe_load(t) * w.unsafe_load(t).cast[F32]()
    return total


def linear_cpu[
    y_origin: MutOrigin, //, wtype: DType
](
    xp: Pointer[Float32, _],
    wp: Pointer[Scalar[wtype], _],
    bp: Pointer[Float32, _],
    yp: Pointer[Float32, y_origin],
    M: Int,
    K: Int,
    N: Int,
    mut team: Team,
):
    """y [M, N] = x [M, K] @ w[N, K]^T + b on the CPU, spread as team says."""
    # A team takes smaller chunks: its members claim them as they come, and
    # 384 rows in chunks of 256 would leave one member a third of the work.
    var chunk = TEAM_CHUNK if team.is_team() else CHUNK

    def rows(item: Int) {xp, wp, bp, yp, M, K, N, chunk}:
        var start = item * chunk
        var stop = min(N, start + chunk)
        var n = start
        while n + ROWS <= stop:
            prefetch_range(wp, min(n + PF_ROWS, N) * K, min(n + PF_ROWS + ROWS, N) * K)
            var bias = bp.unsafe_load[width=ROWS](n)
            var m = 0
            while m + MR <= M:
                var tile = _dots_tile(xp.unsafe_offset(m * K), wp.unsafe_offset(n * K), K)
                comptime for i in range(MR):
                    yp.unsafe_store((m + i) * N + n, tile[i] + bias)
                m += MR
            while m < M:
                var d = _dots(xp.unsafe_offset(m * K), wp.unsafe_offset(n * K), K)
                yp.unsafe_store(m * N + n, d + bias)
                m += 1
            n += ROWS
        while n < stop:
            for m in range(M):
                var d = _dot(xp.unsafe_offset(m * K), wp.unsafe_offset(n * K), K)
                yp.unsafe_store(m * N + n, d + bp.unsafe_load(n))
            n += 1

    # Without a team, one run of chunks per thread (faster in each of 5
    # alternating pairs than chunks handed out one by one), a lone chunk on
    # this thread: parallel_runs.mojo.
    team.runs(ceildiv(N, chunk), rows)


@extensibility.register("linear")
struct Linear:
    @staticmethod
    def execute[
        target: StaticString
    ](
        y: OutputTensor[dtype=F32, rank=2, ...],
        x: InputTensor[dtype=F32, rank=2, ...],
        w: InputTensor[rank=2, ...],
        b: InputTensor[dtype=F32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu" and target != "gpu":
            raise Error("linear: no path for target ", target)
        var M = x.dim_size(0)
        var K = x.dim_size(1)
        var N = w.dim_size(0)
        comptime if target == "gpu":
            linear_gpu[w.dtype](x.unsafe_ptr(), w.unsafe_ptr(), b.unsafe_ptr(), y.unsafe_ptr(), M, K, N, ctx)
            return
        var pool = Team.pool()
        linear_cpu(x.unsafe_ptr(), w.unsafe_ptr(), b.unsafe_ptr(), y.unsafe_ptr(), M, K, N, pool)
