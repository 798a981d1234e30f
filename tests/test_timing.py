"""Word timestamps: median filter, dynamic time warping, punctuation merging and the alignment of
words to a fake model's cross-attention, on small inputs worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from maxwhisper_kernels.timing import (
    WordTiming,
    add_word_timestamps,
    dtw,
    find_alignment,
    median_filter,
    merge_punctuations,
)
from maxwhisper_kernels.tokenizer import get_tokenizer
from maxwhisper_kernels.weights import ModelDimensions

TOKENIZER = get_tokenizer(False)
N_VOCAB = 51864
HELLO, WORLD, PERIOD = 18435, 995, 13  # " Hello", " world", "."


def test_median_filter_reflects_at_the_edges():
    x = np.array([1.0, 5.0, 2.0, 8.0, 3.0])
    # padded by reflection: 5 | 1 5 2 8 3 | 8
    np.testing.assert_array_equal(median_filter(x, 3), [5.0, 2.0, 5.0, 3.0, 8.0])
    np.testing.assert_array_equal(median_filter(x[None, None], 3)[0, 0], [5.0, 2.0, 5.0, 3.0, 8.0])


def test_median_filter_leaves_inputs_too_short_to_reflect():
    x = np.array([[4.0, 1.0, 9.0]])
    assert median_filter(x, 7) is x
    with pytest.raises(ValueError, match="odd"):
        median_filter(x, 4)


def test_dtw_follows_the_cheap_cells():
    x = np.array([[0.0, 0.0, 9.0, 9.0], [9.0, 9.0, 0.0, 0.0]])
    np.testing.assert_array_equal(dtw(x), [[0, 0, 1, 1], [0, 1, 2, 3]])
    np.testing.assert_array_equal(dtw(1.0 - np.eye(3)), [[0, 1, 2], [0, 1, 2]])


def test_dtw_breaks_ties_as_openai_whisper():
    # every path costs 0: at (1, 1) all three moves tie and the right step wins (t = 2),
    # so walking back the path leaves the last column first
    np.testing.assert_array_equal(dtw(np.zeros((2, 2))), [[0, 1, 1], [0, 0, 1]])


def reference_dtw(x: np.ndarray) -> np.ndarray:
    """openai-whisper's dtw_cpu and backtrace, as plain loops."""
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    trace = -np.ones((n + 1, m + 1), dtype=np.float32)
    cost[0, 0] = 0
    for j in range(1, m + 1):
        for i in range(1, n + 1):
            c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
            if c0 < c1 and c0 < c2:
                c, t = c0, 0
            elif c1 < c0 and c1 < c2:
                c, t = c1, 1
            else:
                c, t = c2, 2
            cost[i, j] = x[i - 1, j - 1] + c
            trace[i, j] = t

    trace[0, :] = 2
    trace[:, 0] = 1
    i, j, path = n, m, []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        t = trace[i, j]
        i, j = (i - 1, j - 1) if t == 0 else (i - 1, j) if t == 1 else (i, j - 1)
    return np.array(path[::-1]).T


@given(
    hnp.arrays(
        np.float64,
        st.tuples(st.integers(1, 7), st.integers(1, 12)),
        # few distinct values, so that ties are common
        elements=st.sampled_from([0.0, 0.5, 1.0, -1.0, 2.25]),
    )
)
def test_dtw_matches_the_loop_implementation(x):
    np.testing.assert_array_equal(dtw(x), reference_dtw(x))


def timings(*words: tuple[str, list[int]]) -> list[WordTiming]:
    return [WordTiming(word, tokens, 0.0, 0.0, 1.0) for word, tokens in words]


def test_merge_punctuations_joins_opening_and_closing_marks():
    alignment = timings(
        (" Hello", [1]), (",", [2]), (" (", [3]), ("world", [4]), (")", [5]), (".", [6])
    )
    merge_punctuations(alignment, "\"'“¿([{-", "\"'.。,，!！?？:：”)]}、")
    assert [(t.word, t.tokens) for t in alignment] == [
        (" Hello,", [1, 2]),
        ("", []),
        ("", []),
        (" (world).", [3, 4, 5, 6]),
        ("", []),
        ("", []),
    ]


def test_merge_punctuations_keeps_marks_after_a_space():
    alignment = timings((" wait ", [1]), ("!", [2]))
    merge_punctuations(alignment, "", "!")
    assert [t.word for t in alignment] == [" wait ", "!"]


# --- alignment against a fake model --------------------------------------------------------

# Rows of the alignment matrix are the decoder positions from <|notimestamps|> to the last text
# token; each attends to one block of the first 100 audio positions (2 s), then the next.
BLOCKS = [(0, 30), (30, 60), (60, 80), (80, 100)]
TEXT_PROBABILITY = np.exp(12.0) / (np.exp(12.0) + TOKENIZER.eot - 1)


class Features:
    n_audio = 1


