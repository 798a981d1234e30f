# Whisper's log-mel spectrogram (whisper/audio.py: log_mel_spectrogram).
#
# Op "log_mel": audio [L] float32 at 16 kHz (any zero padding already
# appended), filters [n_mels, 201] (Slaney mel filterbank) ->
# output [n_mels, L // 160].
# Definition: reflect-pad 200 samples each side; frames of 400 samples every
# 160; periodic Hann window; |DFT|^2 for bins 0..200; the last frame is
# dropped; mel = filters @ power; log10(max(mel, 1e-10)); clamp to
# (global max - 8); (x + 4) / 4.
# Algorithm: a real DFT computed as a matrix product, frames in SIMD lanes.
# With m = 1..200, the symmetric window (w[m] = w[400 - m], w[0] = 0) folds
# each frame x into e[m] = x[m] + x[400 - m] and o[m] = x[m] - x[400 - m]
# (e[200] = x[200], o[200] = 0); then with t = 2 pi k m / 400
#   Re X[k] = sum_m w[m] e[m] cos t,   Im X[k] = -sum_m w[m] o[m] sin t.
# Bin 200 - k has the same cos t and sin t up to a factor (-1)^m (and a sign
# on Im), so splitting each sum into its even-m and odd-m halves E and O
# gives both bins from one set of products: X[k] = E + O, X[200 - k] = E - O,
# and only bins 0..100 are computed, half the multiply-adds of a plain DFT.
# A work item is a block of FB frames. Its audio is transposed once into
# [sample within hop][hop], so that the vector of one sample index over
# the block's frames is a contiguous load (frame f starts at hop f). Each
# register tile holds the four half-sums of KJ bins x FB frames, takes the
# windowed cos/sin table entries as broadcasts, and leaves the power
# spectrum as [bin][frame] vectors. Each mel filter is nonzero on a short
# run of bins (found once per call from the filters input), so the mel
# product only visits those, and the [mel][frame] results are already in
# the output's row-major layout. Angles are reduced exactly as
# (k * m) mod 400 into a float64 table, so the fp32 tables carry no phase
# drift. Only the first and last blocks need the reflected indexing. A
# second parallel pass applies the clamp against the global max (the
# maximum of the blocks' maxima).
# Tested against a float64 NumPy rfft reference in tests/test_log_mel.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from .log_mel_gpu import log_mel_gpu
from max.algorithm.backend.cpu.parallelize import parallelize
from std.math import cos, log10, pi, ceildiv
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys.info import num_physical_cores, simd_width_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
comptime N_FFT = 400
comptime HOP = 160
comptime HALF = N_FFT // 2
comptime N_FREQ = HALF + 1
comptime QUARTER = N_FFT // 4  # bins 0..QUARTER are computed
comptime FV = 2  # frame vectors per block
comptime FB = FV * W  # frames per work item
comptime XS = FB + 2  # hops per block: frame f spans hops f .. f + 2
comptime KJ = 3  # bins per register tile: 4 * KJ * FV accumulators
comptime N_BINS = ceildiv(QUARTER + 1, KJ) * KJ  # table rows, zero past QUARTER


@always_inline
def _reflect(i: Int, n: Int) -> Int:
    """Index into a signal of length n extended by repeated reflection about
    its end samples (numpy.pad mode="reflect")."""
    if n == 1:
        return 0
    var period = 2 * (n - 1)
    var j = i % period
    if j < 0:
        j += period
    if j >= n:
        j = period - j
    return j


