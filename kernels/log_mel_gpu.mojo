# GPU branch of "log_mel": audio [L] float32 -> [n_mels, L // 160], the same
# definition as log_mel.mojo (reflect padding by 200, periodic Hann window of
# 400, |DFT|^2 of bins 0..200, mel filterbank, log10 of at least 1e-10, clamp
# to the global max - 8, (x + 4) / 4).
# Two kernels on one stream:
# - _frame_kernel: one block per frame (a 30 s window has 3000; a long audio
#   has all of its frames in flight at once). The block stages the frame's
#   windowed samples and a 400-entry cosine table in shared memory; each
#   thread takes bins k (tid, tid + TPB) and sums the direct DFT
#   sum_m x[m] (cos - i sin)(2 pi k m / 400), stepping the table index
#   (k * m) mod 400 exactly (sin t = cos(t - pi / 2): index + 300); the power
#   spectrum goes to shared memory, each thread then takes mel rows (filters
#   @ power), log10, and the block's maximum goes to frame_max[frame].
# - _clamp_kernel: every block reduces frame_max to the global maximum (a few
#   thousand values, cheaper than a third launch) and clamps and scales its
#   slice of the output.
# The table is computed in float32 from the exact integer angle index, so no
# phase drift accumulates; the DFT sums 400 products in fp32 (the CPU path
# folds symmetric halves with float64 tables): GPU tolerances are looser.
# Compile-checked for sm_90 / sm_80 / gfx942 by maxwhisper_kernels.gpu_check.
from max.gpu import thread_idx, block_idx, barrier, MAX_THREADS_PER_BLOCK_METADATA
from max.gpu.host import DeviceContext
from max.gpu.memory import AddressSpace
from max.gpu.primitives import block
from std.math import ceildiv, cos, log10, pi
from std.memory import Pointer, stack_allocation
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime N_FFT = 400
comptime HOP = 160
comptime HALF = N_FFT // 2
comptime N_FREQ = HALF + 1
comptime TPB = 128
comptime CLAMP_PER_THREAD = 8  # output values per thread in _clamp_kernel


@always_inline
def _reflect(i: Int32, n: Int32) -> Int32:
    """numpy.pad(mode="reflect") index for a signal of n samples; i is at
    most 200 samples outside, so one reflection suffices when n > 200 and
    the loop covers shorter signals."""
    if n == 1:
        return 0
    var j = i
    while j < 0 or j >= n:
        j = -j if j < 0 else 2 * (n - 1) - j
    return j


@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(TPB)))
def _frame_kernel(
    audio: Pointer[Float32, MutAnyOrigin],
    filters: Pointer[Float32, MutAnyOrigin],
    mels: Pointer[Float32, MutAnyOrigin],
    frame_max: Pointer[Float32, MutAnyOrigin],
    L: Int32,
    n_mels: Int32,
    n_frames: Int32,
):
    var f = Int32(block_idx.x)
    var tid = Int32(thread_idx.x)
    var xs = stack_allocation[N_FFT, Float32, alignment=16, address_space=AddressSpace.SHARED]()
    var cs = stack_allocation[N_FFT, Float32, alignment=16, address_space=AddressSpace.SHARED]()
    var pw = stack_allocation[N_FREQ, Float32, alignment=16, address_space=AddressSpace.SHARED]()
    var j = tid
    while j < N_FFT:
        var c = cos(Float32(j) * Float32(2.0 * pi / Float64(N_FFT)))
        cs.unsafe_store(Int(j), c)
        var sample = audio.unsafe_load(Int(_reflect(f * HOP - HALF + j, L)))
        xs.unsafe_store(Int(j), sample * (0.5 - 0.5 * c))
        j += TPB
    barrier()

    var k = tid
    while k < N_FREQ:
        var re: Float32 = 0
        var im: Float32 = 0
        var r: Int32 = 0  # (k * m) mod 400
        for m in range(N_FFT):
            var x = xs.unsafe_load(m)
            var s = r + 300
            if s >= N_FFT:
                s -= N_FFT
            re = x.fma(cs.unsafe_load(Int(r)), re)
            im = x.fma(cs.unsafe_load(Int(s)), im)
            r += k
            if r >= N_FFT:
                r -= N_FFT
        pw.unsafe_store(Int(k), re.fma(re, im * im))
        k += TPB
    barrier()

    var peak = -Float32.MAX
    var mel = tid
    while mel < n_mels:
        var acc: Float32 = 0
        var row = filters.unsafe_offset(Int(mel) * N_FREQ)
        for b in range(N_FREQ):
            acc = row.unsafe_load(b).fma(pw.unsafe_load(b), acc)
        var lg = log10(max(acc, 1e-10))
        mels.unsafe_store(Int(Int64(mel) * Int64(n_frames) + Int64(f)), lg)
        peak = max(peak, lg)
        mel += TPB
    var top = block.max[block_size=TPB, broadcast=False](peak)
    if tid == 0:
        frame_max.unsafe_store(Int(f), top)


@__llvm_metadata(MAX_THREADS_PER_BLOCK_METADATA=StaticTuple[Int32, 1](Int32(TPB)))
def _clamp_kernel(
    mels: Pointer[Float32, MutAnyOrigin],
    frame_max: Pointer[Float32, MutAnyOrigin],
    n_frames: Int32,
    total: Int32,
):
    var tid = Int32(thread_idx.x)
    var peak = -Float32.MAX
    var i = tid
    while i < n_frames:
        peak = max(peak, frame_max.unsafe_load(Int(i)))
        i += TPB
    var floor = block.max[block_size=TPB, broadcast=True](peak) - 8.0
    var e = Int32(block_idx.x) * Int32(TPB * CLAMP_PER_THREAD) + tid
    comptime for _ in range(CLAMP_PER_THREAD):
        if e < total:
            mels.unsafe_store(Int(e), (max(mels.unsafe_load(Int(e)), floor) + 4.0) * 0.25)
        e += TPB


def log_mel_gpu(
    audio: Pointer[Float32, MutAnyOrigin],
    filters: Pointer[Float32, MutAnyOrigin],
    mels: Pointer[Float32, MutAnyOrigin],
    L: Int,
    n_mels: Int,
    n_frames: Int,
    ctx: DeviceContext,
) raises:
    """Op "log_mel" on the GPU (shapes as in log_mel.mojo)."""
    if n_frames == 0 or n_mels == 0:
        return
    if L == 0:
        raise Error("log_mel: empty audio")
    # Per-frame maxima; freed in stream order after the clamp kernel.
    var frame_max = ctx.enqueue_create_buffer[F32](n_frames)
    var fm = frame_max.unsafe_ptr().unsafe_origin_cast[MutAnyOrigin]()
    ctx.enqueue_function[_frame_kernel](
        audio, filters, mels, fm, Int32(L), Int32(n_mels), Int32(n_frames), grid_dim=n_frames, block_dim=TPB
    )
    var total = n_mels * n_frames
    ctx.enqueue_function[_clamp_kernel](
        mels, fm, Int32(n_frames), Int32(total), grid_dim=ceildiv(total, TPB * CLAMP_PER_THREAD), block_dim=TPB
    )
