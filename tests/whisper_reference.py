"""A NumPy reference forward pass of Whisper, written from openai-whisper's ``model.py``.

It shares no code with the MAX graph it checks: only the ``Checkpoint`` (OpenAI state-dict names)
comes from the project. Everything runs in float64 by default so that the reference's own
rounding is far below the tolerances the graph is held to.
"""

from __future__ import annotations

import math

import numpy as np

from maxwhisper_kernels.weights import Checkpoint

# math.erf is correctly rounded to float64; a vectorised polynomial would add its own error.
_erf = np.frompyfunc(math.erf, 1, 1)
_LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's default, which Whisper keeps


class _Weights:
    def __init__(self, ckpt: Checkpoint, dtype: type):
        self.tensors = ckpt.tensors
        self.dtype = dtype

    def __call__(self, name: str) -> np.ndarray:
        return self.tensors[name].astype(self.dtype)


def gelu(x: np.ndarray) -> np.ndarray:
    """Exact GELU, x * Phi(x), as torch's default (not the tanh approximation)."""
    return 0.5 * x * (1.0 + _erf(x / math.sqrt(2.0)).astype(x.dtype))


def layer_norm(x: np.ndarray, w: _Weights, prefix: str) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + _LAYER_NORM_EPS) * w(f"{prefix}.weight") + w(f"{prefix}.bias")


def linear(x: np.ndarray, w: _Weights, prefix: str, bias: bool = True) -> np.ndarray:
    y = x @ w(f"{prefix}.weight").T
    return y + w(f"{prefix}.bias") if bias else y


def conv1d(x: np.ndarray, w: _Weights, prefix: str, stride: int) -> np.ndarray:
    """Conv1d, kernel 3, padding 1, on time-major ``x`` [T, C_in] -> [T_out, C_out]."""
    weight = w(f"{prefix}.weight")  # [C_out, C_in, 3]
    padded = np.pad(x, ((1, 1), (0, 0)))
    n_out = (x.shape[0] - 1) // stride + 1
    y = sum(padded[k : k + stride * (n_out - 1) + 1 : stride] @ weight[:, :, k].T for k in range(3))
    return y + w(f"{prefix}.bias")


def attention(
    x: np.ndarray,
    source: np.ndarray,
    w: _Weights,
    prefix: str,
    n_head: int,
    causal: bool,
    record: list | None = None,
) -> np.ndarray:
    """Multi-head attention of ``x`` (queries) over ``source`` (keys and values); the
    softmax weights [n_head, n_q, n_source] are appended to ``record`` when given."""
    q = linear(x, w, f"{prefix}.query")
    k = linear(source, w, f"{prefix}.key", bias=False)
    v = linear(source, w, f"{prefix}.value")
    n_q, d = q.shape
    head = d // n_head
    q = q.reshape(n_q, n_head, head).transpose(1, 0, 2)
    k = k.reshape(len(source), n_head, head).transpose(1, 0, 2)
    v = v.reshape(len(source), n_head, head).transpose(1, 0, 2)
    # Whisper scales q and k each by head**-0.25; the product is the usual head**-0.5.
    scores = q @ k.transpose(0, 2, 1) / math.sqrt(head)
    if causal:
        scores = scores + np.triu(np.full(scores.shape[1:], -np.inf, dtype=scores.dtype), k=1)
    scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
    weights = scores / scores.sum(axis=-1, keepdims=True)
    if record is not None:
        record.append(weights)
    out = (weights @ v).transpose(1, 0, 2).reshape(n_q, d)
    return linear(out, w, f"{prefix}.out")


def residual_block(
    x: np.ndarray,
    w: _Weights,
    prefix: str,
    n_head: int,
    audio: np.ndarray | None = None,
    record: list | None = None,
) -> np.ndarray:
    """Pre-LN block; a decoder block (``audio`` given) is causal and adds cross-attention,
    whose weights go to ``record`` when given."""
    h = layer_norm(x, w, f"{prefix}.attn_ln")
    x = x + attention(h, h, w, f"{prefix}.attn", n_head, causal=audio is not None)
    if audio is not None:
        x = x + attention(
            layer_norm(x, w, f"{prefix}.cross_attn_ln"),
            audio,
            w,
            f"{prefix}.cross_attn",
            n_head,
            causal=False,
            record=record,
        )
    h = layer_norm(x, w, f"{prefix}.mlp_ln")
    return x + linear(gelu(linear(h, w, f"{prefix}.mlp.0")), w, f"{prefix}.mlp.2")


def encoder(ckpt: Checkpoint, mel: np.ndarray, dtype: type = np.float64) -> np.ndarray:
    """Audio features [n_audio_ctx, n_audio_state] of a log-mel [n_mels, 2 * n_audio_ctx]."""
    dims, w = ckpt.dims, _Weights(ckpt, dtype)
    if mel.shape != (dims.n_mels, 2 * dims.n_audio_ctx):
        raise ValueError(f"mel must be {(dims.n_mels, 2 * dims.n_audio_ctx)}, got {mel.shape}")
    x = gelu(conv1d(mel.T.astype(dtype), w, "encoder.conv1", stride=1))
    x = gelu(conv1d(x, w, "encoder.conv2", stride=2))
    x = x + w("encoder.positional_embedding")
    for i in range(dims.n_audio_layer):
        x = residual_block(x, w, f"encoder.blocks.{i}", dims.n_audio_head)
    return layer_norm(x, w, "encoder.ln_post")


def decoder_logits(
    ckpt: Checkpoint,
    tokens: list[int],
    audio_features: np.ndarray,
    dtype: type = np.float64,
    record: list | None = None,
) -> np.ndarray:
    """Next-token logits [len(tokens), n_vocab] after each prefix of ``tokens``; each
    layer's cross-attention weights [n_head, len(tokens), n_audio_ctx] go to ``record``."""
    dims, w = ckpt.dims, _Weights(ckpt, dtype)
    if not 0 < len(tokens) <= dims.n_text_ctx:
        raise ValueError(f"need 1..{dims.n_text_ctx} tokens, got {len(tokens)}")
    embedding = w("decoder.token_embedding.weight")
    x = embedding[np.asarray(tokens)] + w("decoder.positional_embedding")[: len(tokens)]
    audio = audio_features.astype(dtype)
    for i in range(dims.n_text_layer):
        x = residual_block(x, w, f"decoder.blocks.{i}", dims.n_text_head, audio=audio, record=record)
    # The output projection is tied to the token embedding.
    return layer_norm(x, w, "decoder.ln") @ embedding.T


def cross_attention_weights(
    ckpt: Checkpoint, tokens: list[int], audio_features: np.ndarray
) -> list[np.ndarray]:
    """Each decoder layer's cross-attention weights [n_head, len(tokens), n_audio_ctx]."""
    record: list[np.ndarray] = []
    decoder_logits(ckpt, tokens, audio_features, record=record)
    return record