@extensibility.register("log_mel")
struct LogMel:
    @staticmethod
    def execute[
        target: StaticString
    ](
        output: OutputTensor[dtype=F32, rank=2, ...],
        audio: InputTensor[dtype=F32, rank=1, ...],
        filters: InputTensor[dtype=F32, rank=2, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target == "gpu":
            log_mel_gpu(
                audio.unsafe_ptr(), filters.unsafe_ptr(), output.unsafe_ptr(),
                audio.dim_size(0), output.dim_size(0), output.dim_size(1), ctx,
            )
            return
        comptime if target != "cpu":
            raise Error("log_mel: no path for target ", target)
        log_mel_cpu(
            audio.unsafe_ptr(),
            filters.unsafe_ptr(),
            output.unsafe_ptr(),
            audio.dim_size(0),
            output.dim_size(0),
            output.dim_size(1),
        )


def log_mel_cpu[
    o_origin: MutOrigin, //
](
    xp: Pointer[Float32, _],
    fp: Pointer[Float32, _],
    op: Pointer[Float32, o_origin],
    L: Int,
    n_mels: Int,
    n_frames: Int,
):
    # cos, sin (2 pi j / 400) and the window, for j in 0..399, in float64.
    var turn = unsafe_alloc[Float64](3 * N_FFT)
    for j in range(N_FFT):
        var c = cos(2.0 * pi * Float64(j) / Float64(N_FFT))
        turn.unsafe_store(j, c)
        turn.unsafe_store(N_FFT + (j + N_FFT // 4) % N_FFT, c)
        turn.unsafe_store(2 * N_FFT + j, 0.5 - 0.5 * c)
    # Rows 4k .. 4k + 3 hold bin k's windowed cos at even m = 2i + 2, cos at
    # odd m = 2i + 1, then sin at the same even and odd m (i = 0..99); the
    # angle index (k * m) mod 400 steps by 2k mod 400 from one i to the next.
    var table = unsafe_alloc[Float32](4 * N_BINS * QUARTER)
    for k in range(N_BINS):
        comptime for part in range(4):
            var row = table.unsafe_offset((4 * k + part) * QUARTER)
            var trig = turn.unsafe_offset(0 if part < 2 else N_FFT)
            var r = (k * (2 - part % 2)) % N_FFT
            var step = (2 * k) % N_FFT
            for i in range(QUARTER):
                var mm = 2 * i + 2 - part % 2
                var x: Float64 = 0
                if k <= QUARTER:
                    x = turn.unsafe_load(2 * N_FFT + mm) * trig.unsafe_load(r)
                row.unsafe_store(i, Float32(x))
                r += step
                if r >= N_FFT:
                    r -= N_FFT
    turn.unsafe_free()
    var band = unsafe_alloc[Int](2 * n_mels)
    for m in range(n_mels):
        var lo = N_FREQ
        var hi = -1
        for k in range(N_FREQ):
            if fp.unsafe_load(m * N_FREQ + k) != 0:
                lo = min(lo, k)
                hi = k
        band.unsafe_store(2 * m, lo)
        band.unsafe_store(2 * m + 1, hi)

    var blocks = ceildiv(n_frames, FB)
    var block_max = unsafe_alloc[Float32](blocks)

    def frames(b: Int) {xp, fp, op, table, band, block_max, L, n_mels, n_frames}:
        var f0 = b * FB
        var nf = min(FB, n_frames - f0)
        # xt[r * XS + h] = sample r of hop h, hop 0 starting 200 samples
        # before frame f0's centre; frames past nf get harmless samples.
        var xt = unsafe_alloc[Float32](HOP * XS)
        var base = f0 * HOP - HALF
        for h in range(XS):
            var s0 = base + h * HOP
            if s0 >= 0 and s0 + HOP <= L:
                for r in range(HOP):
                    xt.unsafe_store(r * XS + h, xp.unsafe_load(s0 + r))
            else:
                for r in range(HOP):
                    xt.unsafe_store(r * XS + h, xp.unsafe_load(_reflect(s0 + r, L)))
        # Folded halves [i][frame]: e and o at even m = 2i + 2 and odd m = 2i + 1.
        var folded = unsafe_alloc[Float32](4 * QUARTER * FB)
        for i in range(QUARTER):
            comptime for part in range(2):
                var mm = 2 * i + 2 - part
                var a = xt.unsafe_offset((mm % HOP) * XS + mm // HOP)
                var z = xt.unsafe_offset(((N_FFT - mm) % HOP) * XS + (N_FFT - mm) // HOP)
                comptime for c in range(FV):
                    var xa = a.unsafe_load[width=W](c * W)
                    var xz = z.unsafe_load[width=W](c * W)
                    var ev = xa + xz
                    var od = xa - xz
                    if mm == HALF:
                        ev = xa
                        od = 0
                    folded.unsafe_store((part * QUARTER + i) * FB + c * W, ev)
                    folded.unsafe_store(((2 + part) * QUARTER + i) * FB + c * W, od)
        xt.unsafe_free()

        var power = unsafe_alloc[Float32](N_FREQ * FB)
        for k0 in range(0, N_BINS, KJ):
            var rows = table.unsafe_offset(4 * k0 * QUARTER)
            # acc[(part * KJ + j) * FV + c]: part 0/1 = Re even/odd m, 2/3 = Im.
            var acc = StaticTuple[SIMD[F32, W], 4 * KJ * FV](SIMD[F32, W](0))
            for i in range(QUARTER):
                comptime for part in range(4):
                    var xv = StaticTuple[SIMD[F32, W], FV](SIMD[F32, W](0))
                    comptime for c in range(FV):
                        xv[c] = folded.unsafe_load[width=W]((part * QUARTER + i) * FB + c * W)
                    comptime for j in range(KJ):
                        var tb = SIMD[F32, W](rows.unsafe_load((4 * j + part) * QUARTER + i))
                        comptime for c in range(FV):
                            acc[(part * KJ + j) * FV + c] = xv[c].fma(tb, acc[(part * KJ + j) * FV + c])
            comptime for j in range(KJ):
                var k = k0 + j
                if k <= QUARTER:
                    comptime for c in range(FV):
                        var re_e = acc[(0 * KJ + j) * FV + c]
                        var re_o = acc[(1 * KJ + j) * FV + c]
                        var im_e = acc[(2 * KJ + j) * FV + c]
                        var im_o = acc[(3 * KJ + j) * FV + c]
                        var re = re_e + re_o
                        var im = im_e + im_o
                        power.unsafe_store(k * FB + c * W, re.fma(re, im * im))
                        re = re_e - re_o
                        im = im_e - im_o
                        power.unsafe_store((HALF - k) * FB + c * W, re.fma(re, im * im))
        folded.unsafe_free()

        var peak = SIMD[F32, W](-Float32.MAX)
        for m in range(n_mels):
            var mel = StaticTuple[SIMD[F32, W], FV](SIMD[F32, W](0))
            for k in range(band.unsafe_load(2 * m), band.unsafe_load(2 * m + 1) + 1):
                var wk = SIMD[F32, W](fp.unsafe_load(m * N_FREQ + k))
                comptime for c in range(FV):
                    mel[c] = power.unsafe_load[width=W](k * FB + c * W).fma(wk, mel[c])
            var orow = op.unsafe_offset(m * n_frames + f0)
            comptime for c in range(FV):
                var lg = log10(max(mel[c], 1e-10))
                if (c + 1) * W <= nf:
                    orow.unsafe_store(c * W, lg)
                    peak = max(peak, lg)
                else:
                    for i in range(max(nf - c * W, 0)):
                        orow.unsafe_store(c * W + i, lg[i])
                        peak[0] = max(peak[0], lg[i])
        block_max.unsafe_store(b, peak.reduce_max())
        power.unsafe_free()

    parallelize(frames, blocks)
    table.unsafe_free()
    band.unsafe_free()

    var top = -Float32.MAX
    for b in range(blocks):
        top = max(top, block_max.unsafe_load(b))
    block_max.unsafe_free()
    var floor = top - 8.0
    var chunks = min(n_mels, num_physical_cores() * 4)

    def clamp(c: Int) {op, n_mels, n_frames, chunks, floor}:
        var i = c * n_mels // chunks * n_frames
        var stop = (c + 1) * n_mels // chunks * n_frames
        while i + W <= stop:
            op.unsafe_store(i, (max(op.unsafe_load[width=W](i), floor) + 4.0) * 0.25)
            i += W
        while i < stop:
            op.unsafe_store(i, (max(op.unsafe_load(i), floor) + 4.0) * 0.25)
            i += 1

    parallelize(clamp, chunks)
