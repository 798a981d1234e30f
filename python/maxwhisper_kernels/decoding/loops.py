"""Repetition loops, cut short.

A decoder that falls into writing the same few tokens over and over (" nah nah nah ...") keeps
at it to its token limit (224 tokens), and the window then fails the compression-ratio test
and is decoded again at a higher temperature. Meanwhile the looping row holds up the whole
batch it runs in: on a 166 s recording, one such window took a batch of seven from 101 steps to
224. With DecodingOptions.stop_loops, a greedy or sampled row whose last loop_span(p) written
tokens repeat one block of p <= MAX_PERIOD tokens stops there, and its tokens and log
probability are written out as if that block went on repeating to the limit: the compression
ratio and the average log probability then judge the loop they would have judged, and the
window falls back as before. A loop that would have broken off by itself is the one case this
changes, so openai-whisper's decoding (transcribe's default) leaves it off; the batched
pipeline turns it on.

A short block needs more repeats: " nah" 24 times, a block of 16 tokens three times (48). Real
speech does not say one word or phrase that often in a row, and timestamp tokens only grow, so
a segment said twice over (new times, same words) is no exact block repeat and is left alone.
On the 166 s recording a sampled retry looping on " nah nah" stopped after 48 tokens of loop;
with 24 it stops 24 steps (~0.1 s) sooner. Beam search keeps its own ending rules and does not
use this.
"""

from __future__ import annotations

import numpy as np

LOOP_TOKENS = 48  # the longest span a loop must fill: 3 blocks of MAX_PERIOD
MAX_PERIOD = 16
MIN_LOOP_TOKENS = 24  # the shortest span: 24 repeats of one token


def loop_span(period: int) -> int:
    """Written tokens that must repeat a block of this many: at least 4 blocks (3 of the
    longest) and never fewer than MIN_LOOP_TOKENS."""
    return min(LOOP_TOKENS, max(MIN_LOOP_TOKENS, 4 * period))


def loop_periods(written: np.ndarray) -> np.ndarray:
    """Per row of written tokens [rows, n >= MIN_LOOP_TOKENS], the shortest p <= MAX_PERIOD
    with which the last loop_span(p) tokens repeat (token k equals token k - p), or 0."""
    periods = np.zeros(len(written), dtype=np.int64)
    for p in range(MAX_PERIOD, 0, -1):  # the shortest last, so it is the one kept
        span = loop_span(p)
        if written.shape[1] >= span:
            tail = written[:, -span:]
            periods[(tail[:, p:] == tail[:, :-p]).all(axis=1)] = p
    return periods


def continue_loop(tokens: np.ndarray, gains: np.ndarray, length: int) -> tuple[np.ndarray, float]:
    """tokens [n] written on to length by repeating its last len(gains) tokens, and the log
    probability that adds: the same block's gains [p], step by step, in the same turn."""
    period, extra = len(gains), length - len(tokens)
    more = np.resize(tokens[-period:], extra)  # the block, repeated and cut to extra
    added = (extra // period) * float(gains.sum()) + float(gains[: extra % period].sum())
    return np.concatenate([tokens, more]), added


class LoopStopper:
    """Watches the rows of one sampled decoding: stops those caught in a loop (their
    <|endoftext|> written in place of the last token, so the step loop lets them go) and keeps
    their tokens, written out to full_length, for write_out."""

    def __init__(self, sample_begin: int, full_length: int, eot: int):
        self.begin = sample_begin  # where the written tokens start
        self.full_length = full_length  # the length a row that never ends reaches
        self.eot = eot
        self.recent_sums: list[np.ndarray] = []  # after each of the last MAX_PERIOD + 1 steps
        self.stopped: dict[int, np.ndarray] = {}  # batch row: its tokens, written to the end

    def check(self, live: np.ndarray, tokens: np.ndarray, sums: np.ndarray) -> bool:
        """After a step: tokens [live rows, n], live their rows in the whole batch, sums the
        whole batch's log probabilities (a stopped row's gets the loop's rest added). True if
        every live row has now ended."""
        self.recent_sums = [*self.recent_sums[-MAX_PERIOD:], sums.copy()]
        if tokens.shape[-1] - self.begin < MIN_LOOP_TOKENS:
            return False
        periods = loop_periods(tokens[:, self.begin :])
        periods[tokens[:, -1] == self.eot] = 0
        for row in np.flatnonzero(periods):
            period, whole_row = int(periods[row]), int(live[row])
            gains = np.diff([s[whole_row] for s in self.recent_sums[-period - 1 :]])
            self.stopped[whole_row], added = continue_loop(tokens[row], gains, self.full_length)
            sums[whole_row] += added
            tokens[row, -1] = self.eot
        return bool((tokens[:, -1] == self.eot).all())

    def write_out(self, written: np.ndarray) -> int:
        """Puts the stopped rows' tokens in written [batch, >= full_length]; returns the
        longest one's length (0 if none stopped)."""
        for row, row_tokens in self.stopped.items():
            written[row, : len(row_tokens)] = row_tokens
        return max((len(t) for t in self.stopped.values()), default=0)
