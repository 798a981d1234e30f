# Cross-attention over int8 keys and values, each 64-value row with its own
# float32 scale: what the int8 decoder (compute_type="int8") attends over.
#
# Op "attention_int8kv": out = softmax(scale * q @ K^T) @ V, where key t of a
# head is K[t] = ks[t] * k[t] and value t is V[t] = vs[t] * v[t].
# Layouts (row-major): q [B, H, Tq, D] float32; k, v [Bk, H, Tk, D] int8;
#   ks, vs [Bk, H, Tk] float32 (written by the encoder graph, graph/layers.py
#   cross_kv: per row, scale = max |x| / 127, k = roundeven(x / scale));
#   out [B, H, Tq, D] float32. B is a multiple of
#   Bk: query batch b reads key/value batch b // (B / Bk), so beams share
#   their audio's rows.
# Why: every decoder step reads every key and value of its audio. A scale per
# row keeps each row's own range (rows differ by orders of magnitude), and
# int8 halves what float16 read: 4.6 MB a step for tiny.en, 37 MB for the
# batched pipeline's 8 audios.
# Algorithm: a few query rows per head (decoding steps, beams) take
# attention.mojo's direct path with scales: a score is scaled after its dot
# product, a probability before it weighs its value row, and the normaliser
# sums the probabilities themselves. More rows (a window's first step, the
# whole prompt at once) dequantize the keys and values into float32 once and
# take the float32 op's paths: that happens once a window.
# Tested against NumPy float64 attention over the dequantized keys and values
# in tests/test_attention_int8kv.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from max.algorithm.backend.cpu.parallelize import parallelize
from std.math import ceildiv
from std.memory.alloc import unsafe_alloc
from .attention import SMALL, W, attention_cpu

comptime F32 = DType.float32
comptime I8 = DType.int8
comptime ROWS_PER_ITEM = 256  # key/value rows dequantized per work item


@extensibility.register("attention_int8kv")
struct AttentionInt8KV:
    @staticmethod
    def execute[
        target: StaticString
    ](
        output: OutputTensor[dtype=F32, rank=4, ...],
        q: InputTensor[dtype=F32, rank=4, ...],
        k: InputTensor[dtype=I8, rank=4, ...],
        v: InputTensor[dtype=I8, rank=4, ...],
        k_scale: InputTensor[dtype=F32, rank=3, ...],
        v_scale: InputTensor[dtype=F32, rank=3, ...],
        scale: InputTensor[dtype=F32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu":
            raise Error("attention_int8kv: no path for target ", target, " (compute_type='int8' runs on the CPU)")
        var B = q.dim_size(0)
        var H = q.dim_size(1)
        var Tq = q.dim_size(2)
        var D = q.dim_size(3)
        var Bk = k.dim_size(0)
        var Tk = k.dim_size(2)
        if Bk == 0 or B % Bk != 0 or k.dim_size(1) != H or k.dim_size(3) != D:
            raise Error("attention_int8kv: keys [", Bk, ", ", k.dim_size(1), ", ", Tk, ", ", k.dim_size(3),
                        "] do not fit queries [", B, ", ", H, ", ", Tq, ", ", D, "]")
        for i in range(3):
            if k_scale.dim_size(i) != k.dim_size(i) or v_scale.dim_size(i) != k.dim_size(i):
                raise Error("attention_int8kv: the scales must be [", Bk, ", ", H, ", ", Tk, "]")
        if B == 0 or Tq == 0:
            return
        var qp = q.unsafe_ptr()
        var kp = k.unsafe_ptr()
        var vp = v.unsafe_ptr()
        var ksp = k_scale.unsafe_ptr()
        var vsp = v_scale.unsafe_ptr()
        var op = output.unsafe_ptr()
        var s = scale.unsafe_ptr().unsafe_load(0)
        if (B // Bk) * Tq <= SMALL and D % W == 0:
            attention_cpu[F32, I8, False, True](qp, kp, vp, ksp, vsp, op, B, Bk, H, Tq, Tk, D, s)
            return

        var n = Bk * H * Tk
        var kf = unsafe_alloc[Float32](n * D)
        var vf = unsafe_alloc[Float32](n * D)

        def dequantize(item: Int) {kp, vp, ksp, vsp, kf, vf, n, D}:
            for r in range(item * ROWS_PER_ITEM, min(n, (item + 1) * ROWS_PER_ITEM)):
                var a = ksp.unsafe_load(r)
                var b = vsp.unsafe_load(r)
                for d in range(r * D, (r + 1) * D):
                    kf.unsafe_store(d, kp.unsafe_load(d).cast[F32]() * a)
                    vf.unsafe_store(d, vp.unsafe_load(d).cast[F32]() * b)

        parallelize(dequantize, ceildiv(n, ROWS_PER_ITEM))
        attention_cpu[F32, F32, False](qp, kf, vf, ksp, vsp, op, B, Bk, H, Tq, Tk, D, s)
        kf.unsafe_free()
        vf.unsafe_free()
