"""One block of Whisper tiny's text decoder for one new token per row (1 row, 5 beams):
cached self-attention, cross-attention over 1500 audio frames, MLP, the three norms.
Run: .venv/bin/python benchmarks/bench_decoder_layer.py [--quick]"""

from __future__ import annotations

import math
import sys

import numpy as np

from harness import DEVICE, Case, Contender, compile_graph, max_contender, reference, run
from max.dtype import DType
from max.graph import BufferType, TensorType, ops
from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.graph.layers import head_scale, merge_heads, split_heads

d, H, CTX, T_AUDIO, PAST = 384, 6, 448, 1500, 200
D = d // H
SCALE = head_scale(d, H)
# (d_in, d_out) of the block's matrices, in the order decoder_layer takes them
MATRICES = {"qkv": (d, 3 * d), "out": (d, d), "cross query": (d, d), "cross out": (d, d),
            "mlp up": (d, 4 * d), "mlp down": (4 * d, d)}
SHAPES = {"1 row": 1, "5 beams": 5}
NOTES = [
    "Work is bytes: the block's float16 weights (4.1 MB), the cross keys and values of one "
    "audio (4.6 MB float32) and each row's cached keys and values; between samples much of it "
    "stays in L2/L3, so GB/s can pass the DRAM figure.",
    "Custom decoder_layer: kernels/decoder_layer.mojo, what the CPU decoder step runs: the whole "
    "block as one op, the worker threads joining once as a team (kernels/team.mojo).",
    "Separate custom ops: the same block as the step ran it before, one op per projection, "
    "attention, norm and GELU (linear, cached_attention, attention, add_layernorm, MAX's gelu); "
    "it gives the same bits as the fused op.",
    "MAX built-in: the block from MAX ops with float32 weights [K, N], the cache as a value "
    "(the new key and value concatenated to the history).",
]


def block_reference(x, weights, k_hist, v_hist, audio_k, audio_v, norms, dtype=np.float64):
    """The block in NumPy at `dtype`, from the definition: x [B, d], weights {name: (W [N, K],
    b)}, history [B, H, past, D], audio keys and values [1, H, 1500, D]."""
    x = x.astype(dtype)

    def proj(name, a):
        w, b = weights[name]
        return a @ w.astype(dtype).T + b.astype(dtype)

    def heads(a):
        return a.reshape(a.shape[0], 1, H, D).transpose(0, 2, 1, 3)

    def ln(a, i):
        return reference.layer_norm(a, *(p.astype(dtype) for p in norms[i])).astype(dtype)

    q, k, v = np.split(proj("qkv", ln(x, 0)), 3, axis=-1)
    k_all = np.concatenate([k_hist.astype(dtype), heads(k)], axis=2)
    v_all = np.concatenate([v_hist.astype(dtype), heads(v)], axis=2)
    att = reference.attention(heads(q), k_all, v_all, scale=SCALE).astype(dtype)
    x = x + proj("out", att.transpose(0, 2, 1, 3).reshape(-1, d))
    q = heads(proj("cross query", ln(x, 1)))
    att = reference.attention(q, np.broadcast_to(audio_k.astype(dtype), (len(x), H, T_AUDIO, D)),
                              np.broadcast_to(audio_v.astype(dtype), (len(x), H, T_AUDIO, D)), scale=SCALE)
    x = x + proj("cross out", att.astype(dtype).transpose(0, 2, 1, 3).reshape(-1, d))
    up = proj("mlp up", ln(x, 2))
    x = x + proj("mlp down", (0.5 * up * (1 + erf(up / np.sqrt(2)))).astype(dtype))
    return x


def erf(z):
    """erf in NumPy, which has none: math.erf per value in float64 (the reference); in
    float32 Abramowitz and Stegun's 7.1.26 (error under 1.5e-7), so that the NumPy
    contender's time is not a Python loop."""
    if z.dtype == np.float64:
        return np.vectorize(math.erf)(z)
    a = np.abs(z)
    t = 1 / (1 + np.float32(0.3275911) * a)
    poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))))
    return np.sign(z) * (1 - poly.astype(np.float32) * np.exp(-a * a))


