"""Word timestamps from cross-attention: openai-whisper's ``whisper/timing.py`` in NumPy.

Some decoder heads attend to the audio frame being spoken as each token is produced. Their
cross-attention, normalised and smoothed, is a cost matrix between text tokens and audio frames;
dynamic time warping finds the monotonic path through it, and the frame where the path enters a
word's first token is where the word starts.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from .audio import HOP_LENGTH, SAMPLE_RATE, TOKENS_PER_SECOND
from .decoding import AudioFeatures, WhisperModel
from .tokenizer import Tokenizer

PREPEND_PUNCTUATIONS = "\"'“¿([{-"
APPEND_PUNCTUATIONS = "\"'.。,，!！?？:：”)]}、"
SENTENCE_END_MARKS = ".。!！?？"


def median_filter(x: np.ndarray, filter_width: int) -> np.ndarray:
    """Median over a sliding window of odd width along the last axis, reflecting at the ends
    (x is returned as it is when too short to reflect)."""
    if filter_width <= 0 or filter_width % 2 == 0:
        raise ValueError(f"filter_width should be an odd number, got {filter_width}")
    pad_width = filter_width // 2
    if x.shape[-1] <= pad_width:
        return x
    padded = np.pad(x, [(0, 0)] * (x.ndim - 1) + [(pad_width, pad_width)], mode="reflect")
    windows = np.lib.stride_tricks.sliding_window_view(padded, filter_width, axis=-1)
    # sorting the short windows is faster than np.median's partitioning
    return np.sort(windows, axis=-1)[..., pad_width]


def backtrace(trace: np.ndarray) -> np.ndarray:
    """The path [2, length] of (row, column) indices that `trace` records, start to end."""
    trace = trace.copy()
    trace[0, :] = 2  # along the first row and column the only way back is straight
    trace[:, 0] = 1
    i, j = trace.shape[0] - 1, trace.shape[1] - 1

    path = []
    while i > 0 or j > 0:
        path.append((i - 1, j - 1))
        step = trace[i, j]
        if step == 0:
            i, j = i - 1, j - 1
        elif step == 1:
            i -= 1
        elif step == 2:
            j -= 1
        else:
            raise ValueError(f"unexpected trace[{i}, {j}] = {step}")
    return np.array(path[::-1]).T


def dtw(x: np.ndarray) -> np.ndarray:
    """Dynamic time warping through the cost matrix x [N, M]: the cheapest monotonic path
    from (0, 0) to (N - 1, M - 1) stepping diagonally, down or right, as [2, length] indices.

    Cells on one anti-diagonal depend only on the two before it, so each anti-diagonal is one
    vectorised step. Costs are float32 and ties prefer a right step, then a down step, as in
    openai-whisper, so paths match its implementation.
    """
    x = np.asarray(x, dtype=np.float64)
    n, m = x.shape
    cost = np.full((n + 1, m + 1), np.inf, dtype=np.float32)
    trace = np.full((n + 1, m + 1), -1, dtype=np.int8)
    cost[0, 0] = 0

    for diagonal in range(2, n + m + 1):  # i + j, over cells with i, j >= 1
        i = np.arange(max(1, diagonal - m), min(n, diagonal - 1) + 1)
        j = diagonal - i
        c0, c1, c2 = cost[i - 1, j - 1], cost[i - 1, j], cost[i, j - 1]
        diagonal_step = (c0 < c1) & (c0 < c2)
        down_step = ~diagonal_step & (c1 < c0) & (c1 < c2)
        step = np.where(diagonal_step, 0, np.where(down_step, 1, 2))
        cost[i, j] = x[i - 1, j - 1] + np.choose(step, [c0, c1, c2])
        trace[i, j] = step

    return backtrace(trace)


@dataclass
class WordTiming:
    word: str
    tokens: list[int]
    start: float
    end: float
    probability: float


def _alignment_heads(model: WhisperModel) -> list[tuple[int, int]]:
    if model.alignment_heads is not None:
        return list(model.alignment_heads)
    # without a known set, the heads of the second half of the decoder, as openai-whisper does
    dims = model.dims
    return [
        (layer, head)
        for layer in range(dims.n_text_layer // 2, dims.n_text_layer)
        for head in range(dims.n_text_head)
    ]


def find_alignment(
    model: WhisperModel,
    tokenizer: Tokenizer,
    text_tokens: list[int],
    audio_features: AudioFeatures,
    num_frames: int,
    *,
    medfilt_width: int = 7,
) -> list[WordTiming]:
    """Start and end times (seconds from the window start) and mean token probability of each
    word of `text_tokens`, read off the decoder's cross-attention over one window's audio
    features, whose first `num_frames` mel frames hold the audio."""
    if len(text_tokens) == 0:
        return []

    tokens = np.array(
        [[*tokenizer.sot_sequence, tokenizer.no_timestamps, *text_tokens, tokenizer.eot]]
    )
    inference = model.new_inference(audio_features, n_group=1)
    try:
        logits = inference.logits(tokens)[0]
        attention = inference.cross_attention_weights()
    finally:
        inference.cleanup_caching()
    if attention is None:
        raise NotImplementedError(
            "word timestamps need the decoder's cross-attention weights, which this model "
            "does not record"
        )

    # the probability of each text token, predicted from the position before it
    text_logits = logits[len(tokenizer.sot_sequence) :, : tokenizer.eot].astype(np.float64)
    text_logits -= text_logits.max(axis=-1, keepdims=True)
    token_probs = np.exp(text_logits)
    token_probs /= token_probs.sum(axis=-1, keepdims=True)
    text_token_probs = token_probs[np.arange(len(text_tokens)), text_tokens]

    # [heads, tokens, frames], attention to the padding dropped and each row renormalised
    # (the same as openai-whisper's softmax over the kept attention logits)
    n_audio_tokens = num_frames // 2
    weights = np.stack(
        [attention[layer][0, head, :, :n_audio_tokens] for layer, head in _alignment_heads(model)]
    ).astype(np.float64)
    weights /= weights.sum(axis=-1, keepdims=True)
    # standardised per frame over the tokens, so that frames every token attends to (such as
    # the start of the window) do not dominate
    weights = (weights - weights.mean(axis=-2, keepdims=True)) / weights.std(axis=-2, keepdims=True)
    weights = median_filter(weights, medfilt_width)

    matrix = weights.mean(axis=0)[len(tokenizer.sot_sequence) : -1]
    text_indices, time_indices = dtw(-matrix)

    words, word_tokens = tokenizer.split_to_word_tokens(text_tokens + [tokenizer.eot])
    if len(word_tokens) <= 1:  # <|endoftext|> alone: no words to time
        return []
    word_boundaries = np.pad(np.cumsum([len(t) for t in word_tokens[:-1]]), (1, 0))

    # the time at which the path first reaches each token
    jumps = np.pad(np.diff(text_indices), (1, 0), constant_values=1).astype(bool)
    jump_times = time_indices[jumps] / TOKENS_PER_SECOND
    start_times = jump_times[word_boundaries[:-1]]
    end_times = jump_times[word_boundaries[1:]]
    word_probabilities = [
        float(np.mean(text_token_probs[i:j]))
        for i, j in itertools.pairwise(word_boundaries)
    ]

    return [
        WordTiming(word, tokens, float(start), float(end), probability)
        for word, tokens, start, end, probability in zip(
            words, word_tokens, start_times, end_times, word_probabilities
        )
    ]


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Joins opening punctuation to the word after it and closing punctuation to the word
    before it, in place; the emptied entries keep their place with word "" and no tokens."""
    # prepended punctuation, from the end so that runs like ' "(' join the word together
    i = len(alignment) - 2
    j = len(alignment) - 1
    while i >= 0:
        previous = alignment[i]
        following = alignment[j]
        if previous.word.startswith(" ") and previous.word.strip() in prepended:
            following.word = previous.word + following.word
            following.tokens = previous.tokens + following.tokens
            previous.word = ""
            previous.tokens = []
        else:
            j = i
        i -= 1

    # appended punctuation, from the start
    i = 0
    j = 1
    while j < len(alignment):
        previous = alignment[i]
        following = alignment[j]
        if not previous.word.endswith(" ") and following.word in appended:
            previous.word = previous.word + following.word
            previous.tokens = previous.tokens + following.tokens
            following.word = ""
            following.tokens = []
        else:
            i = j
        j += 1


