# GPU branch of "linear": y [M, N] = x [M, K] @ w [N, K]^T + b, w float32 or
# float16, as in linear.mojo.
# Decoder steps feed a few rows (one per beam), so the layer is bound by
# reading w once: one warp per weight row, each lane streaming 16-byte
# chunks of the row (4 float32 or 8 float16 weights per load) and
# multiplying each chunk into MB rows of x at a time (x is small and stays in
# L1/L2); a butterfly sum over the warp gives the dot products. Rows of x
# beyond MB re-read w from L2: the kernel is meant for few rows (the
# encoder's large products are MAX's matmuls).
# fp32 accumulation. Compile-checked for sm_90 / sm_80 / gfx942 by
# maxwhisper_kernels.gpu_check.
from max.gpu import thread_idx, block_idx, MAX_THREADS_PER_BLOCK_METADATA
from max.gpu.host import DeviceContext
from .gpu_reduce import warp_sum
from std.math import ceildiv
from std.memory import Pointer
from std.sys.info import size_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime WARPS = 4  # weight rows per block
comptime TPB = WARPS * 32
comptime MB = 4  # rows of x per pass over a weight row




@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(TPB)))
def _linear_kernel[
    wtype: DType
](
    x: Pointer[Float32, MutAnyOrigin],
    w: Pointer[Scalar[wtype], MutAnyOrigin],
    b: Pointer[Float32, MutAnyOrigin],
    y: Pointer[Float32, MutAnyOrigin],
    M: Int32,
    K: Int32,
    N: Int32,
):
    comptime VW = 16 // size_of[wtype]()  # weights per 16-byte load
    var tid = Int32(thread_idx.x)
    var lane = tid % 32
    var n = Int32(block_idx.x) * Int32(WARPS) + tid // 32
    if n >= N:
        return
    var row = Int64(n) * Int64(K)
    var bias = b.unsafe_load(Int(n))
    # 16-byte loads need every row to start 16-byte aligned: K % VW == 0.
    var vector = K % Int32(VW) == 0
    var m0: Int32 = 0
    while m0 < M:
        var acc = StaticTuple[SIMD[F32, VW], MB](SIMD[F32, VW](0))
        if vector:
            var k = lane * Int32(VW)
            while k < K:
                var wv = w.unsafe_load[width=VW, alignment=16](Int(row + Int64(k))).cast[F32]()
                comptime for mm in range(MB):
                    if m0 + Int32(mm) < M:
                        var xo = Int64(m0 + Int32(mm)) * Int64(K) + Int64(k)
                        acc[mm] = x.unsafe_load[width=VW, alignment=16](Int(xo)).fma(wv, acc[mm])
                k += Int32(32 * VW)
        else:
            var k = lane
            while k < K:
                var wk = w.unsafe_load(Int(row + Int64(k))).cast[F32]()
                comptime for mm in range(MB):
                    if m0 + Int32(mm) < M:
                        var xo = Int64(m0 + Int32(mm)) * Int64(K) + Int64(k)
                        acc[mm][0] += x.unsafe_load(Int(xo)) * wk
                k += 32
        comptime for mm in range(MB):
            var d = warp_sum(acc[mm].reduce_add())
            if lane == 0 and m0 + Int32(mm) < M:
                y.unsafe_store(Int(Int64(m0 + Int32(mm)) * Int64(N) + Int64(n)), d + bias)
        m0 += Int32(MB)


def linear_gpu[
    wtype: DType
](
    x: Pointer[Float32, MutAnyOrigin],
    w: Pointer[Scalar[wtype], MutAnyOrigin],
    b: Pointer[Float32, MutAnyOrigin],
    y: Pointer[Float32, MutAnyOrigin],
    M: Int,
    K: Int,
    N: Int,
    ctx: DeviceContext,
) raises:
    """Op "linear" on the GPU (shapes as in linear.mojo)."""
    if M == 0 or N == 0:
        return
    ctx.enqueue_function[_linear_kernel[wtype]](
        x, w, b, y, Int32(M), Int32(K), Int32(N),
        grid_dim=ceildiv(N, WARPS), block_dim=TPB,
    )
