"""The OpenAI state-dict names and shapes of a Whisper model, and the check against them."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .dims import ModelDimensions
from .errors import MissingTensorError, TensorShapeError, WeightsError


def _linear(prefix: str, n_out: int, n_in: int, bias: bool = True) -> dict[str, tuple[int, ...]]:
    shapes = {f"{prefix}.weight": (n_out, n_in)}
    if bias:
        shapes[f"{prefix}.bias"] = (n_out,)
    return shapes


def _layer_norm(prefix: str, d: int) -> dict[str, tuple[int, ...]]:
    return {f"{prefix}.weight": (d,), f"{prefix}.bias": (d,)}


def _attention(prefix: str, d: int) -> dict[str, tuple[int, ...]]:
    # Whisper's key projection has no bias: softmax is invariant to a per-query constant.
    return {
        **_linear(f"{prefix}.query", d, d),
        **_linear(f"{prefix}.key", d, d, bias=False),
        **_linear(f"{prefix}.value", d, d),
        **_linear(f"{prefix}.out", d, d),
    }


def _block(prefix: str, d: int, cross: bool) -> dict[str, tuple[int, ...]]:
    shapes = {**_attention(f"{prefix}.attn", d), **_layer_norm(f"{prefix}.attn_ln", d)}
    if cross:
        shapes |= {
            **_attention(f"{prefix}.cross_attn", d),
            **_layer_norm(f"{prefix}.cross_attn_ln", d),
        }
    return shapes | {
        **_linear(f"{prefix}.mlp.0", 4 * d, d),
        **_linear(f"{prefix}.mlp.2", d, 4 * d),
        **_layer_norm(f"{prefix}.mlp_ln", d),
    }


def tensor_shapes(dims: ModelDimensions) -> dict[str, tuple[int, ...]]:
    """Every tensor of openai-whisper's state dict, by name, with its shape."""
    da, dt = dims.n_audio_state, dims.n_text_state
    shapes = {
        "encoder.conv1.weight": (da, dims.n_mels, 3),
        "encoder.conv1.bias": (da,),
        "encoder.conv2.weight": (da, da, 3),
        "encoder.conv2.bias": (da,),
        "encoder.positional_embedding": (dims.n_audio_ctx, da),
    }
    for i in range(dims.n_audio_layer):
        shapes |= _block(f"encoder.blocks.{i}", da, cross=False)
    shapes |= _layer_norm("encoder.ln_post", da)
    shapes |= {
        "decoder.token_embedding.weight": (dims.n_vocab, dt),
        "decoder.positional_embedding": (dims.n_text_ctx, dt),
    }
    for i in range(dims.n_text_layer):
        shapes |= _block(f"decoder.blocks.{i}", dt, cross=True)
    return shapes | _layer_norm("decoder.ln", dt)


def check_tensors(tensors: Mapping[str, np.ndarray], dims: ModelDimensions, source: Path) -> None:
    """Raise unless ``tensors`` holds exactly the state dict ``dims`` describes."""
    expected = tensor_shapes(dims)
    for name, shape in expected.items():
        if name not in tensors:
            raise MissingTensorError(source, name)
        if tuple(tensors[name].shape) != shape:
            raise TensorShapeError(source, name, shape, tensors[name].shape)
    unexpected = sorted(set(tensors) - set(expected))
    if unexpected:
        raise WeightsError(f"{source}: unexpected tensors for a Whisper model: {unexpected[:5]}")
