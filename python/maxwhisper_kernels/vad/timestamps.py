"""Speech segments from per-window speech probabilities, with faster-whisper's ``VadOptions``.

A segment opens at the first window whose probability reaches ``threshold`` and closes once the
probability has stayed below ``neg_threshold`` for ``min_silence_duration_ms``; segments
shorter than ``min_speech_duration_ms`` are dropped, a segment longer than
``max_speech_duration_s`` is cut at its longest inner pause (over 98 ms) or, if it has none,
where it reaches the limit; finally each segment grows by ``speech_pad_ms`` on both sides, or
by half the gap when two segments are closer than two pads.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..audio import SAMPLE_RATE
from .weights import WINDOW

_MIN_PAUSE_AT_MAX_SPEECH_MS = 98  # a pause this long is a place to cut an over-long segment


@dataclass(frozen=True)
class VadOptions:
    """faster-whisper's VAD options, same names and defaults."""

    threshold: float = 0.5
    neg_threshold: float | None = None  # None: max(threshold - 0.15, 0.01)
    min_speech_duration_ms: int = 0
    max_speech_duration_s: float = math.inf
    min_silence_duration_ms: int = 2000
    speech_pad_ms: int = 400

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"VAD threshold must lie in [0, 1], got {self.threshold}")
        if min(self.min_speech_duration_ms, self.min_silence_duration_ms, self.speech_pad_ms) < 0:
            raise ValueError("VAD durations must be >= 0")
        if self.max_speech_duration_s <= 0:
            raise ValueError(f"max_speech_duration_s must be > 0, got {self.max_speech_duration_s}")


def _raw_segments(probs: np.ndarray, o: VadOptions, n_samples: int) -> list[list[int]]:
    """[start, end] sample pairs before padding."""
    off = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
    per_ms = SAMPLE_RATE / 1000
    min_speech, min_silence = o.min_speech_duration_ms * per_ms, o.min_silence_duration_ms * per_ms
    pause_at_max = _MIN_PAUSE_AT_MAX_SPEECH_MS * per_ms
    max_speech = SAMPLE_RATE * o.max_speech_duration_s - WINDOW - 2 * o.speech_pad_ms * per_ms
    segments: list[list[int]] = []
    start = None  # sample where the open segment began
    quiet_since = None  # sample where the open segment's current pause began
    pauses: list[tuple[int, int]] = []  # (pause start, pause length) inside the open segment
    for i, p in enumerate(probs):
        sample = i * WINDOW
        if p >= o.threshold and quiet_since is not None:
            if sample - quiet_since > pause_at_max:
                pauses.append((quiet_since, sample - quiet_since))
            quiet_since = None
        if start is None:
            if p >= o.threshold:
                start = sample
            continue
        if sample - start > max_speech:
            if pauses:  # cut at the longest pause, speech resumes after it
                cut, length = max(pauses, key=lambda pause: pause[1])
                segments.append([start, cut])
                start = cut + length if cut + length < sample else None
            else:
                segments.append([start, sample])
                start = None
            pauses, quiet_since = [], None
            continue
        if p < off:
            quiet_since = sample if quiet_since is None else quiet_since
            if sample - quiet_since >= min_silence:
                if quiet_since - start > min_speech:
                    segments.append([start, quiet_since])
                start, quiet_since, pauses = None, None, []
    if start is not None and n_samples - start > min_speech:
        segments.append([start, n_samples])
    return segments


def speech_timestamps(
    probs: np.ndarray, n_samples: int, options: VadOptions | None = None
) -> list[dict[str, int]]:
    """``[{"start": sample, "end": sample}, ...]`` of the speech in ``n_samples`` of audio."""
    o = options or VadOptions()
    segments = _raw_segments(np.asarray(probs), o, n_samples)
    pad = int(SAMPLE_RATE * o.speech_pad_ms / 1000)
    for i, segment in enumerate(segments):
        if i == 0:
            segment[0] = max(0, segment[0] - pad)
        if i + 1 < len(segments):
            following = segments[i + 1]
            gap = following[0] - segment[1]
            grow = gap // 2 if gap < 2 * pad else pad
            segment[1] = min(n_samples, segment[1] + grow)
            following[0] = max(0, following[0] - grow)
        else:
            segment[1] = min(n_samples, segment[1] + pad)
    return [{"start": int(s), "end": int(e)} for s, e in segments]