def _clamp_sentence_boundary_words(alignment: list[WordTiming], max_duration: float) -> None:
    """Words next to a sentence end often soak up the pause around it: no word there lasts
    more than max_duration."""
    for i in range(1, len(alignment)):
        if alignment[i].end - alignment[i].start > max_duration:
            if alignment[i].word in SENTENCE_END_MARKS:
                alignment[i].end = alignment[i].start + max_duration
            elif alignment[i - 1].word in SENTENCE_END_MARKS:
                alignment[i].start = alignment[i].end - max_duration


def _fit_segment_and_words(
    segment: dict,
    words: list[dict],
    median_duration: float,
    last_speech_timestamp: float,
) -> None:
    """Trims over-long words at a segment's edges and makes the segment span its words."""
    max_duration = median_duration * 2

    # the first (and second) word after a pause often starts too early, into the pause
    if words[0]["end"] - last_speech_timestamp > median_duration * 4 and (
        words[0]["end"] - words[0]["start"] > max_duration
        or (len(words) > 1 and words[1]["end"] - words[0]["start"] > max_duration * 2)
    ):
        if len(words) > 1 and words[1]["end"] - words[1]["start"] > max_duration:
            boundary = max(words[1]["end"] / 2, words[1]["end"] - max_duration)
            words[0]["end"] = words[1]["start"] = boundary
        words[0]["start"] = max(0, words[0]["end"] - max_duration)

    # the segment's own timestamps win over a first or last word that is too long
    if segment["start"] < words[0]["end"] and segment["start"] - 0.5 > words[0]["start"]:
        words[0]["start"] = max(0, min(words[0]["end"] - median_duration, segment["start"]))
    else:
        segment["start"] = words[0]["start"]

    if segment["end"] > words[-1]["start"] and segment["end"] + 0.5 < words[-1]["end"]:
        words[-1]["end"] = max(words[-1]["start"] + median_duration, segment["end"])
    else:
        segment["end"] = words[-1]["end"]


