# One residual block of Whisper's text decoder as one op, for the CPU.
#
# Op "decoder_layer" (mutates k_cache and v_cache), for M = B * T token rows
# (B rows of T new tokens each), width d = H * D:
#   a  = cached self-attention of h's projections           (kv_cache.mojo)
#   x1 = x + a @ Wo^T + bo,      h1 = LN_cross(x1)            (layernorm.mojo)
#   c  = cross-attention of h1's query over the audio        (attention.mojo,
#        its keys and values float32, or int8 with row scales attention_int8kv.mojo)
#   x2 = x1 + c @ Wco^T + bco,   h2 = LN_mlp(x2)
#   x3 = x2 + GELU(h2 @ W1^T + b1) @ W2^T + b2,   h3 = LN_next(x3)
# Outputs x3 and h3 (the next block's normed input). GELU is the exact form
# in MAX's own float32 operations (gelu.mojo): the int8 mode quantizes GELU's
# output, so one bit there can move a whole step.
# Inputs, all row-major: x, h [M, d]; per matrix its weights and bias, float32
# or float16 [N, K] (linear.mojo) or int8 packed for matmul_int8.mojo with a
# scale per output channel (float matrices get [0] scales); qkv is q, k and v
# stacked [3d, d]; the cache, slots and lineage as cached_attention takes
# them; cross keys and values [Bk, H, Tk, D] (int8: with scales [Bk, H, Tk],
# float: [0, 0, 0]); the layer norms' weights and biases [d]; scale [1].
# Why one op: a decoder step of a few rows is bound by handing its ~70 small
# ops to the worker threads, not by its work (BUILD.md, round 16). Here the
# workers join once per layer as a team (team.mojo) and go through the
# block's phases together; each phase runs the same inner functions as the
# separate ops, on the same rows, so the outputs are the ones the separate
# ops give. Heads are read straight out of the projections' rows
# (strides.mojo), so no transposes. Many rows (a long prompt) go phase by
# phase through MAX's pool instead, as the separate ops would.
# Tested against the same block built from the separate ops, float16 and int8,
# one token and a prompt, with a team and without: tests/test_decoder_layer.py.
import extensibility
from extensibility import InputTensor, OutputTensor, _MutableInputTensor
from max.algorithm.backend.cpu.parallelize import parallelize
from max.gpu.host import DeviceContext
from std.math import ceildiv
from std.memory import Pointer
from std.memory.alloc import unsafe_alloc
from std.runtime import parallelism_level
from std.sys.info import simd_width_of
from .attention import attention_cpu
from .attention_int8kv import attention_int8kv_cpu, check_int8kv, check_keys, dequantized_here
from .kv_cache import cached_attention_cpu, check_cache
from .layernorm import add_layernorm_cpu
from .linear import linear_cpu
from .matmul_int8 import matmul_int8_cpu, quantized_words
from .matmul_int8_tiles import path_for
from .strides import Strides
from .gelu import gelu_span
from .team import Team

comptime F32 = DType.float32
comptime I8 = DType.int8
comptime W = simd_width_of[F32]()
# Up to this many token rows the workers run the block as a team: a decoder
# step (beams, a batch of windows). More (a prompt) go op by op.
comptime TEAM_ROWS = 64
comptime PHASES = 32  # at most 20 in a block: 6 projections x 2, 2 + 2 attention, 3 norms, GELU
comptime GELU_CHUNK = 1024  # values per GELU work item


