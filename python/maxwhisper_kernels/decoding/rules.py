"""Which tokens may come next: rules that bar tokens from a batch of logits before one is picked.

Every rule works on all rows at once: logits [rows, n_vocab] (float32 or float64, barred
entries set to -inf in place) and the tokens written so far [rows, n_ctx], prompt included. All rows of a batch
have written the same number of tokens, so "is this the first token?" has one answer per batch.
"""

from __future__ import annotations

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


def bar(logits: np.ndarray, ids: np.ndarray | list[int]) -> None:
    """Bars the same ids on every row."""
    logits[:, ids] = NEVER


def bar_at_start(logits: np.ndarray, ids: list[int], n_written: int) -> None:
    """Bars ids as the first written token only (a window's text neither opens with a space
    nor ends before it has begun)."""
    if n_written == 0:
        logits[:, ids] = NEVER


def last_true(flags: np.ndarray) -> np.ndarray:
    """Column of the last True of each row of flags [rows, n] (0 for rows with none)."""
    return flags.shape[1] - 1 - flags[:, ::-1].argmax(axis=1)


def timestamp_grammar(
    logits: np.ndarray,
    written: np.ndarray,
    *,
    first_timestamp: int,
    eot: int,
    no_timestamps: int,
    latest_start: int | None,
    last_open_end: np.ndarray | None = None,
) -> None:
    """Keeps each row in Whisper's segment grammar,
        <|t0|> text <|t1|> <|t1'|> text <|t2|> ... [<|tn|>] <|endoftext|>,
    given written [rows, n]: the tokens after the prompt. first_timestamp is the id of
    <|0.00|>; latest_start, in timestamp steps, caps the time of the first one.
    last_open_end (per row, in timestamp steps; None or -1: no limit): a segment opened
    before this time must get its text, <|endoftext|> may not follow it."""
    rows = np.arange(len(logits))
    # chosen up front by without_timestamps, never written by the model
    logits[:, no_timestamps] = NEVER

    n = written.shape[1]
    if n == 0:
        # a window opens with a timestamp, and not a late one
        logits[:, :first_timestamp] = NEVER
        if latest_start is not None:
            logits[:, first_timestamp + latest_start + 1 :] = NEVER
    else:
        is_time = written >= first_timestamp
        ends_on_time = is_time[:, -1]
        # a lone timestamp at the start counts as the second of a pair
        time_before = is_time[:, -2] if n > 1 else np.ones(len(rows), dtype=bool)
        closed_segment = ends_on_time & ~time_before  # next: <|t'|> opening one, or the end
        opened_segment = ends_on_time & time_before  # next: text
        if closed_segment.any():
            logits[closed_segment, :eot] = NEVER
        if opened_segment.any():
            logits[opened_segment, first_timestamp:] = NEVER
            if last_open_end is not None and n > 1:  # a pair after text, not the lone start
                opened_at = written[:, -1] - first_timestamp
                logits[opened_segment & (opened_at < last_open_end), eot] = NEVER

        # Time never runs backwards, and a segment lasts at least one step (else the model
        # could loop on empty segments). Right after a closing timestamp the next segment may
        # open at that same time.
        latest = written[rows, last_true(is_time)]
        lowest_allowed = np.where(closed_segment, latest, latest + 1)
        lowest_allowed = np.where(is_time.any(axis=1), lowest_allowed, first_timestamp)
        # a slice per row: a batch holds a few rows (beams), and a [rows, 1501] mask costs more
        for row, lowest in enumerate(lowest_allowed.tolist()):
            logits[row, first_timestamp:lowest] = NEVER

    # The probability of "some timestamp" is spread over 1501 tokens; when their sum beats the
    # best text token, a timestamp it is. Compared as logits: the softmax normaliser is the same
    # on both sides.
    time_logits = logits[:, first_timestamp:].astype(np.float64)  # 1501 a row: summed in float64
    peak = time_logits.max(axis=1)
    with np.errstate(invalid="ignore"):
        spread = np.log(np.exp(time_logits - peak[:, None]).sum(axis=1))
    all_times = np.where(np.isneginf(peak), NEVER, peak + spread)
    logits[all_times > logits[:, :first_timestamp].max(axis=1), :first_timestamp] = NEVER


@dataclass(frozen=True)
class TokenRules:
    """The rules one DecodingOptions switches on, applied in a fixed order: blank start,
    suppressed ids, timestamp grammar (it reads what the first two left)."""

    sample_begin: int  # prompt length: where the written tokens start
    blank_start: list[int] | None = None  # suppress_blank: " " and <|endoftext|>
    suppressed: np.ndarray | None = None  # suppress_tokens, resolved
    first_timestamp: int | None = None  # None: decoding without timestamps
    eot: int = 0
    no_timestamps: int = 0
    latest_start: int | None = None

    def apply(self, logits: np.ndarray, tokens: np.ndarray, last_open_end: np.ndarray | None = None) -> None:
        """Bars, in place in logits [rows, n_vocab], what may not follow tokens [rows, n_ctx].
        last_open_end: per row, as timestamp_grammar takes it."""
        if self.blank_start is not None:
            bar_at_start(logits, self.blank_start, tokens.shape[1] - self.sample_begin)
        if self.suppressed is not None:
            bar(logits, self.suppressed)
        if self.first_timestamp is not None:
            timestamp_grammar(
                logits,
                tokens[:, self.sample_begin :],
                first_timestamp=self.first_timestamp,
                eot=self.eot,
                no_timestamps=self.no_timestamps,
                latest_start=self.latest_start,
                last_open_end=last_open_end,
            )


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
