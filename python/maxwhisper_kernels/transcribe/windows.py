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


def _rounds(temperatures: Sequence[float], parallel: int) -> list[tuple[float, ...]]:
    """The temperatures in the order they are tried, grouped into the ones decoded together:
    the first alone, then up to `parallel` at a time. A temperature of 0 stays alone (greedy or
    beam search, never drawn beside samples)."""
    rounds: list[tuple[float, ...]] = []
    for t in temperatures:
        last = rounds[-1] if len(rounds) > 1 else None  # the first round stays closed
        if last is not None and len(last) < parallel and t > 0 and last[0] > 0:
            rounds[-1] = (*last, t)
        else:
            rounds.append((t,))
    return rounds


def decode_with_fallback(
    model: WhisperModel,
    windows: EncodedWindows,
    temperatures: Sequence[float],
    thresholds: FallbackThresholds,
    decode_options: Sequence[dict[str, Any]],
    parallel: int = 1,
) -> list[DecodingResult]:
    """Each window (own options) at the first temperature; those failing the thresholds again
    at the next, as a batch of their own, and so on. When the temperatures run out, the last
    result stands. parallel > 1 draws a failing window at that many of the next temperatures
    at once (rows sharing its features, so a step costs little more than one row's) and takes
    the lowest that passes: the result openai-whisper's one-at-a-time fallback picks, without
    waiting for each failure in turn."""
    results: dict[int, DecodingResult] = {}
    retry = list(range(len(decode_options)))
    for temps in _rounds(temperatures, parallel):
        batch = [options_at(decode_options[i], temps[0]) for i in retry]
        found = decode_batch(model, windows.features(retry), batch, temps)
        for k, i in enumerate(retry):
            for result in found[k * len(temps) : (k + 1) * len(temps)]:
                results[i] = result
                if not thresholds.needs_fallback(result):
                    break
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
