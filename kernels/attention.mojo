# Fused scaled-dot-product attention with an online (streaming) softmax.
#
# Op "attention":  out = softmax(scale * q @ k^T + mask) @ v
# Layout: q [B, H, Tq, D], k and v [Bk, H, Tk, D], out [B, H, Tq, D], row-major;
#         B is a multiple of Bk and query row b reads key/value row
#         b // (B / Bk), so beams share one copy of their audio's keys;
#         scale is a runtime [1] float32 tensor so one compiled graph serves
#         every head size; `causal` (compile-time) lets query i see keys
#         0 .. Tk - Tq + i, so one new token can attend over a KV cache;
#         `bf16` (compile-time) lets a non-causal call with D = 64 and at
#         least AMX_MIN_ROWS query rows per key/value head run on AMX tiles
#         in bfloat16 where the CPU and OS allow it (attention_amx.mojo; the
#         int8 encoder), else it changes nothing.
# Rows: the B / Bk query batches that share one key/value head are treated
# as one set of group * Tq query rows, so every key is read once per head
# however many beams attend to it.
# Algorithm (FlashAttention-2 style, CPU). Keys are visited in tiles; the
# running max m, normaliser l and output accumulator O of each row are
# rescaled per tile, so the Tq x Tk score matrix never exists. Two paths:
# - Tiled (many rows, e.g. the encoder's 1500; attention_tiled.mojo): a work
#   item is one head and a block of BQ rows, queries in the SIMD lanes.
# - Direct (a few rows: decoding, beams; attention_direct.mojo): lanes over
#   D, one run of (audio, head) items per thread, so each thread streams its
#   keys and values in address order.
# Both accumulate O += P V in the register tiles of attention_pv.mojo, whose
# sizes are chosen per instruction set at compile time (AVX2 has 16 vector
# registers, AVX-512 and NEON 32).
# D = 64 (Whisper) is compiled as a constant; other D take the same code
# with a runtime D (the direct path needs D % W == 0, else the tiled path).
# Work items run in parallel, except small calls (SERIAL_WORK).
# Tested against a NumPy float64 softmax reference in tests/test_attention.py.
import extensibility
from extensibility import InputTensor, OutputTensor
from max.gpu.host import DeviceContext
from .attention_gpu import attention_gpu
from .attention_amx import attention_amx
from .amx import amx_permitted
from .attention_direct import SMALL, attend_direct
from .attention_pv import W
from .attention_tiled import BQ, attend_tiled
from .strides import Strides
from .team import Team
from std.math import ceildiv
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.sys.info import CompilationTarget

# Up to this many (query, key, d) products (about 20 us on one core here:
# one token over 448 keys) one thread beats waking the parallel workers;
# measured idle, one token over 1500 keys already ran faster on two.
comptime SERIAL_WORK = 1 << 18


def attention_cpu[
    o_origin: MutOrigin, //, dtype: DType, kvd: DType, causal: Bool, scaled: Bool = False
](
    q: Pointer[Scalar[dtype], _],
    k: Pointer[Scalar[kvd], _],
    v: Pointer[Scalar[kvd], _],
    ks: Pointer[Float32, _],
    vs: Pointer[Float32, _],
    o: Pointer[Scalar[dtype], o_origin],
    B: Int,
    Bk: Int,
    H: Int,
    Tq: Int,
    Tk: Int,
    D: Int,
    scale: Float32,
    rows_at: Strides,
    mut team: Team,
):
    """The CPU paths on checked arguments, spread as team says. rows_at: the
    layout of q's and o's rows (Strides.heads_outer for the op's [B, H, Tq, D])."""
    var group = B // Bk
    var rows = group * Tq
    var direct = rows <= SMALL and D % W == 0
    var block = SMALL if direct else BQ
    var blocks = ceildiv(rows, block)

    def work(item: Int) {q, k, v, ks, vs, o, H, Tq, Tk, D, scale, group, rows, direct, block, blocks, rows_at}:
        var kvh = item // blocks  # bk * H + h
        var r0 = (item % blocks) * block
        var nr = min(block, rows - r0)
        var bk = kvh // H
        var h = kvh % H
        var row_off = unsafe_alloc[Int](block)
        var row_last = unsafe_alloc[Int32](block)
        for r in range(nr):
            var g = (r0 + r) // Tq
            var i = (r0 + r) % Tq
            row_off.unsafe_store(r, rows_at.at(bk * group + g, h, i))
            row_last.unsafe_store(r, Int32(Tk - Tq + i if causal else Tk - 1))
        var kv = kvh * Tk * D
        var kp = k.unsafe_offset(kv)
        var vp = v.unsafe_offset(kv)
        var ksp = ks.unsafe_offset(kvh * Tk)
        var vsp = vs.unsafe_offset(kvh * Tk)
        if direct:
            if D == 64:
                attend_direct[dtype, kvd, 64, causal, scaled](q, kp, vp, ksp, vsp, o, row_off, row_last, nr, Tk, D, scale)
            else:
                attend_direct[dtype, kvd, 0, causal, scaled](q, kp, vp, ksp, vsp, o, row_off, row_last, nr, Tk, D, scale)
        else:
            # scaled keys never get here: attention_int8kv dequantizes them for many rows
            comptime if not scaled:
                if D == 64:
                    attend_tiled[dtype, kvd, 64, causal](q, kp, vp, o, row_off, row_last, nr, Tk, D, scale)
                else:
                    attend_tiled[dtype, kvd, 0, causal](q, kp, vp, o, row_off, row_last, nr, Tk, D, scale)
        row_off.unsafe_free()
        row_last.unsafe_free()

    var n_items = Bk * H * blocks
    if not team.is_team() and B * H * Tq * Tk * D <= SERIAL_WORK:
        for i in range(n_items):
            work(i)
    elif direct:
        # A few rows read every key and value once: one run of items per
        # thread (8 audios of float32 keys and values, 37 MB: 1.17-1.20
        # against 1.20-1.37 ms handed out item by item, Zen 3).
        team.runs(n_items, work)
    else:
        team.items(n_items, work)


