# GPU branch of "layernorm" and "add_layernorm": one block of TPB threads per
# row, fp32 block reductions, the same shifted two-pass numerics as the CPU
# kernel in layernorm.mojo (shift by the row's first value, mean of shifted
# values, centred sum of squares, exact 1/sqrt rather than rsqrt.approx).
# Compile-checked for sm_90 / sm_80 / gfx942 by maxwhisper_kernels.gpu_check;
# never run on a GPU.
from max.gpu import thread_idx, block_idx, MAX_THREADS_PER_BLOCK_METADATA
from max.gpu.host import DeviceContext
from max.gpu.primitives import block
from std.math import sqrt
from std.memory import Pointer
from std.utils import StaticTuple

comptime F32 = DType.float32
# 128 threads: a Whisper row is 384-1280 wide, so each thread takes 3-10
# columns; more threads would idle in the reductions.
comptime TPB = 128


@always_inline
def _value[
    dtype: DType, fused_add: Bool
](x: Pointer[Scalar[dtype], MutAnyOrigin], r: Pointer[Scalar[dtype], MutAnyOrigin], i: Int) -> Float32:
    comptime if fused_add:
        # Summed in the storage dtype first: the CPU path stores s and
        # normalises what it stored.
        return (x.unsafe_load(i) + r.unsafe_load(i)).cast[F32]()
    else:
        return x.unsafe_load(i).cast[F32]()


@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(TPB)))
def _layernorm_kernel[
    dtype: DType, fused_add: Bool
](
    x: Pointer[Scalar[dtype], MutAnyOrigin],
    r: Pointer[Scalar[dtype], MutAnyOrigin],
    y: Pointer[Scalar[dtype], MutAnyOrigin],
    s: Pointer[Scalar[dtype], MutAnyOrigin],
    gamma: Pointer[Scalar[dtype], MutAnyOrigin],
    beta: Pointer[Scalar[dtype], MutAnyOrigin],
    cols: Int32,
    eps: Float32,
):
    var base = Int64(block_idx.x) * Int64(cols)
    var tid = Int32(thread_idx.x)

    # Each thread owns columns tid, tid + TPB, ...; with the fused add it
    # writes s at those columns and later reads back only its own writes,
    # so no barrier is needed between the add and the passes.
    var shift = _value[dtype, fused_add](x, r, Int(base))
    var acc: Float32 = 0
    var c = tid
    while c < cols:
        comptime if fused_add:
            var i = Int(base + Int64(c))
            s.unsafe_store(i, x.unsafe_load(i) + r.unsafe_load(i))
        acc += _value[dtype, fused_add](x, r, Int(base + Int64(c))) - shift
        c += TPB
    var mean = block.sum[block_size=TPB](acc) / Float32(cols)

    acc = 0
    c = tid
    while c < cols:
        var d = (_value[dtype, fused_add](x, r, Int(base + Int64(c))) - shift) - mean
        acc += d * d
        c += TPB
    var rstd = 1.0 / sqrt(block.sum[block_size=TPB](acc) / Float32(cols) + eps)

    c = tid
    while c < cols:
        var d = (_value[dtype, fused_add](x, r, Int(base + Int64(c))) - shift) - mean
        var g = gamma.unsafe_load(Int(c)).cast[F32]()
        var b = beta.unsafe_load(Int(c)).cast[F32]()
        y.unsafe_store(Int(base + Int64(c)), (d * rstd * g + b).cast[dtype]())
        c += TPB


def layernorm_gpu[
    dtype: DType, fused_add: Bool
](
    x: Pointer[Scalar[dtype], MutAnyOrigin],
    r: Pointer[Scalar[dtype], MutAnyOrigin],
    y: Pointer[Scalar[dtype], MutAnyOrigin],
    s: Pointer[Scalar[dtype], MutAnyOrigin],
    gamma: Pointer[Scalar[dtype], MutAnyOrigin],
    beta: Pointer[Scalar[dtype], MutAnyOrigin],
    rows: Int,
    cols: Int,
    eps: Float32,
    ctx: DeviceContext,
) raises:
    """Launches one block per row; r and s are read only when fused_add."""
    if rows == 0:
        return
    ctx.enqueue_function[_layernorm_kernel[dtype, fused_add]](
        x, r, y, s, gamma, beta, Int32(cols), eps, grid_dim=rows, block_dim=TPB
    )