@extensibility.register("decoder_layer")
struct DecoderLayer:
    @staticmethod
    def execute[
        target: StaticString, eps: Float32
    ](
        x_out: OutputTensor[dtype=F32, rank=2, ...],
        h_out: OutputTensor[dtype=F32, rank=2, ...],
        x: InputTensor[dtype=F32, rank=2, ...],
        h: InputTensor[dtype=F32, rank=2, ...],
        qkv_w: InputTensor[rank=2, ...],
        qkv_s: InputTensor[dtype=F32, rank=1, ...],
        qkv_b: InputTensor[dtype=F32, rank=1, ...],
        out_w: InputTensor[dtype=qkv_w.dtype, rank=2, ...],
        out_s: InputTensor[dtype=F32, rank=1, ...],
        out_b: InputTensor[dtype=F32, rank=1, ...],
        k_cache: _MutableInputTensor[dtype=F32, rank=4, ...],
        v_cache: _MutableInputTensor[dtype=F32, rank=4, ...],
        slots: InputTensor[dtype=DType.int64, rank=1, ...],
        lineage: InputTensor[dtype=DType.int64, rank=2, ...],
        cross_ln_g: InputTensor[dtype=F32, rank=1, ...],
        cross_ln_b: InputTensor[dtype=F32, rank=1, ...],
        cq_w: InputTensor[dtype=qkv_w.dtype, rank=2, ...],
        cq_s: InputTensor[dtype=F32, rank=1, ...],
        cq_b: InputTensor[dtype=F32, rank=1, ...],
        co_w: InputTensor[dtype=qkv_w.dtype, rank=2, ...],
        co_s: InputTensor[dtype=F32, rank=1, ...],
        co_b: InputTensor[dtype=F32, rank=1, ...],
        ck: InputTensor[rank=4, ...],
        ck_s: InputTensor[dtype=F32, rank=3, ...],
        cv: InputTensor[dtype=ck.dtype, rank=4, ...],
        cv_s: InputTensor[dtype=F32, rank=3, ...],
        mlp_ln_g: InputTensor[dtype=F32, rank=1, ...],
        mlp_ln_b: InputTensor[dtype=F32, rank=1, ...],
        fc1_w: InputTensor[dtype=qkv_w.dtype, rank=2, ...],
        fc1_s: InputTensor[dtype=F32, rank=1, ...],
        fc1_b: InputTensor[dtype=F32, rank=1, ...],
        fc2_w: InputTensor[dtype=qkv_w.dtype, rank=2, ...],
        fc2_s: InputTensor[dtype=F32, rank=1, ...],
        fc2_b: InputTensor[dtype=F32, rank=1, ...],
        next_ln_g: InputTensor[dtype=F32, rank=1, ...],
        next_ln_b: InputTensor[dtype=F32, rank=1, ...],
        scale: InputTensor[dtype=F32, rank=1, ...],
        ctx: DeviceContext,
    ) raises:
        comptime if target != "cpu":
            raise Error("decoder_layer: CPU only (GPU graphs keep the separate ops)")
        comptime int8 = qkv_w.dtype == I8
        comptime path = path_for["native"]()
        var M = x.dim_size(0)
        var d = x.dim_size(1)
        var B = slots.dim_size(0)
        var H = k_cache.dim_size(1)
        var CTX = k_cache.dim_size(2)
        var D = k_cache.dim_size(3)
        var total = lineage.dim_size(1)
        var Bk = ck.dim_size(0)
        var Tk = ck.dim_size(2)
        if B == 0 or M % B != 0 or H * D != d or lineage.dim_size(0) != B:
            raise Error("decoder_layer: ", M, " rows of ", d, " do not make ", B, " rows of tokens for ",
                        H, " heads of ", D)
        var T = M // B
        check_cache(B, T, k_cache.dim_size(0), CTX, total, slots.unsafe_ptr(), lineage.unsafe_ptr())
        comptime if ck.dtype == I8:
            check_int8kv(B, H, D, Bk, ck.dim_size(1), Tk, ck.dim_size(3), ck_s.dim_size(0), ck_s.dim_size(1),
                         ck_s.dim_size(2), cv_s.dim_size(0), cv_s.dim_size(1), cv_s.dim_size(2))
        else:
            check_keys("decoder_layer", B, H, D, Bk, ck.dim_size(1), Tk, ck.dim_size(3))
            if cv.dim_size(2) != Tk:
                raise Error("decoder_layer: ", cv.dim_size(2), " cross values for ", Tk, " keys")
        var d_mlp = fc1_w.dim_size(0) if not int8 else fc1_s.dim_size(0)
        if M == 0:
            return

        var xp = x.unsafe_ptr()
        var hp = h.unsafe_ptr()
        var xo = x_out.unsafe_ptr()
        var ho = h_out.unsafe_ptr()
        var qkv_wp = qkv_w.unsafe_ptr()
        var qkv_sp = qkv_s.unsafe_ptr()
        var qkv_bp = qkv_b.unsafe_ptr()
        var out_wp = out_w.unsafe_ptr()
        var out_sp = out_s.unsafe_ptr()
        var out_bp = out_b.unsafe_ptr()
        var kc = k_cache.unsafe_ptr()
        var vc = v_cache.unsafe_ptr()
        var sp = slots.unsafe_ptr()
        var lp = lineage.unsafe_ptr()
        var cross_g = cross_ln_g.unsafe_ptr()
        var cross_b = cross_ln_b.unsafe_ptr()
        var cq_wp = cq_w.unsafe_ptr()
        var cq_sp = cq_s.unsafe_ptr()
        var cq_bp = cq_b.unsafe_ptr()
        var co_wp = co_w.unsafe_ptr()
        var co_sp = co_s.unsafe_ptr()
        var co_bp = co_b.unsafe_ptr()
        var ckp = ck.unsafe_ptr()
        var cksp = ck_s.unsafe_ptr()
        var cvp = cv.unsafe_ptr()
        var cvsp = cv_s.unsafe_ptr()
        var mlp_g = mlp_ln_g.unsafe_ptr()
        var mlp_b = mlp_ln_b.unsafe_ptr()
        var fc1_wp = fc1_w.unsafe_ptr()
        var fc1_sp = fc1_s.unsafe_ptr()
        var fc1_bp = fc1_b.unsafe_ptr()
        var fc2_wp = fc2_w.unsafe_ptr()
        var fc2_sp = fc2_s.unsafe_ptr()
        var fc2_bp = fc2_b.unsafe_ptr()
        var next_g = next_ln_g.unsafe_ptr()
        var next_b = next_ln_b.unsafe_ptr()
        var s = scale.unsafe_ptr().unsafe_load(0)

        # Scratch shared by the members: the projections' outputs, the
        # attention outputs, the MLP's hidden rows, the int8 GEMM's quantized
        # rows, and (int8 keys, many rows) the dequantized keys and values.
        var qkv = unsafe_alloc[Float32](M * 3 * d)
        var att = unsafe_alloc[Float32](M * d)
        var proj = unsafe_alloc[Float32](M * d)
        var hidden = unsafe_alloc[Float32](M * d_mlp)
        var words = unsafe_alloc[Int32](quantized_words[path](M, max(d, d_mlp)))
        var x_scale = unsafe_alloc[Float32](M)
        var n_kv = 0
        comptime if ck.dtype == I8:
            if dequantized_here(B, Bk, T, D):
                n_kv = Bk * H * Tk * D
        var kf = unsafe_alloc[Float32](n_kv)
        var vf = unsafe_alloc[Float32](n_kv)
        var members = parallelism_level() if M <= TEAM_ROWS else 1
        var counters = Team.counters_for(PHASES)

        def member(i: Int) {
            xp, hp, xo, ho, qkv_wp, qkv_sp, qkv_bp, out_wp, out_sp, out_bp, kc, vc, sp, lp, cross_g, cross_b,
            cq_wp, cq_sp, cq_bp, co_wp, co_sp, co_bp, ckp, cksp, cvp, cvsp, mlp_g, mlp_b, fc1_wp, fc1_sp,
            fc1_bp, fc2_wp, fc2_sp, fc2_bp, next_g, next_b, s, qkv, att, proj, hidden, words, x_scale, kf, vf,
            members, counters, M, d, d_mlp, B, T, H, D, CTX, total, Bk, Tk,
        }:
            var team = Team(counters, PHASES) if members > 1 else Team.pool()

            # y [M, N] = a [M, K] @ W^T + b on this block's kind of weights.
            @always_inline
            def project[
                y_origin: MutOrigin, //
            ](
                a: Pointer[Float32, _],
                wp: Pointer[Scalar[qkv_w.dtype], _],
                scales: Pointer[Float32, _],
                bias: Pointer[Float32, _],
                y: Pointer[Float32, y_origin],
                K: Int,
                N: Int,
                mut team: Team,
            ) {M, words, x_scale}:
                comptime if int8:
                    matmul_int8_cpu[path](a, rebind[Pointer[Int8, ImmutAnyOrigin]](wp), scales, bias, y, True,
                                          M, N, K, words, x_scale, team)
                else:
                    linear_cpu(a, wp, bias, y, M, K, N, team)

            var heads_qkv = Strides.heads_inner(T, 3 * d, D)
            var heads_d = Strides.heads_inner(T, d, D)
            # self-attention
            project(hp, qkv_wp, qkv_sp, qkv_bp, qkv, d, 3 * d, team)
            cached_attention_cpu(qkv, qkv.unsafe_offset(d), qkv.unsafe_offset(2 * d), heads_qkv, kc, vc, sp, lp,
                                 att, heads_d, B, H, T, D, CTX, total, s, team)
            project(att, out_wp, out_sp, out_bp, proj, d, d, team)
            add_layernorm_cpu(xp, proj, ho, xo, cross_g, cross_b, M, d, eps, team)
            # cross-attention (ho holds this block's normed rows until the last norm)
            project(ho, cq_wp, cq_sp, cq_bp, qkv, d, d, team)
            comptime if ck.dtype == I8:
                attention_int8kv_cpu(qkv, rebind[Pointer[Int8, ImmutAnyOrigin]](ckp),
                                     rebind[Pointer[Int8, ImmutAnyOrigin]](cvp), cksp, cvsp, att, B, Bk, H, T, Tk,
                                     D, s, heads_d, kf, vf, team)
            else:
                attention_cpu[F32, ck.dtype, False](qkv, ckp, cvp, cksp, cvsp, att, B, Bk, H, T, Tk, D, s,
                                                    heads_d, team)
            project(att, co_wp, co_sp, co_bp, proj, d, d, team)
            add_layernorm_cpu(xo, proj, ho, xo, mlp_g, mlp_b, M, d, eps, team)
            # MLP
            project(ho, fc1_wp, fc1_sp, fc1_bp, hidden, d, d_mlp, team)
            var n = M * d_mlp

            def apply_gelu(item: Int) {hidden, n}:
                gelu_span(hidden, item * GELU_CHUNK, min(n, (item + 1) * GELU_CHUNK))

            team.items(ceildiv(n, GELU_CHUNK), apply_gelu)
            project(hidden, fc2_wp, fc2_sp, fc2_bp, proj, d_mlp, d, team)
            add_layernorm_cpu(xo, proj, ho, xo, next_g, next_b, M, d, eps, team)

        if members > 1:
            parallelize(member, members)
        else:
            member(0)
        counters.unsafe_free()
        qkv.unsafe_free()
        att.unsafe_free()
        proj.unsafe_free()
        hidden.unsafe_free()
        words.unsafe_free()
        x_scale.unsafe_free()
        kf.unsafe_free()
        vf.unsafe_free()