# The AMX path packs each head's keys and values into tiles before any
# product, which few query rows do not repay: 6 heads over 1500 keys on the
# Intel Xeon (model 207), AMX against float32, 1 row 2.0 ms against 1.0
# (through ops.attention, about 0.8 ms of it the call), 64 rows 3.0 against
# 2.5, 96 rows even, 128 rows 2.4 against 2.8, 1500 rows 7.7 against 14.9.
comptime AMX_MIN_ROWS = 128


@extensibility.register("attention")
struct Attention:
    @staticmethod
    def execute[
        target: StaticString, causal: Bool, bf16: Bool
    ](
        output: OutputTensor[rank=4, ...],
        q: InputTensor[dtype=output.dtype, rank=4, ...],
        k: InputTensor[rank=4, ...],
        v: InputTensor[dtype=k.dtype, rank=4, ...],
        scale: InputTensor[dtype=DType.float32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target == "gpu":
            comptime if k.dtype != output.dtype:
                raise Error("attention: the GPU path takes keys and values in the queries' dtype")
            else:
                attention_gpu[output.dtype, causal](
                    q.unsafe_ptr(), rebind[Pointer[Scalar[output.dtype], MutAnyOrigin]](k.unsafe_ptr()),
                    rebind[Pointer[Scalar[output.dtype], MutAnyOrigin]](v.unsafe_ptr()),
                    output.unsafe_ptr(), scale.unsafe_ptr(),
                    q.dim_size(0), k.dim_size(0), q.dim_size(1), q.dim_size(2), k.dim_size(2), q.dim_size(3), ctx,
                )
            return
        comptime if target != "cpu":
            raise Error("attention: no path for target ", target)
        # Every CPU with AMX has AVX-512: a kernel compiled for a target without it (an AVX2
        # build, MAXWHISPER_CPU_TARGET) stands for a CPU without AMX even on a host with it.
        comptime if bf16 and not causal and CompilationTarget.has_avx512f():
            var rows = q.dim_size(0) // k.dim_size(0) * q.dim_size(2)
            if q.dim_size(3) == 64 and rows >= AMX_MIN_ROWS and amx_permitted():
                attention_amx(
                    q.unsafe_ptr(), k.unsafe_ptr(), v.unsafe_ptr(), output.unsafe_ptr(),
                    q.dim_size(0), k.dim_size(0), q.dim_size(1), q.dim_size(2), k.dim_size(2),
                    scale.unsafe_ptr().unsafe_load(0),
                )
                return
        var no_scales = scale.unsafe_ptr()  # read only by the scaled variant
        var pool = Team.pool()
        attention_cpu[output.dtype, k.dtype, causal](
            q.unsafe_ptr(),
            k.unsafe_ptr(),
            v.unsafe_ptr(),
            no_scales,
            no_scales,
            output.unsafe_ptr(),
            q.dim_size(0),
            k.dim_size(0),
            q.dim_size(1),
            q.dim_size(2),
            k.dim_size(2),
            q.dim_size(3),
            scale.unsafe_ptr().unsafe_load(0),
            Strides.heads_outer(q.dim_size(1), q.dim_size(2), q.dim_size(3)),
            pool,
        )
