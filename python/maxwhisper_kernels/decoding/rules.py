"""Which tokens may come next: rules that bar tokens from a batch of logits before one is picked.

The rules see the tokens written so far [rows, n_ctx], prompt included, and say what they bar
as ranges of ids per row, a few numbers that the CPU decoder graph applies itself
(kernels/token_scores.mojo); TokenRules.apply does the same to NumPy logits [rows, n_vocab]
(float32 or float64, barred entries set to -inf in place). All rows of a batch have written
the same number of tokens, so "is this the first token?" has one answer per batch.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from ..tokenizer import Tokenizer

NEVER = -np.inf


def suppressed_tokens(
    suppress: str | Iterable[int] | None, tokenizer: Tokenizer
) -> tuple[int, ...]:
    """The ids that DecodingOptions.suppress_tokens bars, sorted: the ones listed (-1 expands
    to the tokenizer's non-speech symbols) and always the prompt's control tokens, which are
    never text. <|nospeech|> is barred too: its probability is read once, after <|sot|>."""
    if isinstance(suppress, str):
        suppress = [int(part) for part in suppress.split(",") if part.strip()]
    listed = set(suppress or ())
    ids = {t for t in listed if t >= 0}
    if -1 in listed:
        ids.update(tokenizer.non_speech_tokens)
    ids.update((tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sot_prev))
    ids.update((tokenizer.sot_lm, tokenizer.no_speech))
    return tuple(sorted(ids))


# The open end of a barred range that runs to the end of the vocabulary (slices and the kernel
# both stop at the vocabulary's size).
TO_THE_END = 1 << 62


def _ranges(rows: int, per_row: list[tuple[np.ndarray, int, int | np.ndarray]]) -> np.ndarray:
    """bars [rows, len(per_row), 2]: range j of row r is per_row[j]'s (lo, hi) where its mask
    holds for r, empty (0, 0) elsewhere."""
    bars = np.zeros((rows, max(len(per_row), 1), 2), dtype=np.int64)
    for j, (where, lo, hi) in enumerate(per_row):
        bars[where, j, 0] = lo
        bars[where, j, 1] = hi if np.ndim(hi) == 0 else np.asarray(hi)[where]
    return bars


def last_true(flags: np.ndarray) -> np.ndarray:
    """Column of the last True of each row of flags [rows, n] (0 for rows with none)."""
    return flags.shape[1] - 1 - flags[:, ::-1].argmax(axis=1)


def timestamp_bars(
    written: np.ndarray,
    *,
    first_timestamp: int,
    eot: int,
    latest_start: int | None,
    last_open_end: np.ndarray | None = None,
) -> list[tuple[np.ndarray, int, int | np.ndarray]]:
    """The ranges that keep each row in Whisper's segment grammar,
        <|t0|> text <|t1|> <|t1'|> text <|t2|> ... [<|tn|>] <|endoftext|>,
    given written [rows, n]: the tokens after the prompt, as (rows it applies to, lo, hi)
    for _ranges. first_timestamp is the id of <|0.00|>; latest_start, in timestamp steps,
    caps the time of the first one. last_open_end (per row, in timestamp steps; None or -1:
    no limit): a segment opened before this time must get its text, <|endoftext|> may not
    follow it. (<|notimestamps|> and the weight of all timestamps against the best text token
    are the caller's: the first is barred everywhere, the second needs the logits.)"""
    rows, n = written.shape
    every = np.ones(rows, dtype=bool)
    if n == 0:
        # a window opens with a timestamp, and not a late one
        ranges = [(every, 0, first_timestamp)]
        if latest_start is not None:
            ranges.append((every, first_timestamp + latest_start + 1, TO_THE_END))
        return ranges
    is_time = written >= first_timestamp
    ends_on_time = is_time[:, -1]
    # a lone timestamp at the start counts as the second of a pair
    time_before = is_time[:, -2] if n > 1 else every
    closed_segment = ends_on_time & ~time_before  # next: <|t'|> opening one, or the end
    opened_segment = ends_on_time & time_before  # next: text
    ranges = [(closed_segment, 0, eot), (opened_segment, first_timestamp, TO_THE_END)]
    if last_open_end is not None and n > 1:  # a pair after text, not the lone start
        opened_at = written[:, -1] - first_timestamp
        ranges.append((opened_segment & (opened_at < last_open_end), eot, eot + 1))

    # Time never runs backwards, and a segment lasts at least one step (else the model could
    # loop on empty segments). Right after a closing timestamp the next segment may open at
    # that same time.
    latest = written[np.arange(rows), last_true(is_time)]
    lowest_allowed = np.where(closed_segment, latest, latest + 1)
    lowest_allowed = np.where(is_time.any(axis=1), lowest_allowed, first_timestamp)
    ranges.append((every, first_timestamp, lowest_allowed))
    return ranges


def apply_bars(logits: np.ndarray, bars: np.ndarray) -> None:
    """Sets logits[r, lo:hi] to -inf for every range (lo, hi) = bars[r, j]."""
    for row, row_bars in enumerate(bars.tolist()):
        for lo, hi in row_bars:
            if lo < hi:
                logits[row, lo:hi] = NEVER


def timestamps_outweigh_text(logits: np.ndarray, first_timestamp: int) -> None:
    """The probability of "some timestamp" is spread over 1501 tokens; when their sum beats the
    best text token, a timestamp it is. Compared as logits: the softmax normaliser is the same
    on both sides."""
    time_logits = logits[:, first_timestamp:].astype(np.float64)  # 1501 a row: summed in float64
    peak = time_logits.max(axis=1)
    with np.errstate(invalid="ignore"):
        spread = np.log(np.exp(time_logits - peak[:, None]).sum(axis=1))
    all_times = np.where(np.isneginf(peak), NEVER, peak + spread)
    logits[all_times > logits[:, :first_timestamp].max(axis=1), :first_timestamp] = NEVER


@dataclass(frozen=True)
class TokenRules:
    """The rules one DecodingOptions switches on. They bar ranges of ids that depend on the
    tokens written (bars: blank start, timestamp grammar), ids barred at every step
    (barred_everywhere: suppressed ids, <|notimestamps|>), and, last, text when the timestamps
    together outweigh it. apply does all of it in NumPy; the CPU decoder graph does the same
    in kernels/token_scores.mojo from bars and barred_everywhere."""

    sample_begin: int  # prompt length: where the written tokens start
    blank_start: list[int] | None = None  # suppress_blank: " " and <|endoftext|>
    suppressed: np.ndarray | None = None  # suppress_tokens, resolved
    first_timestamp: int | None = None  # None: decoding without timestamps
    eot: int = 0
    no_timestamps: int = 0
    latest_start: int | None = None

    @functools.cached_property  # asked for at every step of the NumPy path: worked out once
    def barred_everywhere(self) -> np.ndarray:
        ids = [] if self.suppressed is None else list(self.suppressed)
        if self.first_timestamp is not None:  # chosen up front by without_timestamps, never written
            ids.append(self.no_timestamps)
        return np.array(sorted(set(ids)), dtype=np.int64)

    def bars(self, tokens: np.ndarray, last_open_end: np.ndarray | None = None) -> np.ndarray:
        """[rows, n, 2]: the id ranges [lo, hi) barred after tokens [rows, n_ctx] (prompt
        included). last_open_end: per row, as timestamp_bars takes it."""
        written = tokens[:, self.sample_begin :]
        every = np.ones(len(tokens), dtype=bool)
        ranges = []
        if self.blank_start is not None and written.shape[1] == 0:
            # a window's text neither opens with a space nor ends before it has begun
            ranges += [(every, token, token + 1) for token in self.blank_start]
        if self.first_timestamp is not None:
            ranges += timestamp_bars(
                written,
                first_timestamp=self.first_timestamp,
                eot=self.eot,
                latest_start=self.latest_start,
                last_open_end=last_open_end,
            )
        return _ranges(len(tokens), ranges)

    def apply(self, logits: np.ndarray, tokens: np.ndarray, last_open_end: np.ndarray | None = None) -> None:
        """Bars, in place in logits [rows, n_vocab], what may not follow tokens [rows, n_ctx]."""
        apply_bars(logits, self.bars(tokens, last_open_end))
        logits[:, self.barred_everywhere] = NEVER
        if self.first_timestamp is not None:
            timestamps_outweigh_text(logits, self.first_timestamp)


def token_rules(
    tokenizer: Tokenizer,
    sample_begin: int,
    *,
    suppress_blank: bool,
    suppress_tokens: str | Iterable[int] | None,
    timestamps: bool,
    latest_start: int | None,
) -> TokenRules:
    """TokenRules from DecodingOptions' switches (latest_start already in timestamp steps)."""
    return TokenRules(
        sample_begin=sample_begin,
        blank_start=[*tokenizer.encode(" "), tokenizer.eot] if suppress_blank else None,
        suppressed=(
            np.array(suppressed_tokens(suppress_tokens, tokenizer)) if suppress_tokens else None
        ),
        first_timestamp=tokenizer.timestamp_begin if timestamps else None,
        eot=tokenizer.eot,
        no_timestamps=tokenizer.no_timestamps,
        latest_start=latest_start,
    )
