"""The loaded form of any Whisper checkpoint, whatever file format it came from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .dims import ModelDimensions, check_dims, dims_from_tensors
from .errors import CorruptWeightsError
from .schema import check_tensors

# The multilingual vocabulary adds one token (a language id) to the English-only one.
MULTILINGUAL_MIN_VOCAB = 51865


@dataclass
class Checkpoint:
    """A Whisper model's weights under openai-whisper's state-dict names, as C arrays.

    float16 tensors stay float16 (exact, half the memory, and no conversion at start-up: the
    graphs make their own copies in the layout and type they need); everything else is float32.
    """

    dims: ModelDimensions
    tensors: dict[str, np.ndarray]
    source: Path
    alignment_heads: list[tuple[int, int]] | None = None
    tokenizer_dir: Path | None = None
    config: dict[str, Any] | None = field(default=None, repr=False)

    @property
    def is_multilingual(self) -> bool:
        return self.dims.n_vocab >= MULTILINGUAL_MIN_VOCAB


def check_tied_projection(
    projection: np.ndarray | None, embedding: np.ndarray | None, path: Path, name: str
) -> None:
    """Formats that store the output projection must store the token embedding again.

    Whisper ties them; the reference forward pass and the graph compute logits from the
    embedding alone, so an untied projection would silently be ignored.
    """
    if (
        projection is not None
        and embedding is not None
        and not np.array_equal(projection, embedding)
    ):
        raise CorruptWeightsError(
            path, "output projection is not tied to the token embedding", name
        )


def _kept_dtype(value: np.ndarray) -> type:
    return np.float16 if value.dtype == np.float16 else np.float32


def _owned_copy(value: np.ndarray) -> np.ndarray:
    """value itself when it already is an owned, aligned C array of the kept type, else such a
    copy. (np.require is not used: NumPy 2.4's copies even an array that meets every flag.)"""
    flags = value.flags
    if value.dtype == _kept_dtype(value) and flags.c_contiguous and flags.aligned and flags.owndata:
        return value
    return np.require(value, _kept_dtype(value), ["C", "A", "O"])


def make_checkpoint(
    tensors: Mapping[str, np.ndarray],
    source: Path,
    *,
    dims: ModelDimensions | None = None,
    n_audio_head: int | None = None,
    n_text_head: int | None = None,
    config: dict[str, Any] | None = None,
    tokenizer_dir: Path | None = None,
    alignment_heads: list | None = None,
) -> Checkpoint:
    """Normalise converted tensors into a checked ``Checkpoint``.

    ``dims`` is given only by formats that store them (OpenAI's .pt); they are then checked
    against the tensors rather than trusted. Otherwise they are derived from the tensors.
    """
    # Owned, aligned copies: a view into the file's bytes may sit at an odd offset (MAX rejects
    # it) and would keep the whole file alive.
    arrays = {name: _owned_copy(value) for name, value in tensors.items()}
    if dims is None:
        dims = dims_from_tensors(arrays, source, n_audio_head, n_text_head)
    else:
        check_dims(dims, source)
    check_tensors(arrays, dims, source)
    if alignment_heads is None and config is not None:
        alignment_heads = config.get("alignment_heads")
    return Checkpoint(
        dims=dims,
        tensors=arrays,
        source=source,
        alignment_heads=None
        if alignment_heads is None
        else [tuple(map(int, h)) for h in alignment_heads],
        tokenizer_dir=tokenizer_dir,
        config=config,
    )
