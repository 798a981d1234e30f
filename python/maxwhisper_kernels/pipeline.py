"""Transcription of speech only: Silero VAD finds the speech, Whisper decodes it, and the
timestamps are mapped back to the original audio.

As faster-whisper does, the speech segments are cut out and joined (the silence between them
is dropped, so Whisper never sees long silences to hallucinate in); every time in the result
is then shifted by the silence removed before it.

Both paths read the audio as a stream: a file is decoded a block at a time (about a minute),
each block goes through the VAD (its recurrent state carried over) and the segmenter, and a
speech chunk is cut out as soon as it is final; audio no chunk can still reach is let go. The
sequential path (``vad_filter=True``) then holds only the joined speech. The batched path
packs the chunks into windows of at most 30 s and decodes ``batch_size`` windows at a time
through ``transcribe_batch`` (log-mel, encoder and decoder per batch), so it holds about
``batch_size`` windows and one block, whatever the length of the recording. Each window is
decoded with timestamp tokens, so segments keep Whisper's own boundaries (not one segment per
window: a 30 s window holds several sentences), mapped back through that window's chunks.
A window's text may not stop on a segment opened well before its speech ends (``vad_cut``):
nothing in a VAD window is cut off by its edge, so that tail is transcribed in the same
window rather than as a window of its own.
"""

from __future__ import annotations

import bisect
import collections
import functools
import os
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import tqdm

from .audio import CHUNK_LENGTH, SAMPLE_RATE, AudioStream, check_audio_array
from .transcribe import transcribe, transcribe_batch
from .vad.timestamps import SpeechSegmenter, VadOptions
from .vad.weights import WINDOW
from .writers import format_timestamp

# A start this close to the end of a speech chunk holds no word: it belongs to the next chunk
# (Whisper's timestamp tokens step 20 ms and may open a segment just before a join).
_MIN_WORD_SECONDS = 0.2
# Samples decoded and run through the VAD at a time (65.5 s): small enough that the block, its
# VAD inputs and the audio kept for chunks stay in tens of MB, large enough that one VAD graph
# execution per block costs little.
BLOCK_SAMPLES = 2048 * WINDOW
# Beams that read the rest of a window after a repetition loop (TranscribeOptions.
# resume_beam_size). On the 166 s recording's one looping window (tiny.en int8, batch 8), the
# whole clip's WER and time were: greedy, unprompted 18.8 % 2.22 s; beams of 1, 2, 3, 5
# (prompted) 18.6 % 2.47 s, 16.7 % 2.43 s, 16.7 % 2.62 s, 15.4 % 2.70 s; the sampled retry
# this replaces 15.2-29.0 % (median 17.3) in 2.2-3.0 s (BUILD.md)
RESUME_BEAM_SIZE = 2

Chunk = tuple[dict[str, int], np.ndarray]  # a speech chunk's bounds in the original, its samples


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


def _blocks(audio: str | os.PathLike[str] | np.ndarray) -> tuple[float | None, Iterable[np.ndarray]]:
    """The audio's duration in seconds (None if the file does not say) and its samples in blocks."""
    if isinstance(audio, np.ndarray):
        samples = check_audio_array(audio)
        return len(samples) / SAMPLE_RATE, (samples[i : i + BLOCK_SAMPLES] for i in range(0, len(samples), BLOCK_SAMPLES))
    stream = AudioStream(audio, BLOCK_SAMPLES)
    return stream.seconds, stream


class _RecentAudio:
    """The stream's latest blocks, from the earliest sample a speech chunk may still need."""

    def __init__(self):
        self.blocks: collections.deque[np.ndarray] = collections.deque()
        self.first = 0  # sample index of blocks[0] in the stream
        self.end = 0  # samples received

    def append(self, block: np.ndarray) -> None:
        self.blocks.append(block)
        self.end += len(block)

    def cut(self, start: int, end: int) -> np.ndarray:
        pieces, at = [], self.first
        for block in self.blocks:
            lo, hi = max(start - at, 0), min(end - at, len(block))
            if lo < hi:
                pieces.append(block[lo:hi])
            at += len(block)
        return np.concatenate(pieces) if len(pieces) > 1 else pieces[0].copy()

    def forget_before(self, sample: int) -> None:
        while self.blocks and self.first + len(self.blocks[0]) <= sample:
            self.first += len(self.blocks.popleft())


