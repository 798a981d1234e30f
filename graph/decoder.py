"""One step of the Whisper text decoder as one MAX graph.

The same compiled graph serves every step (all sequence lengths are
symbolic). Inputs:
  tokens      [batch, new] int64   tokens fed this step
  positions   [new] int64          their positions in the text context
  picked      [n_picked] int64     which of the new tokens (0 <= i < new) get
                                   logits: a prompt of hundreds of tokens needs
                                   them at its last one only, and the vocabulary
                                   projection costs 40 MFLOP per token
  slots       [batch] int64        the cache row each token row stores its keys
                                   and values in
  lineage     [batch, past + new]  the cache row holding each position of a
              int64                token row's history: beams point at the rows
                                   of their common prefix, so beam search
                                   reorders this small table, never the cache
  per layer:  self-attention key and value cache [cache_rows, n_head, n_text_ctx,
              d_head], buffers updated in place (kernels/kv_cache.mojo)
  per layer:  cross-attention key and value [audio_batch, n_head, n_audio_ctx, d_head]
              (in int8 mode: key, its row scales [audio_batch, n_head,
              n_audio_ctx], value, its row scales; see layers.cross_kv)
              (batch is a multiple of audio_batch: consecutive token rows share
              one audio, as the beams of one window do)
  on the CPU, the token rules of the step (kernels/token_scores.mojo):
  bars        [batch, n_bars, 2] int64   each row's barred id ranges [lo, hi)
  barred      [n_barred] int64           ids barred on every row
  first_timestamp [1] int64              <|0.00|>'s id, -1: no timestamp rule
Outputs: logits [batch, n_picked, n_vocab]. With cross_attention_weights=True
(a separate graph, used for word timestamps) the softmax weights of every
cross-attention layer [batch, n_head, new, n_audio_ctx] follow. On the CPU,
last, token_scores' answer for the last picked position: the logits with the
rules applied [batch, n_vocab], the ids of the TOP_K best [batch, TOP_K] and
(peak, log normaliser) [batch, 2] float64, so a step's search reads a few
numbers per row instead of walking the vocabulary in NumPy.
"""

from __future__ import annotations

from max.dtype import DType
from max.graph import BufferType, BufferValue, DeviceKind, DeviceRef, Graph, TensorType, TensorValue, ops

from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.build import kernel_library
from maxwhisper_kernels.int8_layout import packed_int8_shape
from maxwhisper_kernels.weights import ModelDimensions

from .layers import (
    PACKED_INT8,
    Weights,
    add_layer_norm,
    cross_kv_types,
    head_scale,
    linear,
    merge_heads,
    mlp,
    packed_rows,
    projection,
    row_scale,
    split_heads,
)


# Ranked ids the CPU step returns per row: beam search takes beam_size + 1 of them, so beams of
# up to 15 need no ranking in NumPy.
TOP_K = 16


def cached_self_attention(
    h: TensorValue,
    cache: tuple[BufferValue, BufferValue],
    slots: TensorValue,
    lineage: TensorValue,
    w: Weights,
    name: str,
    d: int,
    n_head: int,
):
    q, k, v = (split_heads(x, n_head) for x in ops.split(linear(h, w, f"{name}.qkv", d, 3 * d), [d, d, d], axis=-1))
    out = custom_ops.cached_attention(q, k, v, *cache, slots, lineage, head_scale(d, n_head))
    return linear(merge_heads(out), w, f"{name}.out", d, d)


def cross_attention(h: TensorValue, audio: list[TensorValue], w: Weights, name: str, d: int, n_head: int):
    """audio: the layer's keys and values as layers.cross_kv gives them (2 tensors, or 4 with
    the int8 mode's scales)."""
    q = split_heads(linear(h, w, f"{name}.query", d, d), n_head)
    if len(audio) == 4:
        out = custom_ops.attention_int8kv(q, *audio, head_scale(d, n_head))
    else:
        out = custom_ops.attention(q, *audio, head_scale(d, n_head))
    return linear(merge_heads(out), w, f"{name}.out", d, d), q


def fused_block(
    x: TensorValue,
    h: TensorValue,
    cache: tuple[BufferValue, BufferValue],
    slots: TensorValue,
    lineage: TensorValue,
    audio: list[TensorValue],
    w: Weights,
    block: str,
    next_ln: str,
    d: int,
    n_head: int,
):
    """The block below as one op (CPU): the same arithmetic, with the worker threads joining
    once per block instead of once per op (kernels/decoder_layer.mojo)."""
    shapes = {"attn.qkv": (d, 3 * d), "attn.out": (d, d), "cross_attn.query": (d, d), "cross_attn.out": (d, d),
              "mlp.0": (d, 4 * d), "mlp.2": (4 * d, d)}
    projections = [projection(w, f"{block}.{name}", d_in, d_out) for name, (d_in, d_out) in shapes.items()]
    norms = [(w(f"{ln}.weight", d), w(f"{ln}.bias", d)) for ln in (f"{block}.cross_attn_ln", f"{block}.mlp_ln", next_ln)]
    return custom_ops.decoder_layer(x, h, projections, cache, slots, lineage, norms, audio, head_scale(d, n_head))


def attention_weights(q: TensorValue, audio: list[TensorValue], scale: float) -> TensorValue:
    """softmax(scale q k^T), materialised: only the word-timestamp graph needs
    it, for a few dozen queries of one row per audio (batch == audio_batch)."""
    k = ops.cast(audio[0], q.dtype)
    if len(audio) == 4:  # int8 rows times their scales
        k = k * ops.unsqueeze(audio[1], -1)
    k = ops.rebind(k, [q.shape[0], *k.shape[1:]])
    return ops.softmax(ops.matmul(q, k.transpose(2, 3)) * scale)


