"""What decoding asks of a model, and the model-dependent choices made before decoding starts.

The encoder's output never leaves the model: decoding holds it as an opaque `AudioFeatures`
handle and only ever sees the NumPy logits the decoder answers with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from ..tokenizer import Tokenizer, get_tokenizer

# What model.encode returns. Nothing here looks inside except for its batch size, n_audio.
AudioFeatures = Any


class Inference(Protocol):
    """One decoder run over a batch of audio features; it owns the key/value cache.

    An inference may also apply the token rules itself, in its step graph: it then has
    applies_rules = True and ruled_logits(tokens, positions, bars, barred, first_timestamp),
    which returns (logits as logits() does, the last position's logits with the rules
    applied [rows, n_vocab], the ids of their best [rows, k] best first, (peak, log
    normaliser) [rows, 2]); see rules.TokenRules for bars and barred. Without it, decoding
    applies the rules to the logits in NumPy."""

    def logits(self, tokens: np.ndarray, positions: Sequence[int] | None = None) -> np.ndarray:
        """Logits [rows, len(positions), n_vocab] for tokens [rows, n_ctx]. positions (negative
        ones count from the end) must not be cached yet. Left out, it means every position not
        cached: the whole prompt on the first call, one token per call after that."""

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        """Row i of the cache continues row source_indices[i] (after beams were re-ranked)."""

    def keep_rows(self, rows: Sequence[int]) -> None:
        """Only these rows (whole groups of one audio, in order) go on; the others are done."""

    def cleanup_caching(self) -> None:
        """Releases the cache; the run is over."""

    def cross_attention_weights(self) -> list[np.ndarray] | None:
        """Softmaxed cross-attention of the last logits() call, one [rows, n_head, n_new,
        n_audio_ctx] array per decoder layer; None if the model does not keep it."""


class WhisperModel(Protocol):
    dims: Any  # ModelDimensions
    is_multilingual: bool
    num_languages: int
    alignment_heads: list[tuple[int, int]] | None
    tokenizer_dir: Any  # str | os.PathLike | None

    def encode(self, mel: np.ndarray) -> AudioFeatures: ...

    def new_inference(self, audio_features: AudioFeatures, n_group: int = 1) -> Inference: ...


def get_model_tokenizer(
    model: WhisperModel, language: str | None = None, task: str | None = None
) -> Tokenizer:
    """The tokenizer of this model's vocabulary, set up for a language and task."""
    return get_tokenizer(
        model.is_multilingual,
        num_languages=model.num_languages,
        language=language,
        task=task,
        vocab_dir=model.tokenizer_dir,
    )


def check_language_and_task(model: WhisperModel, language: str | None, task: str) -> None:
    """Refuses what an English-only model cannot do. openai-whisper silently falls back to
    English transcription there, which leaves the user wondering why nothing was translated."""
    if model.is_multilingual:
        return
    if task == "translate":
        raise ValueError("this is an English-only model: it cannot translate (task='translate')")
    if language is not None and language.lower() not in ("en", "english"):
        raise ValueError(
            f"this is an English-only model: it cannot transcribe language {language!r}; "
            "use a multilingual model or language='en'"
        )


def features_of(
    model: WhisperModel, mel: np.ndarray | AudioFeatures
) -> tuple[AudioFeatures, int]:
    """(audio features, n_audio) of mels [n_audio, n_mels, n_frames]; features pass through."""
    if isinstance(mel, np.ndarray):
        return model.encode(np.ascontiguousarray(mel, dtype=np.float32)), mel.shape[0]
    return mel, mel.n_audio