class AlignmentModel:
    """Two decoder layers of two heads. Without alignment_heads the second layer's heads are
    used, which attend in blocks; the first layer's attention is noise."""

    dims = ModelDimensions(80, 1500, 8, 2, 2, N_VOCAB, 448, 8, 2, 2)
    alignment_heads = None

    def __init__(self, blocks: list[tuple[int, int]] = BLOCKS):
        self.blocks = blocks
        self.fed: list[list[int]] = []

    def new_inference(self, audio_features: Features, n_group: int = 1):
        assert n_group == 1
        return self

    def logits(self, tokens: np.ndarray) -> np.ndarray:
        (row,) = tokens.tolist()
        self.fed.append(row)
        logits = np.zeros((1, len(row), N_VOCAB), dtype=np.float32)
        logits[0, np.arange(len(row) - 1), row[1:]] = 12.0  # each next token likely
        return logits

    def cross_attention_weights(self) -> list[np.ndarray]:
        n_tokens = len(self.fed[-1])
        aligned = np.full((n_tokens, 1500), 1e-4)
        for row, (start, end) in enumerate(self.blocks, start=len(TOKENIZER.sot_sequence)):
            aligned[row, start:end] = 1.0
        aligned /= aligned.sum(axis=-1, keepdims=True)
        noise = np.random.default_rng(0).dirichlet(np.ones(1500), size=(1, 2, n_tokens))
        return [noise, np.stack([aligned, aligned])[None]]

    def cleanup_caching(self) -> None:
        pass


def test_find_alignment_times_words_from_attention_blocks():
    model = AlignmentModel()
    alignment = find_alignment(model, TOKENIZER, [HELLO, WORLD, PERIOD], Features(), 200)
    assert model.fed == [
        [TOKENIZER.sot, TOKENIZER.no_timestamps, HELLO, WORLD, PERIOD, TOKENIZER.eot]
    ]
    # each word lasts from its row's first frame to the next row's, 50 audio positions a second
    assert [(t.word, t.tokens, t.start, t.end) for t in alignment] == [
        (" Hello", [HELLO], 0.0, 0.6),
        (" world", [WORLD], 0.6, 1.2),
        (".", [PERIOD], 1.2, 1.6),
    ]
    for timing in alignment:
        assert timing.probability == pytest.approx(TEXT_PROBABILITY)


def test_find_alignment_of_no_text():
    assert find_alignment(AlignmentModel(), TOKENIZER, [], Features(), 200) == []


def test_add_word_timestamps_splits_words_between_segments():
    ts = TOKENIZER.timestamp_begin
    segments = [
        {"seek": 100, "start": 1.0, "end": 1.5, "tokens": [ts, HELLO, ts + 25]},
        {"seek": 100, "start": 1.5, "end": 3.0, "tokens": [ts + 25, WORLD, PERIOD, ts + 100]},
    ]
    add_word_timestamps(
        segments=segments,
        model=AlignmentModel(),
        tokenizer=TOKENIZER,
        audio_features=Features(),
        num_frames=200,
        last_speech_timestamp=0.0,
    )
    # the window starts at 1.0 s (seek 100); "." joins " world"; the segments move to their
    # words' ends, as no word is too long (median word 0.6 s)
    assert [(s["start"], s["end"]) for s in segments] == [(1.0, 1.6), (1.6, 2.2)]
    assert [[(w["word"], w["start"], w["end"]) for w in s["words"]] for s in segments] == [
        [(" Hello", 1.0, 1.6)],
        [(" world.", 1.6, 2.2)],
    ]
    assert segments[1]["words"][0]["probability"] == pytest.approx(TEXT_PROBABILITY)


def timed_words(segments: list[dict], blocks: list[tuple[int, int]]) -> list[tuple]:
    add_word_timestamps(
        segments=segments,
        model=AlignmentModel(blocks),
        tokenizer=TOKENIZER,
        audio_features=Features(),
        num_frames=200,
        last_speech_timestamp=0.0,
    )
    return [(w["word"], w["start"], w["end"]) for s in segments for w in s["words"]]


def test_segment_start_wins_over_a_first_word_that_starts_too_early():
    # " Hello" 0.0-1.2 s, " world" 1.2-1.4 s: median duration 0.7 s
    segments = [{"seek": 0, "start": 0.8, "end": 1.6, "tokens": [HELLO, WORLD]}]
    words = timed_words(segments, [(0, 60), (60, 70), (70, 100)])
    # the segment starts more than 0.5 s after the word: the word starts at
    # min(end - median, segment start) = 0.5 instead; the segment ends with its last word
    assert words == [(" Hello", pytest.approx(0.5), 1.2), (" world", 1.2, 1.4)]
    assert (segments[0]["start"], segments[0]["end"]) == (0.8, 1.4)


def test_long_first_word_after_a_pause_is_cut_to_twice_the_median():
    # " Hello" 10.0-11.6 s, " world" 11.6-11.8 s in a window starting at 10 s (seek 1000): the
    # median duration 0.9 s is capped at 0.7 s, and " Hello" (1.6 s) exceeds 1.4 s
    segments = [{"seek": 1000, "start": 10.0, "end": 12.0, "tokens": [HELLO, WORLD]}]
    words = timed_words(segments, [(0, 80), (80, 90), (90, 100)])
    assert words == [(" Hello", pytest.approx(10.2), 11.6), (" world", 11.6, 11.8)]
    assert segments[0]["start"] == pytest.approx(10.2) and segments[0]["end"] == 11.8
