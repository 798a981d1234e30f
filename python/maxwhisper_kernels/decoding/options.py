"""The knobs of one window's decoding and what a decoding hands back.

Field names are openai-whisper's (callers pass them by name through transcribe's **options);
their meaning is written here in the project's own terms.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ..audio import CHUNK_LENGTH


@dataclass(frozen=True)
class DecodingOptions:
    # "transcribe" keeps the spoken language; "translate" writes English whatever was spoken
    task: str = "transcribe"
    # code or name of the spoken language; None detects it from the window first
    language: str | None = None

    # 0 picks the likeliest token; above 0, tokens are drawn from softmax(logits / temperature)
    temperature: float = 0.0
    sample_len: int | None = None  # most tokens to write; None: half the text context
    best_of: int | None = None  # draws per window at temperature > 0, the likeliest kept
    beam_size: int | None = None  # beams per window at temperature 0; None decodes greedily
    patience: float | None = None  # finished beams to wait for, per beam (arxiv:2204.05424)

    # how candidates of unequal length are compared: None divides the log probability by the
    # length, a number alpha by ((5 + length) / 6) ** alpha (Google NMT's length penalty)
    length_penalty: float | None = None

    # context written before <|startoftranscript|> (prompt) and forced right after it (prefix)
    prompt: str | list[int] | None = None
    prefix: str | list[int] | None = None

    # ids (a list, or a comma-separated string) never written; -1 stands for the tokenizer's
    # non_speech_tokens, the symbols of speaker tags and sound annotations
    suppress_tokens: str | Iterable[int] | None = "-1"
    suppress_blank: bool = True  # no space or <|endoftext|> as the first written token

    without_timestamps: bool = False  # text only: <|notimestamps|> goes into the prompt
    max_initial_timestamp: float | None = 1.0  # latest time (s) the first segment may start

    seed: int | None = None  # of the generator drawing tokens at temperature > 0; None: fresh
    # a greedy or sampled row repeating one short block of tokens stops early: it keeps the
    # segments closed before the loop (the seek resumes there), or, with none, is written out
    # as if the loop ran to the limit (loops.py); not openai-whisper's, so off by default
    stop_loops: bool = False
    # seconds into the window where its audio ends, when that audio is speech cut out by VAD:
    # the text may not end right after opening a segment more than a second before that point,
    # since the segment can only be speech left unsaid (the window's edge cut nothing off).
    # Rows of one batch may differ in it. None: the window's edge may cut speech (openai-whisper)
    speech_end: float | None = None


@dataclass(frozen=True)
class DecodingResult:
    language: str
    language_probs: dict[str, float] | None = None
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    avg_logprob: float = np.nan
    no_speech_prob: float = np.nan
    temperature: float = np.nan
    compression_ratio: float = np.nan
    # the text stopped where a repetition loop began, after its last closed segment
    # (stop_loops): the rest of the window is still to be read
    loop_cut: bool = False


def validate(options: DecodingOptions) -> None:
    """Rejects combinations that have no meaning, before any work is done."""
    beam, best_of = options.beam_size, options.best_of
    if beam is not None and best_of is not None:
        raise ValueError("beam_size and best_of can't be given together: pick search or sampling")
    if best_of is not None and options.temperature == 0:
        raise ValueError("best_of is not compatible with temperature 0 (every draw is the same)")
    if beam is None and options.patience is not None:
        raise ValueError("patience requires beam_size: it only steers beam search")
    alpha = options.length_penalty
    if alpha is not None and not 0 <= alpha <= 1:
        raise ValueError(f"length_penalty (alpha) must lie between 0 and 1, got {alpha}")
    end = options.speech_end
    if end is not None and not 0 < end <= CHUNK_LENGTH:
        raise ValueError(f"speech_end must lie in (0, {CHUNK_LENGTH}] seconds, got {end}")
    for name in ("beam_size", "best_of", "sample_len"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ValueError(f"{name} must be at least 1, got {value}")


def compression_ratio(text: str) -> float:
    """Bytes of the text over bytes of its zlib form: a decoder stuck repeating itself writes
    text that compresses far better than speech does."""
    raw = text.encode("utf-8")
    return len(raw) / len(zlib.compress(raw))
