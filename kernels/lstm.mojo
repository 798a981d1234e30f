# The recurrence of an LSTM cell over a whole sequence (Silero VAD's 128-unit
# cell, run over every 32 ms window of a recording).
#
# Op "lstm_sequence": for t = 0 .. T-1, with h, c starting at h0, c0,
#   g     = gates_in[t] + h @ w_hh              (4H gate pre-activations)
#   i, f, o = sigmoid(g[0:H]), sigmoid(g[H:2H]), sigmoid(g[3H:4H])
#   c     = f * c + i * tanh(g[2H:3H])
#   h     = o * tanh(c);  hs[t] = h
# then h_out, c_out = h, c (the state to carry into the next piece of audio).
# gates_in already holds the input projection x[t] @ w_ih plus both biases:
# that part has no recurrence and runs as one matmul in the front-end graph.
# The gate order i, f, g, o is torch.nn.LSTMCell's, which Silero's weights use.
# sigmoid(x) = (1 + tanh(x / 2)) / 2: no overflow for large |x|.
# Layouts (row-major, float32): gates_in [T, 4H]; w_hh [H, 4H] (the cell's
# weight_hh transposed, so a step reads it row by row, in order); h0, c0,
# h_out, c_out [H]; hs [T, H].
# Time is sequential, so one thread runs it: each step is a 128 x 512
# matrix-vector product (w_hh, 256 kB, stays in L2) plus 4H gate values:
# 3.7 us a step on the AVX-512 machine (about 45 % of one core's FMA peak),
# against 25 us for the same step as NumPy calls from Python
# (benchmarks/bench_lstm.py).
# Tested against a NumPy float64 loop written from the definition above in
# tests/test_lstm.py; the VAD's probabilities against onnxruntime in
# tests/test_vad.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from std.math import tanh
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys.info import simd_width_of
from std.utils import StaticTuple

comptime F32 = DType.float32
comptime W = simd_width_of[F32]()
# Accumulator vectors of one block of gate columns kept in registers while
# the H rows of w_hh stream past: 8 of AVX-512's 32 registers, or of AVX2's 16.
comptime NB = 8


@always_inline
def _sigmoid(x: SIMD[F32, W]) -> SIMD[F32, W]:
    return 0.5 * (1.0 + tanh(0.5 * x))


def _recurrent_gates(
    g: Pointer[mut=True, Float32, _],
    gates_in: Pointer[Float32, _],
    w_hh: Pointer[Float32, _],
    h: Pointer[Float32, _],
    H: Int,
):
    """g[0:4H] = gates_in[0:4H] + h @ w_hh, a block of NB vectors of columns at
    a time (4H a multiple of NB * W, checked by the caller)."""
    var G = 4 * H
    var col = 0
    while col < G:
        var acc = StaticTuple[SIMD[F32, W], NB](SIMD[F32, W](0))
        comptime for v in range(NB):
            acc[v] = gates_in.unsafe_load[width=W](col + v * W)
        for k in range(H):
            var hk = SIMD[F32, W](h.unsafe_load(k))
            var row = w_hh.unsafe_offset(k * G + col)
            comptime for v in range(NB):
                acc[v] = row.unsafe_load[width=W](v * W).fma(hk, acc[v])
        comptime for v in range(NB):
            g.unsafe_store(col + v * W, acc[v])
        col += NB * W


@extensibility.register("lstm_sequence")
struct LstmSequence:
    @staticmethod
    def execute[
        target: StaticString
    ](
        hs: OutputTensor[dtype=F32, rank=2, ...],
        h_out: OutputTensor[dtype=F32, rank=1, ...],
        c_out: OutputTensor[dtype=F32, rank=1, ...],
        gates_in: InputTensor[dtype=F32, rank=2, ...],
        w_hh: InputTensor[dtype=F32, rank=2, ...],
        h0: InputTensor[dtype=F32, rank=1, ...],
        c0: InputTensor[dtype=F32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu":
            raise Error("lstm_sequence: no GPU path (the VAD runs on the CPU)")
        var T = gates_in.dim_size(0)
        var H = h0.dim_size(0)
        if gates_in.dim_size(1) != 4 * H or w_hh.dim_size(0) != H or w_hh.dim_size(1) != 4 * H:
            raise Error("lstm_sequence: expected gates_in [T, 4H], w_hh [H, 4H] for h0 [H]")
        if (4 * H) % (NB * W) != 0:  # whole blocks of NB vectors of gate columns
            raise Error("lstm_sequence: the hidden size must be a multiple of 2 * the SIMD width")
        var gp = gates_in.unsafe_ptr()
        var wp = w_hh.unsafe_ptr()
        var hsp = hs.unsafe_ptr()
        var hp = h_out.unsafe_ptr()
        var cp = c_out.unsafe_ptr()
        var h0p = h0.unsafe_ptr()
        var c0p = c0.unsafe_ptr()
        # h and c live in the outputs; g holds one step's gates.
        for j in range(H):
            hp.unsafe_store(j, h0p.unsafe_load(j))
            cp.unsafe_store(j, c0p.unsafe_load(j))
        var g = unsafe_alloc[Float32](4 * H)
        for t in range(T):
            _recurrent_gates(g, gp.unsafe_offset(t * 4 * H), wp, hp, H)
            var j = 0
            while j < H:
                var i_gate = _sigmoid(g.unsafe_load[width=W](j))
                var f_gate = _sigmoid(g.unsafe_load[width=W](H + j))
                var cell = tanh(g.unsafe_load[width=W](2 * H + j))
                var o_gate = _sigmoid(g.unsafe_load[width=W](3 * H + j))
                var c = f_gate * cp.unsafe_load[width=W](j) + i_gate * cell
                var h = o_gate * tanh(c)
                cp.unsafe_store(j, c)
                hp.unsafe_store(j, h)
                hsp.unsafe_store(t * H + j, h)
                j += W
        g.unsafe_free()
