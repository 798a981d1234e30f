"""Speech segments from per-window speech probabilities, with faster-whisper's ``VadOptions``,
found as the probabilities arrive (hours of audio never need to be held at once).

A segment opens at the first window whose probability reaches ``threshold`` and closes once the
probability has stayed below ``neg_threshold`` for ``min_silence_duration_ms`` (it ends where
that quiet began); a closed segment of ``min_speech_duration_ms`` or less is dropped. A segment
that grows past ``max_speech_duration_s`` (less one window and two pads, so that it still fits
once padded) is cut where its latest pause of over 98 ms began, and speech resumes where that
pause ended; with no such pause it is cut where it stands. Last, each segment grows by
``speech_pad_ms`` on both sides, or by half the gap when two segments lie closer than two
pads. This is faster-whisper 1.2.1's ``get_speech_timestamps`` rule for rule, checked against
its recorded output in tests/test_vad.py.
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


class SpeechSegmenter:
    """Speech segments of a stream of probabilities: ``feed`` them in pieces, then ``finish``.

    Both return the segments that have become final, as ``{"start": sample, "end": sample}``
    with padding applied, in order. A segment is final once the next one is known, or once the
    stream has gone far enough past its end that no later segment can reach its padding.
    """

    def __init__(self, options: VadOptions | None = None):
        o = options or VadOptions()
        per_ms = SAMPLE_RATE / 1000
        # Compared in float32, as the probabilities are (faster-whisper compares float32
        # scalars with Python floats, which NumPy 2 does in float32): 0.35 is then not below 0.35.
        self.on = np.float32(o.threshold)
        off = o.neg_threshold if o.neg_threshold is not None else max(o.threshold - 0.15, 0.01)
        self.off = np.float32(off)
        self.min_speech = o.min_speech_duration_ms * per_ms
        self.min_silence = o.min_silence_duration_ms * per_ms
        self.cut_pause = _MIN_PAUSE_AT_MAX_SPEECH_MS * per_ms
        self.pad = int(o.speech_pad_ms * per_ms)
        self.max_speech = SAMPLE_RATE * o.max_speech_duration_s - WINDOW - 2 * self.pad
        self.position = 0  # first sample of the next window
        self.start: int | None = None  # where the open segment began
        # Sample positions of the open segment; 0 stands for "none" (none can be at sample 0).
        self.quiet_from = 0  # where the current run of quiet windows began
        self.cut_at = 0  # where the latest pause longer than cut_pause began
        self.resume_at = 0  # where speech came back after that pause
        self.closed: list[list[int]] = []  # unpadded [start, end], not yet returned
        self.previous_end: int | None = None  # unpadded end of the last segment returned

    def _close(self, end: int, reopen_at: int | None = None) -> None:
        self.closed.append([self.start, end])
        self.start = reopen_at
        self.quiet_from = self.cut_at = self.resume_at = 0

    def _step(self, speech: bool, quiet: bool, at: int) -> None:
        if speech and self.quiet_from:
            self.quiet_from = 0
            if self.resume_at < self.cut_at:
                self.resume_at = at
        if self.start is None:
            if speech:
                self.start = at
            return
        if at - self.start > self.max_speech:
            if not self.cut_at:
                self._close(at)
                return
            # Speech goes on from the pause's end, unless that pause is still going on.
            self._close(self.cut_at, self.resume_at if self.resume_at >= self.cut_at else None)
        if quiet and self.start is not None:
            self.quiet_from = self.quiet_from or at
            if at - self.quiet_from > self.cut_pause:
                self.cut_at = self.quiet_from
            if at - self.quiet_from >= self.min_silence:
                if self.quiet_from - self.start > self.min_speech:
                    self._close(self.quiet_from)
                else:
                    self.start = None
                    self.quiet_from = self.cut_at = self.resume_at = 0

    def _grow(self, gap: int) -> int:
        return gap // 2 if gap < 2 * self.pad else self.pad

    def _ready(self, horizon: int, n_samples: int | None = None) -> list[dict[str, int]]:
        """Pads and returns the closed segments whose next neighbour is known or cannot start
        before ``horizon``; with ``n_samples`` (the stream has ended) all of them."""
        out = []
        while self.closed:
            start, end = self.closed[0]
            if len(self.closed) > 1:
                end += self._grow(self.closed[1][0] - end)
            elif n_samples is not None:
                end = min(n_samples, end + self.pad)
            elif horizon - end >= 2 * self.pad:
                end += self.pad
            else:
                break
            if self.previous_end is None:
                start = max(0, start - self.pad)
            else:
                start = max(0, start - self._grow(start - self.previous_end))
            self.previous_end = self.closed.pop(0)[1]
            out.append({"start": int(start), "end": int(end)})
        return out

    def feed(self, probs: np.ndarray) -> list[dict[str, int]]:
        probs = np.asarray(probs, dtype=np.float32)
        for speech, quiet in zip((probs >= self.on).tolist(), (probs < self.off).tolist()):
            self._step(speech, quiet, self.position)
            self.position += WINDOW
        return self._ready(self.start if self.start is not None else self.position)

    def finish(self, n_samples: int) -> list[dict[str, int]]:
        """The remaining segments of ``n_samples`` of audio (an open one runs to its end)."""
        if self.start is not None and n_samples - self.start > self.min_speech:
            self._close(n_samples)
        return self._ready(n_samples, n_samples)

    def earliest_start(self) -> int:
        """No segment still to be returned starts before this sample: audio before it can go."""
        first = self.closed[0][0] if self.closed else self.start if self.start is not None else self.position
        return max(0, first - self.pad)


def speech_timestamps(
    probs: np.ndarray, n_samples: int, options: VadOptions | None = None
) -> list[dict[str, int]]:
    """``[{"start": sample, "end": sample}, ...]`` of the speech in ``n_samples`` of audio."""
    segmenter = SpeechSegmenter(options)
    return segmenter.feed(probs) + segmenter.finish(n_samples)
