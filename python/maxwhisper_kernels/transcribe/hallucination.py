"""Telling hallucinated segments from speech by their word timings, and where to go on when a
window's text looks made up over silence (hallucination_silence_threshold)."""

from __future__ import annotations

from dataclasses import dataclass

from ..audio import FRAMES_PER_SECOND
from ..timing import APPEND_PUNCTUATIONS, PREPEND_PUNCTUATIONS
from ..writers import get_end

# Punctuation-only "words" say nothing either way about a hallucination.
PUNCTUATION = PREPEND_PUNCTUATIONS + APPEND_PUNCTUATIONS


def word_anomaly(word: dict) -> float:
    """How little a word looks like speech: improbable, or too short, or too long."""
    duration = word["end"] - word["start"]
    score = 1.0 if word.get("probability", 0.0) < 0.15 else 0.0
    if duration < 0.133:  # under 133 ms: 15 points per second missing
        score += (0.133 - duration) * 15
    if duration > 2.0:  # over 2 s: a point per second too long
        score += duration - 2.0
    return score


def is_segment_anomaly(segment: dict | None) -> bool:
    """Whether the first (up to 8) real words of a segment look hallucinated."""
    if segment is None or len(segment["words"]) == 0:
        return False
    spoken = [w for w in segment["words"] if w["word"] not in PUNCTUATION][:8]
    total = sum(map(word_anomaly, spoken))
    return total >= 3 or total + 0.01 >= len(spoken)


def next_words_segment(segments: list[dict]) -> dict | None:
    """The first segment that has words."""
    return next(filter(lambda s: s["words"], segments), None)


@dataclass(frozen=True)
class WindowSpan:
    """Where a window lies, in the units the silence checks need."""

    previous_seek: int  # frame the window started at
    segment_size: int  # frames of audio in it
    time_offset: float  # its start, s
    window_end_time: float  # its start + 30 s
    segment_duration: float  # s of audio in it
    content_duration: float  # s of the whole audio
    content_frames: int


@dataclass(frozen=True)
class _SilenceSkip:
    seek: int
    retry_window: bool  # drop this window's segments and decode again from seek


def skip_hallucinated_silence(
    segments: list[dict],
    span: WindowSpan,
    *,
    threshold: float,
    single_timestamp_ending: bool,
    seek: int,
    last_speech_timestamp: float,
) -> _SilenceSkip:
    """Where to go on after a window whose segments may be hallucinated over silence. Segments
    from a suspect one on are deleted from `segments` (in place)."""
    if not single_timestamp_ending:
        # go on from the last word, unless only a short silence follows it
        end = get_end(segments)
        if end is not None and end > span.time_offset:
            if span.window_end_time - end > threshold:
                seek = round(end * FRAMES_PER_SECOND)
            else:
                seek = span.previous_seek + span.segment_size

    # a suspect opening segment after a long silence: start again where that silence ends
    opening = next_words_segment(segments)
    if opening is not None and is_segment_anomaly(opening):
        silence = opening["start"] - span.time_offset
        if silence > threshold:
            skip = span.previous_seek + round(silence * FRAMES_PER_SECOND)
            return _SilenceSkip(skip, retry_window=True)

    # a suspect segment between silences (or other suspects): drop it and everything after,
    # and go on from its start
    speech_end = last_speech_timestamp
    for index, segment in enumerate(segments):
        if not segment["words"]:
            continue
        if is_segment_anomaly(segment):
            following = next_words_segment(segments[index + 1 :])
            if following is None:
                next_speech = span.time_offset + span.segment_duration
            else:
                next_speech = following["words"][0]["start"]
            start, end = segment["start"], segment["end"]
            quiet_before = (
                start - speech_end > threshold
                or start < threshold
                or start - span.time_offset < 2.0
            )
            quiet_after = (
                next_speech - end > threshold
                or is_segment_anomaly(following)
                or span.window_end_time - end < 2.0
            )
            if quiet_before and quiet_after:
                seek = round(max(span.time_offset + 1, start) * FRAMES_PER_SECOND)
                if span.content_duration - end < threshold:
                    seek = span.content_frames
                del segments[index:]
                break
        speech_end = segment["end"]
    return _SilenceSkip(seek, retry_window=False)
