"""Which language is spoken: one decoder step after <|startoftranscript|>, read over the
language tokens only."""

from __future__ import annotations

import numpy as np

from ..tokenizer import Tokenizer
from .interface import AudioFeatures, WhisperModel, features_of, get_model_tokenizer
from .search import log_softmax


def language_scores(
    model: WhisperModel, audio_features: AudioFeatures, n_audio: int, tokenizer: Tokenizer
) -> tuple[np.ndarray, list[dict[str, float]]]:
    """(likeliest language token per audio, per audio {code: probability})."""
    if tokenizer.language is None or tokenizer.language_token not in tokenizer.sot_sequence:
        raise ValueError("This model has no language tokens, so it cannot tell the language")

    # A run of its own with a fresh cache, so that no decoding cache sees this extra step.
    inference = model.new_inference(audio_features, n_group=1)
    try:
        start = np.full((n_audio, 1), tokenizer.sot, dtype=np.int64)
        logits = inference.logits(start)[:, 0]
    finally:
        inference.cleanup_caching()

    ids = np.array(tokenizer.all_language_tokens)
    scores = log_softmax(logits[:, ids])  # normalised over the languages alone
    codes = tokenizer.all_language_codes
    return ids[scores.argmax(axis=-1)], [dict(zip(codes, np.exp(s).tolist())) for s in scores]


def detect_language(
    model: WhisperModel, mel: np.ndarray | AudioFeatures, tokenizer: Tokenizer | None = None
) -> tuple[int | np.ndarray, dict[str, float] | list[dict[str, float]]]:
    """The likeliest language token and every language's probability. One mel [n_mels,
    n_frames] gives an int and a dict; a batch [n_audio, n_mels, n_frames], or the features
    of one, gives an array and a list of dicts."""
    tokenizer = tokenizer or get_model_tokenizer(model)
    one = isinstance(mel, np.ndarray) and mel.ndim == 2
    audio_features, n_audio = features_of(model, mel[None] if one else mel)
    tokens, probs = language_scores(model, audio_features, n_audio, tokenizer)
    return (int(tokens[0]), probs[0]) if one else (tokens, probs)
