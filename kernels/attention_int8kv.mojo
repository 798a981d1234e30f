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
# attention_direct.mojo's path with scales: a score is scaled after its dot
# product, a probability before it weighs its value row, and the normaliser
# sums the probabilities themselves. More rows (a window's first step, the
# whole prompt at once) dequantize the keys and values into float32 once and
# take the float32 op's paths: that happens once a window.
# Tested against NumPy float64 attention over the dequantized keys and values
# in tests/test_attention_int8kv.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from std.math import ceildiv
from std.memory.alloc import unsafe_alloc
from .attention import attention_cpu
from .attention_direct import SMALL
from .attention_pv import W
from .strides import Strides
from .team import Team

comptime F32 = DType.float32
comptime I8 = DType.int8
comptime ROWS_PER_ITEM = 256  # key/value rows dequantized per work item


def attention_int8kv_cpu[
    o_origin: MutOrigin, //
](
    qp: Pointer[Float32, _],
    kp: Pointer[Int8, _],
    vp: Pointer[Int8, _],
    ksp: Pointer[Float32, _],
    vsp: Pointer[Float32, _],
    op: Pointer[Float32, o_origin],
    B: Int,
    Bk: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    s: Float32,
    rows_at: Strides,
    kf: Pointer[Float32, MutUntrackedOrigin],
    vf: Pointer[Float32, MutUntrackedOrigin],
    mut team: Team,
):
    """The CPU op on checked arguments, spread as team says; rows_at is the
    layout of q's and the output's rows (attention.mojo). kf and vf are
    scratch for the dequantized keys and values (Bk * H * Tk * D each), used
    only where dequantized_here says."""
    if not dequantized_here(B, Bk, Tq, D):
        attention_cpu[F32, I8, False, True](qp, kp, vp, ksp, vsp, op, B, Bk, H, Tq, Tk, D, s, rows_at, team)
        return
    var n = Bk * H * Tk

    def dequantize(item: Int) {kp, vp, ksp, vsp, kf, vf, n, D}:
        for r in range(item * ROWS_PER_ITEM, min(n, (item + 1) * ROWS_PER_ITEM)):
            var a = ksp.unsafe_load(r)
            var b = vsp.unsafe_load(r)
            for d in range(r * D, (r + 1) * D):
                kf.unsafe_store(d, kp.unsafe_load(d).cast[F32]() * a)
                vf.unsafe_store(d, vp.unsafe_load(d).cast[F32]() * b)

    team.items(ceildiv(n, ROWS_PER_ITEM), dequantize)
    attention_cpu[F32, F32, False](qp, kf, vf, ksp, vsp, op, B, Bk, H, Tq, Tk, D, s, rows_at, team)


def dequantized_here(B: Int, Bk: Int, Tq: Int, D: Int) -> Bool:
    """Whether the keys and values are dequantized first (many query rows)."""
    return not ((B // Bk) * Tq <= SMALL and D % W == 0)


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
        check_int8kv(B, H, D, k.dim_size(0), k.dim_size(1), Tk, k.dim_size(3), k_scale.dim_size(0), k_scale.dim_size(1), k_scale.dim_size(2), v_scale.dim_size(0), v_scale.dim_size(1), v_scale.dim_size(2))
        if B == 0 or Tq == 0:
            return
        var n = Bk * H * Tk * D if dequantized_here(B, Bk, Tq, D) else 0
        var kf = unsafe_alloc[Float32](n)
        var vf = unsafe_alloc[Float32](n)
        var pool = Team.pool()
        attention_int8kv_cpu(
            q.unsafe_ptr(), k.unsafe_ptr(), v.unsafe_ptr(), k_scale.unsafe_ptr(), v_scale.unsafe_ptr(),
            output.unsafe_ptr(), B, Bk, H, Tq, Tk, D, scale.unsafe_ptr().unsafe_load(0),
            Strides.heads_outer(H, Tq, D), kf, vf, pool,
        )
        kf.unsafe_free()
        vf.unsafe_free()


def check_keys(op: StaticString, B: Int, H: Int, D: Int, Bk: Int, kH: Int, Tk: Int, kD: Int) raises:
    """Raises unless keys [Bk, kH, Tk, kD] fit queries of B rows (a multiple of
    Bk), H heads of D; op names the caller in the message."""
    if Bk == 0 or B % Bk != 0 or kH != H or kD != D:
        raise Error(op, ": keys [", Bk, ", ", kH, ", ", Tk, ", ", kD,
                    "] do not fit queries of ", B, " rows, ", H, " heads of ", D)


def check_int8kv(B: Int, H: Int, D: Int, Bk: Int, kH: Int, Tk: Int, kD: Int, s0: Int, s1: Int, s2: Int, t0: Int, t1: Int, t2: Int) raises:
    """Raises unless keys [Bk, kH, Tk, kD] and scales [s0, s1, s2], [t0, t1, t2]
    fit queries of B rows, H heads of D."""
    check_keys("attention_int8kv", B, H, D, Bk, kH, Tk, kD)
    if s0 != Bk or s1 != H or s2 != Tk or t0 != Bk or t1 != H or t2 != Tk:
        raise Error("attention_int8kv: the scales must be [", Bk, ", ", H, ", ", Tk, "]")
