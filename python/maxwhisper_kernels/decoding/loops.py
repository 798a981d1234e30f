"""Repetition loops, cut short.

A decoder that falls into writing the same few tokens over and over (" nah nah nah ...") keeps
at it to its token limit (224 tokens), and the window then fails the compression-ratio test
and is decoded again at a higher temperature. Meanwhile the looping row holds up the whole
batch it runs in: on a 166 s recording, one such window took a batch of seven from 101 steps to
224. With DecodingOptions.stop_loops, a greedy or sampled row whose last loop_span(p) written
tokens repeat one block of p <= MAX_PERIOD tokens stops there.

What it keeps depends on what came before the loop:
- Segments closed before it (a pair of adjacent timestamps, one segment's end and the next one's
  start): the row keeps its tokens up to and including the last such pair, with the log
  probability it had there. The text before the loop is judged on its own, and transcribe's seek
  then resumes the audio at that pair, exactly as for a segment the window's edge cut off
  (TranscribeOptions.resume_beam_size reads it with beams). A fresh start can get past the
  spot where the loop began: on the 166 s recording the loop began a few words into a window
  ("... created equal. At nah nah nah") and the resumed window read on ("That they are endowed
  by their creator ..."). That is deterministic, where the warmer retry was a draw: over 12 runs
  that recording's WER ranged over 15-29 %.
- No closed segment (the loop starts the text, or timestamps are off): its tokens and log
  probability are written out as if that block went on repeating to the limit, so the
  compression ratio and the average log probability judge the loop they would have judged, and
  the window falls back as before.
Neither is what openai-whisper's decoding does (a loop might have broken off by itself, and a
failing window is retried whole), so transcribe's default leaves it off; the batched pipeline
turns it on.

A short block needs more repeats: " nah" 24 times, a block of 16 tokens three times (48). Real
speech does not say one word or phrase that often in a row, and timestamp tokens only grow, so
a segment said twice over (new times, same words) is no exact block repeat and is left alone;
for the same reason no segment boundary lies inside a loop. Beam search keeps its own ending
rules and does not use this.
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


def last_segment_boundary(tokens: np.ndarray, begin: int, timestamp_begin: int) -> int:
    """Index just past the last pair of adjacent timestamp tokens at or after begin whose time
    is not 0 (so resuming there moves on), or 0 if there is none."""
    timed = tokens[begin:] >= timestamp_begin
    pairs = np.flatnonzero(timed[:-1] & timed[1:] & (tokens[begin + 1 :] > timestamp_begin))
    return begin + int(pairs[-1]) + 2 if len(pairs) else 0


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
    their tokens for write_out: up to the last segment boundary before the loop, or, with none
    (or timestamp_begin None: no timestamps), written out to full_length."""

    def __init__(self, sample_begin: int, full_length: int, eot: int, timestamp_begin: int | None):
        self.begin = sample_begin  # where the written tokens start
        self.full_length = full_length  # the length a row that never ends reaches
        self.eot = eot
        self.timestamp_begin = timestamp_begin
        self.sums_after: list[np.ndarray] = []  # the whole batch's sums after each step
        self.stopped: dict[int, np.ndarray] = {}  # batch row: the tokens it keeps
        self.cut: set[int] = set()  # the stopped rows that kept the text before the loop

    def check(self, live: np.ndarray, tokens: np.ndarray, sums: np.ndarray) -> bool:
        """After a step: tokens [live rows, n], live their rows in the whole batch, sums the
        whole batch's log probabilities (a stopped row's gets the loop's rest added). True if
        every live row has now ended."""
        self.sums_after.append(sums.copy())
        if tokens.shape[-1] - self.begin < MIN_LOOP_TOKENS:
            return False
        periods = loop_periods(tokens[:, self.begin :])
        periods[tokens[:, -1] == self.eot] = 0
        for row in np.flatnonzero(periods):
            period, whole_row = int(periods[row]), int(live[row])
            cut = 0
            if self.timestamp_begin is not None:
                cut = last_segment_boundary(tokens[row], self.begin, self.timestamp_begin)
            if cut:  # the sum after writing token cut - 1
                self.stopped[whole_row] = tokens[row, :cut].copy()
                self.cut.add(whole_row)
                sums[whole_row] = self.sums_after[cut - 1 - self.begin][whole_row]
            else:
                gains = np.diff([s[whole_row] for s in self.sums_after[-period - 1 :]])
                self.stopped[whole_row], added = continue_loop(tokens[row], gains, self.full_length)
                sums[whole_row] += added
            tokens[row, -1] = self.eot
        return bool((tokens[:, -1] == self.eot).all())

    def write_out(self, written: np.ndarray) -> int:
        """Puts the stopped rows' tokens in written [batch, >= full_length], <|endoftext|> after
        them; returns the longest one's length (0 if none stopped)."""
        for row, row_tokens in self.stopped.items():
            written[row, : len(row_tokens)] = row_tokens
            written[row, len(row_tokens) :] = self.eot
        return max((len(t) for t in self.stopped.values()), default=0)
