"""A window at a time: which frames to decode, decoding with temperature fallback, and cutting
the decoded tokens into segments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..audio import FRAMES_PER_SECOND, HOP_LENGTH, SAMPLE_RATE
from ..decoding import AudioFeatures, DecodingOptions, DecodingResult, WhisperModel, decode_batch
from ..tokenizer import Tokenizer
from .settings import FallbackThresholds


def clip_ranges(clips: str | Sequence[float], content_frames: int) -> list[tuple[int, int]]:
    """(first, end) mel frames of each clip of clip_timestamps, "start,end,..." in seconds; a
    start with no end runs to the end of the audio."""
    if isinstance(clips, str):
        clips = [float(part) for part in clips.split(",") if part.strip()]
    frames = [round(seconds * FRAMES_PER_SECOND) for seconds in clips] or [0]
    if len(frames) % 2:
        frames.append(content_frames)
    return list(zip(frames[0::2], frames[1::2]))


class EncodedWindows:
    """A batch of window mels [n, n_mels, N_FRAMES], encoded once, as a whole. The windows
    that fall back to a higher temperature, or one window being word-aligned, take their rows
    of that encoding (a copy of the cross-attention inputs, ~2 MB a window for tiny) rather
    than an encoder pass of their own (130 ms a window for tiny on 2 cores)."""

    def __init__(self, model: WhisperModel, mels: np.ndarray):
        self.model = model
        self.mels = mels
        self._whole: AudioFeatures | None = None

    def features(self, indices: Sequence[int]) -> AudioFeatures:
        if self._whole is None:
            self._whole = self.model.encode(self.mels)
        if list(indices) == list(range(len(self.mels))):
            return self._whole
        return self._whole.subset(np.asarray(indices, dtype=np.int64))


def options_at(decode_options: dict[str, Any], temperature: float) -> DecodingOptions:
    """DecodingOptions for one temperature: beams only when choosing, best_of only when
    drawing."""
    unused = ("beam_size", "patience") if temperature > 0 else ("best_of",)
    kept = {k: v for k, v in decode_options.items() if k not in unused}
    return DecodingOptions(**kept, temperature=temperature)


def decode_with_fallback(
    model: WhisperModel,
    windows: EncodedWindows,
    temperatures: Sequence[float],
    thresholds: FallbackThresholds,
    decode_options: Sequence[dict[str, Any]],
) -> list[DecodingResult]:
    """Each window (own options) at the first temperature; those failing the thresholds again
    at the next, as a batch of their own, and so on. When the temperatures run out, the last
    result stands."""
    results: dict[int, DecodingResult] = {}
    retry = list(range(len(decode_options)))
    for temperature in temperatures:
        batch = [options_at(decode_options[i], temperature) for i in retry]
        results.update(zip(retry, decode_batch(model, windows.features(retry), batch)))
        retry = [i for i in retry if thresholds.needs_fallback(results[i])]
        if not retry:
            break
    return [results[i] for i in range(len(decode_options))]


@dataclass(frozen=True)
class WindowCut:
    """A window's tokens as segments, and the frames the seek moves on by."""

    segments: list[tuple[float, float, list[int]]]  # (start s, end s, tokens)
    seek_advance: int  # mel frames
    single_timestamp_ending: bool  # the text ends on a lone timestamp: nothing after it


def cut_window(
    tokens: list[int],
    tokenizer: Tokenizer,
    time_offset: float,
    segment_size: int,
    input_stride: int,
    time_precision: float,
) -> WindowCut:
    """Cuts at every pair of adjacent timestamps (one segment's end, the next one's start)."""
    zero = tokenizer.timestamp_begin
    timed = [t >= zero for t in tokens]
    lone_end = timed[-2:] == [False, True]
    cuts = [k for k in range(1, len(tokens)) if timed[k - 1] and timed[k]]

    if not cuts:
        # a single segment: to the last timestamp if there is a non-zero one, else the window
        stamps = [t for t in tokens if t >= zero]
        if stamps and stamps[-1] != zero:
            length = (stamps[-1] - zero) * time_precision
        else:
            length = segment_size * HOP_LENGTH / SAMPLE_RATE
        return WindowCut([(time_offset, time_offset + length, tokens)], segment_size, lone_end)

    if lone_end:
        cuts.append(len(tokens))
    segments = []
    for begin, end in zip([0, *cuts], cuts):
        piece = tokens[begin:end]
        first = time_offset + (piece[0] - zero) * time_precision
        last = time_offset + (piece[-1] - zero) * time_precision
        segments.append((first, last, piece))

    if lone_end:
        advance = segment_size  # nothing said after the end: the whole window is done
    else:
        # what follows the last pair was cut off by the window: decode it again next time,
        # from that pair's time
        advance = (tokens[cuts[-1] - 1] - zero) * input_stride
    return WindowCut(segments, advance, lone_end)