def speech_chunks(blocks: Iterable[np.ndarray], options: VadOptions) -> Iterator[Chunk]:
    """The speech chunks of a stream of 16 kHz blocks, each as soon as it is final."""
    probs, segmenter, recent = _vad().stream(), SpeechSegmenter(options), _RecentAudio()
    for block in blocks:
        recent.append(block)
        for chunk in segmenter.feed(probs.feed(block)):
            yield chunk, recent.cut(chunk["start"], chunk["end"])
        recent.forget_before(segmenter.earliest_start())
    for chunk in segmenter.feed(probs.finish()) + segmenter.finish(recent.end):
        yield chunk, recent.cut(chunk["start"], chunk["end"])


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
    _, blocks = _blocks(audio)
    found = list(speech_chunks(blocks, VadOptions(**(vad_parameters or {}))))
    if not found:
        return _empty(options)
    chunks = [chunk for chunk, _ in found]
    speech = np.concatenate([samples for _, samples in found])
    del found  # the pieces; only the joined speech is held while it is transcribed
    result = transcribe(model, speech, **options)
    _restore_times(result["segments"], _SpeechTimeMap(chunks))
    return result


def speech_windows(chunks: Iterable[Chunk]) -> Iterator[list[Chunk]]:
    """Consecutive speech chunks grouped greedily into windows of at most 30 s of speech."""
    limit = CHUNK_LENGTH * SAMPLE_RATE
    window: list[Chunk] = []
    length = 0
    for chunk in chunks:
        size = len(chunk[1])
        if window and length + size > limit:
            yield window
            window, length = [], 0
        window.append(chunk)
        length += size
    if window:
        yield window


def transcribe_batched(
    model,
    audio: str | os.PathLike[str] | np.ndarray,
    batch_size: int,
    vad_parameters: dict | None = None,
    *,
    verbose: bool | None = None,
    progress: bool = True,
    **options: Any,
) -> dict:
    """VAD, speech packed into <= 30 s windows, ``batch_size`` windows decoded together; the
    result is ``transcribe``'s dict, with the original audio's times.

    As faster-whisper's batched pipeline: VAD defaults to 160 ms of silence between chunks and
    chunks never exceed the window; windows are independent (no previous-text prompt).
    verbose: True prints each segment (original times) as its batch is done, False shows a
    progress bar over the audio's duration (unless progress is False), None prints nothing.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    vad_fields = {"min_silence_duration_ms": 160, **(vad_parameters or {}), "max_speech_duration_s": CHUNK_LENGTH}
    vad_options = VadOptions(**vad_fields)
    # a window caught in a repetition loop stops early rather than holding its batch to the
    # token limit, keeping what it closed before the loop (decoding/loops.py), and the rest is
    # read with beam search prompted by that text (resume_beam_size); stop_loops=False turns
    # that off. Each window is speech up to its end (vad_cut): its text may not stop on a
    # segment it opened well before that
    fixed = {"condition_on_previous_text": False, "vad_cut": True, "verbose": None, "progress": False}
    options = {"stop_loops": True, "resume_beam_size": RESUME_BEAM_SIZE, **options, **fixed}
    seconds, blocks = _blocks(audio)
    segments: list[dict] = []
    language = None

    with tqdm.tqdm(total=seconds and round(seconds, 2), unit="s", disable=verbose is not False or not progress) as bar:

        def decode(windows: list[list[Chunk]]) -> None:
            nonlocal language
            audios = [np.concatenate([samples for _, samples in window]) for window in windows]
            for window, result in zip(windows, transcribe_batch(model, audios, **options)):
                _restore_times(result["segments"], _SpeechTimeMap([chunk for chunk, _ in window]))
                for segment in result["segments"]:
                    segment["id"] = len(segments)
                    segments.append(segment)
                    if verbose:
                        start, end = format_timestamp(segment["start"]), format_timestamp(segment["end"])
                        print(f"[{start} --> {end}] {segment['text']}")
                language = language or result["language"]
            reached = windows[-1][-1][0]["end"] / SAMPLE_RATE
            bar.update(max(0.0, min(reached, bar.total or reached) - bar.n))

        waiting: list[list[Chunk]] = []
        for window in speech_windows(speech_chunks(blocks, vad_options)):
            waiting.append(window)
            if len(waiting) == batch_size:
                decode(waiting)
                waiting = []
        if waiting:
            decode(waiting)
        if bar.total:
            bar.update(bar.total - bar.n)
    if not segments and language is None:
        return _empty(options)
    return {"text": "".join(s["text"] for s in segments), "segments": segments, "language": language}