def add_word_timestamps(
    *,
    segments: list[dict],
    model: WhisperModel,
    tokenizer: Tokenizer,
    audio_features: AudioFeatures,
    num_frames: int,
    prepend_punctuations: str = PREPEND_PUNCTUATIONS,
    append_punctuations: str = APPEND_PUNCTUATIONS,
    last_speech_timestamp: float,
) -> None:
    """Gives each segment of one window a "words" list (word, start, end, probability) and
    moves the segment's start and end to its words', in place."""
    if len(segments) == 0:
        return

    text_tokens_per_segment = [
        [token for token in segment["tokens"] if token < tokenizer.eot] for segment in segments
    ]
    text_tokens = list(itertools.chain.from_iterable(text_tokens_per_segment))
    alignment = find_alignment(model, tokenizer, text_tokens, audio_features, num_frames)

    word_durations = np.array([t.end - t.start for t in alignment])
    word_durations = word_durations[word_durations.nonzero()]
    median_duration = float(np.median(word_durations)) if len(word_durations) > 0 else 0.0
    median_duration = min(0.7, median_duration)
    if len(word_durations) > 0:
        _clamp_sentence_boundary_words(alignment, median_duration * 2)

    merge_punctuations(alignment, prepend_punctuations, append_punctuations)

    time_offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE
    word_index = 0
    for segment, segment_text_tokens in zip(segments, text_tokens_per_segment):
        saved_tokens = 0
        words = []
        # the segment takes alignment entries until it has all its tokens
        while word_index < len(alignment) and saved_tokens < len(segment_text_tokens):
            timing = alignment[word_index]
            if timing.word:
                words.append(
                    dict(
                        word=timing.word,
                        start=round(time_offset + timing.start, 2),
                        end=round(time_offset + timing.end, 2),
                        probability=timing.probability,
                    )
                )
            saved_tokens += len(timing.tokens)
            word_index += 1

        if len(words) > 0:
            _fit_segment_and_words(segment, words, median_duration, last_speech_timestamp)
            last_speech_timestamp = segment["end"]
        segment["words"] = words
