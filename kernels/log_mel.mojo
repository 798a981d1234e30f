# Whisper's log-mel spectrogram (whisper/audio.py: log_mel_spectrogram).
#
# Op "log_mel": audio [L] float32 at 16 kHz (any zero padding already
# appended), filters [n_mels, 201] (Slaney mel filterbank) ->
# output [n_mels, L // 160].
# Definition: reflect-pad 200 samples each side; frames of 400 samples every
# 160; periodic Hann window; |DFT|^2 for bins 0..200; the last frame is
# dropped; mel = filters @ power; log10(max(mel, 1e-10)); clamp to
# (global max - 8); (x + 4) / 4.
# Algorithm: a real DFT as dot products against cos/sin tables. The window is
# symmetric (w[n] = w[400 - n]), so each frame folds into even and odd halves
# of 200 samples first, halving the multiply-adds. Angles are reduced exactly
# as (k * n) mod 400 into a float64 table, so the fp32 tables carry no phase
# drift. Frames are independent and run in parallel; the global max needs a
# second, cheap pass.
# Tested against a float64 NumPy rfft reference in tests/test_log_mel.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from max.algorithm.backend.cpu.parallelize import parallelize
from std.math import cos, log10, pi, ceildiv
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys.info import num_physical_cores

comptime F32 = DType.float32
comptime N_FFT = 400
comptime HOP = 160
comptime HALF = N_FFT // 2
comptime N_FREQ = HALF + 1
comptime W = 8


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


@always_inline
def _dot(a: Pointer[Float32, _], b: Pointer[Float32, _], n: Int) -> Float32:
    var acc = SIMD[F32, W](0)
    var i = 0
    while i + W <= n:
        acc = a.unsafe_load[width=W](i).fma(b.unsafe_load[width=W](i), acc)
        i += W
    var total = acc.reduce_add()
    while i < n:
        total += a.unsafe_load(i) * b.unsafe_load(i)
        i += 1
    return total


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
        comptime if target != "cpu":
            raise Error("log_mel: no GPU path yet")
        var L = audio.dim_size(0)
        var n_mels = output.dim_size(0)
        var n_frames = output.dim_size(1)
        var xp = audio.unsafe_ptr()
        var fp = filters.unsafe_ptr()
        var op = output.unsafe_ptr()

        # cos(2 pi j / 400) for j in 0..399; sin is the same table shifted.
        var turn = unsafe_alloc[Float64](N_FFT)
        for j in range(N_FFT):
            turn.unsafe_store(j, cos(2.0 * pi * Float64(j) / Float64(N_FFT)))
        var window = unsafe_alloc[Float32](N_FFT)
        for n in range(N_FFT):
            window.unsafe_store(n, Float32(0.5 - 0.5 * turn.unsafe_load(n)))
        var cos_t = unsafe_alloc[Float32](N_FREQ * HALF)
        var sin_t = unsafe_alloc[Float32](N_FREQ * HALF)
        for k in range(N_FREQ):
            for n in range(HALF):
                var r = (k * n) % N_FFT
                cos_t.unsafe_store(k * HALF + n, Float32(turn.unsafe_load(r)))
                sin_t.unsafe_store(
                    k * HALF + n, Float32(turn.unsafe_load((r + 3 * N_FFT // 4) % N_FFT))
                )
        turn.unsafe_free()

        var chunks = min(n_frames, num_physical_cores() * 8)

        def frames(c: Int) {xp, fp, op, window, cos_t, sin_t, L, n_mels, n_frames, chunks}:
            var even = unsafe_alloc[Float32](HALF)
            var odd = unsafe_alloc[Float32](HALF)
            var power = unsafe_alloc[Float32](N_FREQ)
            for f in range(c * n_frames // chunks, (c + 1) * n_frames // chunks):
                var start = f * HOP - HALF

                @always_inline
                def sample(n: Int) {xp, window, start, L} -> Float32:
                    return window.unsafe_load(n) * xp.unsafe_load(_reflect(start + n, L))

                even.unsafe_store(0, sample(0))
                odd.unsafe_store(0, 0)
                for n in range(1, HALF):
                    var a = sample(n)
                    var b = sample(N_FFT - n)
                    even.unsafe_store(n, a + b)
                    odd.unsafe_store(n, a - b)
                var middle = sample(HALF)
                for k in range(N_FREQ):
                    var sign: Float32 = 1 if k % 2 == 0 else -1
                    var re = _dot(even, cos_t.unsafe_offset(k * HALF), HALF) + sign * middle
                    var im = _dot(odd, sin_t.unsafe_offset(k * HALF), HALF)
                    power.unsafe_store(k, re * re + im * im)
                for mel in range(n_mels):
                    var e = _dot(fp.unsafe_offset(mel * N_FREQ), power, N_FREQ)
                    op.unsafe_store(mel * n_frames + f, log10(max(e, 1e-10)))
            even.unsafe_free()
            odd.unsafe_free()
            power.unsafe_free()

        parallelize(frames, chunks)
        window.unsafe_free()
        cos_t.unsafe_free()
        sin_t.unsafe_free()

        var total = n_mels * n_frames
        var peak = -Float32.MAX
        for i in range(total):
            peak = max(peak, op.unsafe_load(i))
        var floor = peak - 8.0
        for i in range(total):
            op.unsafe_store(i, (max(op.unsafe_load(i), floor) + 4.0) / 4.0)
