"""Word timestamps, read off the decoder's cross-attention with NumPy.

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

    # each text token's probability, as predicted at the position before it
    text_logits = logits[len(tokenizer.sot_sequence) :, : tokenizer.eot].astype(np.float64)
    text_logits -= text_logits.max(axis=-1, keepdims=True)
    probs = np.exp(text_logits)
    probs /= probs.sum(axis=-1, keepdims=True)
    text_rows = probs[: len(text_tokens)]
    token_prob = np.take_along_axis(text_rows, np.array(text_tokens)[:, None], axis=1)[:, 0]

    # [heads, tokens, frames]: attention to the padding dropped, each row renormalised (the
    # same as a softmax over the kept attention logits)
    n_audio_tokens = num_frames // 2
    heads = _alignment_heads(model)
    weights = np.stack([attention[layer][0, head, :, :n_audio_tokens] for layer, head in heads])
    weights = weights.astype(np.float64)
    weights /= weights.sum(axis=-1, keepdims=True)
    # standardised per frame across tokens: frames that every token attends to (the window's
    # start, say) must not dominate the path
    standardised = (weights - weights.mean(axis=-2, keepdims=True)) / weights.std(
        axis=-2, keepdims=True
    )
    smoothed = median_filter(standardised, medfilt_width)

    matrix = smoothed.mean(axis=0)[len(tokenizer.sot_sequence) : -1]
    token_at, frame_at = dtw(-matrix)

    words, pieces = tokenizer.split_to_word_tokens([*text_tokens, tokenizer.eot])
    if len(pieces) <= 1:  # only <|endoftext|>: nothing to time
        return []
    # index of each word's first token (the last entry: <|endoftext|>'s)
    edges = np.concatenate([[0], np.cumsum([len(p) for p in pieces[:-1]])])

    # when the path first reaches each token, in seconds
    first_visit = np.diff(token_at, prepend=token_at[0] - 1).astype(bool)
    reached = frame_at[first_visit] / TOKENS_PER_SECOND
    return [
        WordTiming(word, piece, float(start), float(end), float(np.mean(token_prob[a:b])))
        for word, piece, start, end, (a, b) in zip(
            words, pieces, reached[edges[:-1]], reached[edges[1:]], itertools.pairwise(edges)
        )
    ]


def merge_punctuations(alignment: list[WordTiming], prepended: str, appended: str) -> None:
    """Moves opening marks onto the word after them and closing marks onto the word before,
    in place; an emptied entry stays, as word "" with no tokens."""
    # opening marks right to left, so that a run such as ' "(' all lands on the word
    target = len(alignment) - 1
    for k in range(len(alignment) - 2, -1, -1):
        mark, word = alignment[k], alignment[target]
        if mark.word.startswith(" ") and mark.word.strip() in prepended:
            word.word, word.tokens = mark.word + word.word, mark.tokens + word.tokens
            mark.word, mark.tokens = "", []
        else:
            target = k

    # closing marks left to right
    target = 0
    for k in range(1, len(alignment)):
        word, mark = alignment[target], alignment[k]
        if not word.word.endswith(" ") and mark.word in appended:
            word.word, word.tokens = word.word + mark.word, word.tokens + mark.tokens
            mark.word, mark.tokens = "", []
        else:
            target = k


def _clamp_sentence_boundary_words(alignment: list[WordTiming], max_duration: float) -> None:
    """A word beside a sentence end tends to absorb the pause there: cap such words at
    max_duration, from the side of the pause."""
    for before, word in zip(alignment, alignment[1:]):
        if word.end - word.start <= max_duration:
            continue
        if word.word in SENTENCE_END_MARKS:
            word.end = word.start + max_duration
        elif before.word in SENTENCE_END_MARKS:
            word.start = word.end - max_duration


def _fit_segment_and_words(
    segment: dict,
    words: list[dict],
    median_duration: float,
    last_speech_timestamp: float,
) -> None:
    """Trims over-long words at a segment's edges and makes the segment span its words."""
    longest = median_duration * 2
    first, last = words[0], words[-1]
    second = words[1] if len(words) > 1 else None

    # after a pause, the first word (or the first two) tends to start too early
    after_pause = first["end"] - last_speech_timestamp > median_duration * 4
    stretched = first["end"] - first["start"] > longest or (
        second is not None and second["end"] - first["start"] > longest * 2
    )
    if after_pause and stretched:
        if second is not None and second["end"] - second["start"] > longest:
            middle = max(second["end"] / 2, second["end"] - longest)
            first["end"] = second["start"] = middle
        first["start"] = max(0, first["end"] - longest)

    # a first or last word reaching far past the segment's own timestamp is cut back to it;
    # otherwise the segment is stretched to its words
    start = segment["start"]
    if first["end"] > start and start - 0.5 > first["start"]:
        first["start"] = max(0, min(first["end"] - median_duration, start))
    else:
        segment["start"] = first["start"]
    end = segment["end"]
    if last["start"] < end and end + 0.5 < last["end"]:
        last["end"] = max(last["start"] + median_duration, end)
    else:
        segment["end"] = last["end"]


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
    """Gives each segment of one window its "words" (word, start, end, probability) and moves
    the segment's start and end to fit them, in place."""
    if not segments:
        return
    per_segment = [[t for t in s["tokens"] if t < tokenizer.eot] for s in segments]
    every_token = [t for tokens in per_segment for t in tokens]
    alignment = find_alignment(model, tokenizer, every_token, audio_features, num_frames)

    lengths = np.array([w.end - w.start for w in alignment])
    lengths = lengths[lengths != 0]
    median = min(0.7, float(np.median(lengths))) if len(lengths) else 0.0
    if len(lengths):
        _clamp_sentence_boundary_words(alignment, median * 2)
    merge_punctuations(alignment, prepended=prepend_punctuations, appended=append_punctuations)

    offset = segments[0]["seek"] * HOP_LENGTH / SAMPLE_RATE  # seconds
    taken = 0
    for segment, tokens in zip(segments, per_segment):
        words: list[dict] = []
        covered = 0
        # alignment entries go to this segment until they cover its tokens
        while covered < len(tokens) and taken < len(alignment):
            timing = alignment[taken]
            taken += 1
            covered += len(timing.tokens)
            if timing.word:
                words.append(
                    {
                        "word": timing.word,
                        "start": round(offset + timing.start, 2),
                        "end": round(offset + timing.end, 2),
                        "probability": timing.probability,
                    }
                )
        if words:
            _fit_segment_and_words(segment, words, median, last_speech_timestamp)
            last_speech_timestamp = segment["end"]
        segment["words"] = words
