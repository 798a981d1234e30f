"""Whisper's model dimensions, read off a checkpoint's tensors."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MissingTensorError, WeightsError

# Every released Whisper size uses 64-wide attention heads; only used when a format stores no
# head count (a bare model.safetensors without its config.json).
WHISPER_HEAD_WIDTH = 64


@dataclass(frozen=True)
class ModelDimensions:
    """The fields of openai-whisper's ``ModelDimensions``, in its order."""

    n_mels: int
    n_audio_ctx: int
    n_audio_state: int
    n_audio_head: int
    n_audio_layer: int
    n_vocab: int
    n_text_ctx: int
    n_text_state: int
    n_text_head: int
    n_text_layer: int


def _shape(tensors: Mapping[str, np.ndarray], name: str, source: Path) -> tuple[int, ...]:
    if name not in tensors:
        raise MissingTensorError(source, name)
    return tuple(tensors[name].shape)


def _count_layers(tensors: Mapping[str, np.ndarray], stack: str) -> int:
    pattern = re.compile(rf"{stack}\.blocks\.(\d+)\.")
    indices = {int(m.group(1)) for name in tensors if (m := pattern.match(name))}
    # Layers are numbered from 0 without gaps; a gap means a lost tensor group, which the shape
    # check reports by name once the count covers it.
    return max(indices) + 1 if indices else 0


def dims_from_tensors(
    tensors: Mapping[str, np.ndarray],
    source: Path,
    n_audio_head: int | None = None,
    n_text_head: int | None = None,
) -> ModelDimensions:
    """Dimensions of OpenAI-named tensors; head counts come from the format's metadata."""
    n_audio_state, n_mels, _ = _shape(tensors, "encoder.conv1.weight", source)
    n_audio_ctx = _shape(tensors, "encoder.positional_embedding", source)[0]
    n_vocab, n_text_state = _shape(tensors, "decoder.token_embedding.weight", source)
    n_text_ctx = _shape(tensors, "decoder.positional_embedding", source)[0]
    dims = ModelDimensions(
        n_mels=n_mels,
        n_audio_ctx=n_audio_ctx,
        n_audio_state=n_audio_state,
        n_audio_head=n_audio_head or n_audio_state // WHISPER_HEAD_WIDTH,
        n_audio_layer=_count_layers(tensors, "encoder"),
        n_vocab=n_vocab,
        n_text_ctx=n_text_ctx,
        n_text_state=n_text_state,
        n_text_head=n_text_head or n_text_state // WHISPER_HEAD_WIDTH,
        n_text_layer=_count_layers(tensors, "decoder"),
    )
    check_dims(dims, source)
    return dims


def check_dims(dims: ModelDimensions, source: Path) -> None:
    """Reject dimensions no Whisper model can have (zero layers, heads not dividing the width)."""
    for stack in ("audio", "text"):
        state = getattr(dims, f"n_{stack}_state")
        heads = getattr(dims, f"n_{stack}_head")
        layers = getattr(dims, f"n_{stack}_layer")
        if layers < 1:
            raise WeightsError(f"{source}: the {stack} stack has no layers")
        if heads < 1 or state % heads:
            raise WeightsError(
                f"{source}: n_{stack}_head={heads} does not divide n_{stack}_state={state}"
            )
