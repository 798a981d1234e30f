"""Long-form transcription of a 2.5-minute clip synthesised with espeak-ng
from a known text (tests/data/long_form.txt), so the ground truth is exact.
openai-whisper on the same weights and audio (tests/data/
openai_whisper_reference.json) scores 22 % WER greedy (its no-speech rule
drops the last 10 s window) and 13 % with beam 5."""

import collections

import pytest

from clips import LONG_FORM_TEXT
from maxwhisper_kernels.text import normalize_text, word_error_rate

WER_BOUND = {"greedy": 0.25, "beam5": 0.15}


@pytest.fixture(params=["greedy", "beam5"])
def long_result(request, long_form_result):
    return request.param, long_form_result(request.param)


def excess_repeats(text: str, n: int = 5) -> int:
    """How many n-word phrases repeat more often than in the reference text."""

    def counts(s):
        words = normalize_text(s).split()
        return collections.Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))

    reference = counts(LONG_FORM_TEXT)
    return sum(1 for phrase, c in counts(text).items() if c > max(reference.get(phrase, 0), 1))


def test_segments_cover_the_clip_in_order(long_result, long_clip):
    _, result = long_result
    duration = len(long_clip) / 16000
    segments = result["segments"]
    assert len(segments) > 10
    assert segments[0]["start"] < 1.0
    assert segments[-1]["end"] > 0.9 * duration
    assert segments[-1]["end"] <= duration + 1.0
    for a, b in zip(segments, segments[1:]):
        assert a["start"] <= a["end"] <= b["start"] + 1e-6
        assert b["start"] - a["end"] < 5.0  # no stretch of speech skipped mid-clip


def test_no_repetition_loops(long_result):
    assert excess_repeats(long_result[1]["text"]) <= 2


def test_word_error_rate_against_the_known_text(long_result):
    mode, result = long_result
    assert word_error_rate(LONG_FORM_TEXT, result["text"]) < WER_BOUND[mode]
