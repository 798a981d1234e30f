"""The Whisper audio encoder as one MAX graph.

Input: log-mel windows [batch, n_mels, 2 * n_audio_ctx]. Outputs: the
encoded audio [batch, n_audio_ctx, d] followed by every decoder layer's
cross-attention keys and values [batch, n_head, n_audio_ctx, d_head], so the
decoder never recomputes them per token (in int8 mode each is followed by its
row scales [batch, n_head, n_audio_ctx]: layers.cross_kv).
"""

from __future__ import annotations

from max.dtype import DType
from max.graph import DeviceRef, Graph, TensorType, TensorValue, ops

from maxwhisper_kernels import custom_ops
from maxwhisper_kernels.build import kernel_library
from maxwhisper_kernels.weights import ModelDimensions

from .layers import PACKED_INT8, Weights, add_layer_norm, cross_kv, head_scale, layer_norm, linear, merge_heads, mlp, split_heads


def conv_gelu(x: TensorValue, w: Weights, name: str, c_in: int, c_out: int, stride: int):
    """Kernel-3, padding-1 conv over time + GELU on channels-last x [B, T, C], as one
    matmul: row t of the im2col matrix is x[s*t - 1], x[s*t], x[s*t + 1] side by side,
    which is the order of the taps and channels in the filters' RSCF layout. MAX's
    conv2d gave the same bits on Zen 3 but took 47 ms on conv2 where this takes 17."""
    time = int(x.shape[1])
    padded = ops.pad(x, [0, 0, 1, 1, 0, 0])
    if stride == 1:
        cols = ops.concat([padded[:, 0:time], padded[:, 1 : time + 1], padded[:, 2 : time + 2]], axis=-1)
    else:  # stride 2: rows 2t and 2t + 1 are one row of a [T/2, 2C] view, 2t + 2 starts the next
        pairs = ops.reshape(padded[:, 0:time], [x.shape[0], time // 2, 2 * c_in])
        after = ops.reshape(padded[:, 2 : time + 2], [x.shape[0], time // 2, 2 * c_in])[:, :, 0:c_in]
        cols = ops.concat([pairs, after], axis=-1)
    filters = ops.reshape(w(f"{name}.weight", 1, 3, c_in, c_out), [3 * c_in, c_out])
    return ops.gelu(cols @ filters + w(f"{name}.bias", c_out))


def self_attention(h: TensorValue, w: Weights, name: str, d: int, n_head: int) -> TensorValue:
    q, k, v = ops.split(linear(h, w, f"{name}.qkv", d, 3 * d), [d, d, d], axis=-1)
    heads = [split_heads(t, n_head) for t in (q, k, v)]
    # The int8 encoder may attend in bfloat16 on AMX (its WER: BUILD.md).
    out = custom_ops.attention(*heads, scale=head_scale(d, n_head), bf16=w.matrix_dtype == PACKED_INT8)
    # The output projection stays float32 in the int8 encoder: some rows of
    # the merged heads carry outlier channels that a per-row int8 scale
    # flattens (jfk, NumPy simulation: worst row cosine to the float encoder
    # 0.51 with it in int8, 0.997 without; it is 1/8 of the blocks' matmuls).
    return linear(merge_heads(out), Weights(w.device), f"{name}.out", d, d)


def build_encoder(dims: ModelDimensions, device: DeviceRef, int8: bool = False) -> Graph:
    """int8: every linear layer (the cross-attention key/value projections
    included) is the int8 GEMM on weights quantized per output channel, with
    activations quantized per row as it runs (compute_type="int8"), and the
    cross-attention keys and values come out as int8 rows with a scale each
    (layers.cross_kv)."""
    d, n_head = dims.n_audio_state, dims.n_audio_head
    w = Weights(device, PACKED_INT8 if int8 else None)
    mel_type = TensorType(DType.float32, ["batch", dims.n_mels, 2 * dims.n_audio_ctx], device)
    graph = Graph("whisper_encoder", input_types=[mel_type], custom_extensions=[kernel_library()])
    with graph:
        mel = graph.inputs[0].tensor
        x = conv_gelu(mel.transpose(1, 2), w, "encoder.conv1", dims.n_mels, d, stride=1)
        x = conv_gelu(x, w, "encoder.conv2", d, d, stride=2)
        x = x + w("encoder.positional_embedding", dims.n_audio_ctx, d)

        h = layer_norm(x, w, "encoder.blocks.0.attn_ln", d)
        for i in range(dims.n_audio_layer):
            block = f"encoder.blocks.{i}"
            h, x = add_layer_norm(x, self_attention(h, w, f"{block}.attn", d, n_head), w, f"{block}.mlp_ln", d)
            last = i + 1 == dims.n_audio_layer
            next_ln = "encoder.ln_post" if last else f"encoder.blocks.{i + 1}.attn_ln"
            h, x = add_layer_norm(x, mlp(h, w, f"{block}.mlp", d), w, next_ln, d)
        audio = h

        td, t_head = dims.n_text_state, dims.n_text_head
        cross = []
        for i in range(dims.n_text_layer):
            kv = linear(audio, w, f"decoder.blocks.{i}.cross_attn.kv", d, 2 * td)
            k, v = ops.split(kv, [td, td], axis=-1)
            cross += [*cross_kv(k, t_head, int8), *cross_kv(v, t_head, int8)]
        graph.output(audio, *cross)
    return graph