def build_decoder_step(
    dims: ModelDimensions,
    device: DeviceRef,
    matrix_dtype: DType = DType.float32,
    cross_attention_weights: bool = False,
    fused: bool | None = None,
) -> Graph:
    """matrix_dtype is the storage type of the weight matrices (the token
    embedding included): float16 halves what each step reads. int8 (a scale
    per row) quarters it and makes every linear layer the int8 GEMM with
    rows quantized as the step runs (matmul_int8, as the int8 encoder): the
    embedding is then held once, packed, and the token lookup reads its rows
    out of that layout (layers.packed_rows). fused: each block as one op
    (fused_block); by default on the CPU, except in the word-timestamp graph,
    which needs the cross-attention queries."""
    if fused is None:
        fused = device.device_type == DeviceKind.CPU and not cross_attention_weights
    d, n_head, n_layer = dims.n_text_state, dims.n_text_head, dims.n_text_layer
    d_head = d // n_head
    w = Weights(device, PACKED_INT8 if matrix_dtype == DType.int8 else matrix_dtype)
    cache = BufferType(DType.float32, ["cache_rows", n_head, dims.n_text_ctx, d_head], device)
    audio_kv = cross_kv_types(n_head, dims.n_audio_ctx, d_head, matrix_dtype == DType.int8, device)
    per_layer = 2 * len(audio_kv)  # key and value, each with its scales in int8 mode
    input_types = [
        TensorType(DType.int64, ["batch", "new"], device),
        TensorType(DType.int64, ["new"], device),
        TensorType(DType.int64, ["n_picked"], device),
        TensorType(DType.int64, ["batch"], device),
        TensorType(DType.int64, ["batch", "total"], device),
        *[cache] * (2 * n_layer),
        *audio_kv * (2 * n_layer),
    ]
    rules_in_graph = device.device_type == DeviceKind.CPU  # token_scores has no GPU path
    if rules_in_graph:
        input_types += [
            TensorType(DType.int64, ["batch", "n_bars", 2], device),
            TensorType(DType.int64, ["n_barred"], device),
            TensorType(DType.int64, [1], device),
        ]
    name = "whisper_decoder_alignment" if cross_attention_weights else "whisper_decoder_step"
    graph = Graph(name, input_types=input_types, custom_extensions=[kernel_library()])
    with graph:
        tokens, positions, picked, slots, lineage = (value.tensor for value in graph.inputs[:5])
        caches = [value.buffer for value in graph.inputs[5 : 5 + 2 * n_layer]]
        audio = [value.tensor for value in graph.inputs[5 + 2 * n_layer : 5 + 2 * n_layer + per_layer * n_layer]]

        embedding_scale = row_scale(w, "decoder.token_embedding", dims.n_vocab)
        if w.matrix_dtype == PACKED_INT8:  # one copy of the embedding: packed, for both uses
            packed = w("decoder.token_embedding.packed", *packed_int8_shape(dims.n_vocab, d), dtype=DType.int8)
            x = ops.cast(packed_rows(packed, tokens, d), DType.float32)
            x = x * ops.unsqueeze(ops.gather(embedding_scale, tokens, axis=0), -1)
        else:
            embedding = w("decoder.token_embedding.weight", dims.n_vocab, d, dtype=matrix_dtype)
            x = ops.cast(ops.gather(embedding, tokens, axis=0), DType.float32)
        x = x + ops.gather(w("decoder.positional_embedding", dims.n_text_ctx, d), positions, axis=0)

        cross_weights = []
        h = custom_ops.layer_norm(x, w("decoder.blocks.0.attn_ln.weight", d), w("decoder.blocks.0.attn_ln.bias", d))
        for i in range(n_layer):
            block = f"decoder.blocks.{i}"
            layer_cache = (caches[2 * i], caches[2 * i + 1])
            layer_audio = audio[per_layer * i : per_layer * (i + 1)]
            next_ln = "decoder.ln" if i + 1 == n_layer else f"decoder.blocks.{i + 1}.attn_ln"
            if fused:
                x, h = fused_block(x, h, layer_cache, slots, lineage, layer_audio, w, block, next_ln, d, n_head)
                continue
            out = cached_self_attention(h, layer_cache, slots, lineage, w, f"{block}.attn", d, n_head)
            h, x = add_layer_norm(x, out, w, f"{block}.cross_attn_ln", d)
            out, q = cross_attention(h, layer_audio, w, f"{block}.cross_attn", d, n_head)
            if cross_attention_weights:
                cross_weights.append(attention_weights(q, layer_audio, head_scale(d, n_head)))
            h, x = add_layer_norm(x, out, w, f"{block}.mlp_ln", d)
            h, x = add_layer_norm(x, mlp(h, w, f"{block}.mlp", d), w, next_ln, d)
        # The output projection is tied to the token embedding.
        h = ops.gather(h, picked, axis=1)
        if w.matrix_dtype == PACKED_INT8:
            logits = custom_ops.matmul_int8(h, packed, embedding_scale)
        else:
            logits = custom_ops.linear(h, embedding)
        ruled = []
        if rules_in_graph:
            bars, barred, first_timestamp = (value.tensor for value in graph.inputs[-3:])
            ruled = custom_ops.token_scores(logits[:, -1], bars, barred, first_timestamp, TOP_K)
        graph.output(logits, *cross_weights, *ruled)
    return graph