def make_cases() -> list[Case]:
    rows = TensorType(DType.float32, ["B", d], DEVICE)
    matrix_types = []
    for d_in, d_out in MATRICES.values():
        matrix_types += [TensorType(DType.float16, [d_out, d_in], DEVICE), TensorType(DType.float32, [d_out], DEVICE)]
    norm_types = [TensorType(DType.float32, [d], DEVICE)] * 8  # attn_ln, cross_attn_ln, mlp_ln, next ln
    cache = BufferType(DType.float32, ["B", H, CTX, D], DEVICE)
    index = [TensorType(DType.int64, ["B"], DEVICE), TensorType(DType.int64, ["B", "T"], DEVICE)]
    audio = [TensorType(DType.float32, [1, H, T_AUDIO, D], DEVICE)] * 2

    def unpack(x, *rest):
        matrices = [(rest[2 * i], None, rest[2 * i + 1]) for i in range(6)]
        norms = [(rest[12 + 2 * i], rest[13 + 2 * i]) for i in range(4)]
        return x, matrices, norms, rest[20:22], rest[22:24], list(rest[24:26])

    def fused(*inputs):
        x, matrices, norms, cache_pair, (slots, lineage), kv = unpack(*inputs)
        h = custom_ops.layer_norm(x, *norms[0])
        return custom_ops.decoder_layer(x, h, matrices, tuple(cache_pair), slots, lineage, norms[1:], kv, SCALE)[0]

    def separate(*inputs):
        x, matrices, norms, (kc, vc), (slots, lineage), (ak, av) = unpack(*inputs)
        lin = [lambda a, m=m: custom_ops.linear(a, m[0], m[2]) for m in matrices]
        x3 = ops.unsqueeze(x, 1)  # [B, 1, d]
        q, k, v = (split_heads(t, H) for t in ops.split(lin[0](custom_ops.layer_norm(x3, *norms[0])), [d, d, d], axis=-1))
        att = custom_ops.cached_attention(q, k, v, kc, vc, slots, lineage, SCALE)
        h, x3 = custom_ops.add_layer_norm(x3, lin[1](merge_heads(att)), *norms[1])
        att = custom_ops.attention(split_heads(lin[2](h), H), ak, av, SCALE)
        h, x3 = custom_ops.add_layer_norm(x3, lin[3](merge_heads(att)), *norms[2])
        _, x3 = custom_ops.add_layer_norm(x3, lin[5](ops.gelu(lin[4](h))), *norms[3])
        return ops.squeeze(x3, 1)

    builtin_types = [rows]
    for d_in, d_out in MATRICES.values():
        builtin_types += [TensorType(DType.float32, [d_in, d_out], DEVICE), TensorType(DType.float32, [d_out], DEVICE)]
    builtin_types += norm_types + [TensorType(DType.float32, ["B", H, PAST, D], DEVICE)] * 2 + audio

    def builtin(x, *rest):
        w = [(rest[2 * i], rest[2 * i + 1]) for i in range(6)]
        norms = [(rest[12 + 2 * i], rest[13 + 2 * i]) for i in range(4)]
        k_hist, v_hist, ak, av = rest[20:24]

        def ln(a, i):
            return ops.layer_norm(a, *norms[i], 1e-5)

        def heads(a):
            return ops.reshape(a, [a.shape[0], 1, H, D]).transpose(1, 2)

        def attend(q, k, v):
            return merge_heads(ops.softmax(ops.matmul(q, k.transpose(2, 3)) * SCALE) @ v)[:, 0]

        q, k, v = ops.split(ln(x, 0) @ w[0][0] + w[0][1], [d, d, d], axis=-1)
        att = attend(heads(q), ops.concat([k_hist, heads(k)], axis=2), ops.concat([v_hist, heads(v)], axis=2))
        x = x + att @ w[1][0] + w[1][1]
        batch = [x.shape[0], H, T_AUDIO, D]
        att = attend(heads(ln(x, 1) @ w[2][0] + w[2][1]), ops.broadcast_to(ak, batch), ops.broadcast_to(av, batch))
        x = x + att @ w[3][0] + w[3][1]
        return x + ops.gelu(ln(x, 2) @ w[4][0] + w[4][1]) @ w[5][0] + w[5][1]

    types = [rows, *matrix_types, *norm_types, cache, cache, *index, *audio]
    fused_graph = compile_graph("bench_decoder_layer_fused", types, fused, custom=True)
    separate_graph = compile_graph("bench_decoder_layer_separate", types, separate, custom=True)
    builtin_graph = compile_graph("bench_decoder_layer_max", builtin_types, builtin)

    rng = np.random.default_rng(0)
    weights = {name: ((rng.standard_normal((d_out, d_in)) * d_in**-0.5).astype(np.float16),
                      (rng.standard_normal(d_out) * 0.1).astype(np.float32))
               for name, (d_in, d_out) in MATRICES.items()}
    norms = [((1 + 0.1 * rng.standard_normal(d)).astype(np.float32), (0.1 * rng.standard_normal(d)).astype(np.float32))
             for _ in range(4)]
    audio_k, audio_v = (rng.standard_normal((1, H, T_AUDIO, D), dtype=np.float32) for _ in range(2))
    flat_weights = [a for pair in weights.values() for a in pair]
    flat_norms = [a for pair in norms for a in pair]
    cases = []
    for name, b in SHAPES.items():
        x = rng.standard_normal((b, d), dtype=np.float32)
        k_hist, v_hist = (rng.standard_normal((b, H, PAST, D), dtype=np.float32) for _ in range(2))
        k_cache, v_cache = (np.zeros((b, H, CTX, D), np.float32) for _ in range(2))
        k_cache[:, :, :PAST], v_cache[:, :, :PAST] = k_hist, v_hist
        slots = np.arange(b)
        lineage = np.repeat(slots[:, None], PAST + 1, axis=1)
        # Every call stores the same new key and value at PAST again: each sample is one step.
        custom_inputs = [x, *flat_weights, *flat_norms, k_cache, v_cache, slots, lineage, audio_k, audio_v]
        builtin_inputs = [x]
        for w, bias in weights.values():
            builtin_inputs += [w.astype(np.float32).T.copy(), bias]
        builtin_inputs += [*flat_norms, k_hist, v_hist, audio_k, audio_v]
        float_weights = {k: (w.astype(np.float32), bias) for k, (w, bias) in weights.items()}
        weight_bytes = sum(w.nbytes + bias.nbytes for w, bias in weights.values())
        work = weight_bytes + audio_k.nbytes * 2 + 2 * b * H * (PAST + 1) * D * 4
        case = Case(name, f"x [{b}, {d}], {PAST} cached, 1500 audio frames", work, "byte",
                    block_reference(x, weights, k_hist, v_hist, audio_k, audio_v, norms))
        case.contenders = [
            max_contender("custom decoder_layer (one op)", "custom", fused_graph, *custom_inputs),
            max_contender("separate custom ops", "separate", separate_graph, *custom_inputs),
            max_contender("MAX built-in ops", "max", builtin_graph, *builtin_inputs),
            Contender("NumPy f32", "numpy32",
                      lambda x=x, kh=k_hist, vh=v_hist, w=float_weights: block_reference(
                          x, w, kh, vh, audio_k, audio_v, norms, np.float32)),
        ]
        cases.append(case)
    return cases


if __name__ == "__main__":
    sys.exit(run("decoder_layer", "One decoder block, one new token per row", make_cases, NOTES))
