"""Transcription of speech only: Silero VAD finds the speech, Whisper decodes it, and the
timestamps are mapped back to the original audio.

As faster-whisper does, the speech segments are cut out and joined (the silence between them
is dropped, so Whisper never sees long silences to hallucinate in); every time in the result
is then shifted by the silence removed before it.

The batched path packs the speech into windows of at most 30 s and decodes ``batch_size``
windows at a time through ``transcribe_batch`` (one batched encoder and decoder run per
group). Each window is decoded with timestamp tokens, so segments keep Whisper's own
boundaries (not one segment per window), mapped back through that window's speech map.
"""

from __future__ import annotations

import bisect
import functools
import os
from typing import Any

import numpy as np

from .audio import CHUNK_LENGTH, SAMPLE_RATE, load_audio
from .transcribe import transcribe, transcribe_batch
from .vad.timestamps import VadOptions, speech_timestamps


# A start this close to the end of a speech chunk holds no word: it belongs to the next chunk
# (Whisper's timestamp tokens step 20 ms and may open a segment just before a join).
_MIN_WORD_SECONDS = 0.2


class _SpeechTimeMap:
    """Maps a time in the joined speech back to the same instant of the original audio."""

    def __init__(self, chunks: list[dict[str, int]]):
        self.starts, self.ends, self.shifts = [], [], []  # per chunk, in joined-speech seconds
        joined = removed = previous_end = 0
        for chunk in chunks:
            removed += chunk["start"] - previous_end
            self.starts.append(joined / SAMPLE_RATE)
            joined += chunk["end"] - chunk["start"]
            previous_end = chunk["end"]
            self.ends.append(joined / SAMPLE_RATE)
            self.shifts.append(removed / SAMPLE_RATE)

    def original(self, t: float, is_end: bool = False) -> float:
        if is_end:  # an end on a boundary closes the chunk before it; none runs past the last
            index = min(bisect.bisect_left(self.ends, t), len(self.ends) - 1)
            t = min(t, self.ends[index])
        else:
            index = min(bisect.bisect_right(self.ends, t), len(self.ends) - 1)
            if index + 1 < len(self.ends) and self.ends[index] - t < _MIN_WORD_SECONDS:
                index, t = index + 1, self.starts[index + 1]
        return round(t + self.shifts[index], 3)


@functools.cache
def _vad():
    """One Silero graph per process, built only when VAD is first asked for."""
    from .vad.network import SileroVad

    return SileroVad()


def _speech(audio, vad_options: VadOptions) -> tuple[np.ndarray, list[dict[str, int]]]:
    samples = load_audio(audio) if not isinstance(audio, np.ndarray) else np.asarray(audio, np.float32)
    return samples, speech_timestamps(_vad().speech_probs(samples), len(samples), vad_options)


def _joined(samples: np.ndarray, chunks: list[dict[str, int]]) -> np.ndarray:
    return np.concatenate([samples[c["start"] : c["end"]] for c in chunks])


def _restore_times(segments: list[dict], times: _SpeechTimeMap) -> None:
    for segment in segments:
        segment["start"] = times.original(segment["start"])
        segment["end"] = times.original(segment["end"], is_end=True)
        for word in segment.get("words", []):
            word["start"] = times.original(word["start"])
            word["end"] = times.original(word["end"], is_end=True)


def _empty(options: dict) -> dict:
    return {"text": "", "segments": [], "language": options.get("language") or "en"}


def transcribe_speech(
    model, audio: str | os.PathLike[str] | np.ndarray, vad_parameters: dict | None = None, **options: Any
) -> dict:
    """``transcribe`` over the speech found by VAD; the result has the original audio's times."""
    samples, chunks = _speech(audio, VadOptions(**(vad_parameters or {})))
    if not chunks:
        return _empty(options)
    result = transcribe(model, _joined(samples, chunks), **options)
    _restore_times(result["segments"], _SpeechTimeMap(chunks))
    return result


def _windows(chunks: list[dict[str, int]]) -> list[list[dict[str, int]]]:
    """Consecutive speech chunks grouped greedily into windows of at most 30 s of speech."""
    limit = CHUNK_LENGTH * SAMPLE_RATE
    windows: list[list[dict[str, int]]] = []
    length = limit + 1
    for chunk in chunks:
        size = chunk["end"] - chunk["start"]
        if length + size > limit:
            windows.append([])
            length = 0
        windows[-1].append(chunk)
        length += size
    return windows


def transcribe_batched(
    model,
    audio: str | os.PathLike[str] | np.ndarray,
    batch_size: int,
    vad_parameters: dict | None = None,
    **options: Any,
) -> dict:
    """VAD, speech packed into <= 30 s windows, ``batch_size`` windows decoded together.

    As faster-whisper's batched pipeline: VAD defaults to 160 ms of silence between chunks and
    chunks never exceed the window; windows are independent (no previous-text prompt).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    vad_fields = {"min_silence_duration_ms": 160, **(vad_parameters or {}), "max_speech_duration_s": CHUNK_LENGTH}
    samples, chunks = _speech(audio, VadOptions(**vad_fields))
    if not chunks:
        return _empty(options)
    options = {**options, "condition_on_previous_text": False}
    windows = _windows(chunks)
    segments, language = [], None
    for first in range(0, len(windows), batch_size):
        group = windows[first : first + batch_size]
        results = transcribe_batch(model, [_joined(samples, w) for w in group], **options)
        for window, result in zip(group, results):
            _restore_times(result["segments"], _SpeechTimeMap(window))
            segments += result["segments"]
            language = language or result["language"]
    for index, segment in enumerate(segments):
        segment["id"] = index
    return {"text": "".join(s["text"] for s in segments), "segments": segments, "language": language}
