"""Picking tokens from filtered logits: sampling (greedy at temperature 0) and beam search,
and choosing the final text among a window's candidates.

A search sees one step at a time: tokens [rows, n_ctx] written so far, logits [rows, n_vocab]
for the next position (rules already applied), the running sum of log probabilities of each
row, which it updates in place, and, where the decoder graph worked them out (Ranked), the
best ids and each row's log-softmax terms, which it then need not find in NumPy.
`candidates` then lists, per audio, the finished sequences and their sums, for
`best_candidates` to choose from.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .interface import Inference

Candidates = tuple[list[list[list[int]]], list[list[float]]]  # per audio: sequences, sums


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Log probabilities over the last axis, in float64; barred (-inf) entries stay -inf."""
    x = np.asarray(logits, dtype=np.float64)  # no copy of what is float64 already; not written
    shifted = x - x.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


@dataclass(frozen=True)
class Ranked:
    """A step's filtered logits ranked and normalised (the CPU decoder graph's token_scores)."""

    top: np.ndarray  # [rows, k] ids of the best logits, best first, equal ones by lower id
    peaks: np.ndarray  # [rows] float64: the best logit
    normalisers: np.ndarray  # [rows] float64: log(sum(exp(logits - peak)))


def log_normalisers(logits: np.ndarray, work: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the peak logit and log(sum(exp(logit - peak))) in float64, so that a token's log
    probability is (logit - peak) - normaliser, as log_softmax computes it. The exponentials
    are float32 and their sum float64: NumPy's float64 exp is a scalar loop on CPUs without
    AVX-512 (0.32 ms a row of 51864 on Zen 3, float32 0.07 ms), and float32 terms put an error
    of about 1e-7 into the normaliser, the precision openai-whisper's own float32 log_softmax
    has. logits may be float32 (the model's own numbers: logit - peak is then the same float32
    difference as from float64 copies) or float64. work: a float32 buffer of logits' shape
    (fresh memory faults its pages in every step)."""
    peaks = logits.max(axis=-1, keepdims=True)
    terms = np.empty(logits.shape, dtype=np.float32) if work is None else work
    np.subtract(logits, peaks, out=terms, casting="same_kind")
    np.exp(terms, out=terms)
    return peaks[:, 0].astype(np.float64), np.log(terms.sum(axis=-1, dtype=np.float64))


def chosen_log_probs(logits: np.ndarray, chosen: np.ndarray, work: np.ndarray | None = None) -> np.ndarray:
    """log_softmax(logits)[row, chosen[row]] for every row, to within about 1e-7 (see
    log_normalisers), without writing out a table of log probabilities."""
    peaks, normalisers = log_normalisers(logits, work)
    return (logits[np.arange(len(chosen)), chosen].astype(np.float64) - peaks) - normalisers


# Tokens whose scaled logit lies this far below the row's best weigh under e^-50 each, 1e-17 of
# the total for all 51864 together: below float64's resolution of the running sum, so leaving
# them out changes no draw beyond rounding, and at low temperatures the exponentials and the
# running sum cover a few hundred tokens instead of the vocabulary (a 2-row step's NumPy work
# at 0.2: 0.86 -> 0.53 ms).
DRAW_CUTOFF = 50.0


# draw finds its token in two steps: the running sum of blocks of this many weights, then the
# running sum inside one block. A running sum over the whole vocabulary (cumsum, 0.4 MB of fresh
# float64 a row) cost 0.2-0.9 ms a row on Zen 3.
DRAW_BLOCK = 256


def _inverse_cdf(weights: np.ndarray, u: float) -> int:
    """The first index at which the running sum of weights (positive float32, summed in
    float64) passes u times their total."""
    whole = len(weights) - len(weights) % DRAW_BLOCK
    sums = weights[:whole].reshape(-1, DRAW_BLOCK).sum(axis=1, dtype=np.float64)
    if whole < len(weights):
        sums = np.append(sums, weights[whole:].sum(dtype=np.float64))
    running = np.cumsum(sums)
    total = running[-1]
    target = min(u * total, np.nextafter(total, 0))
    block = int(np.searchsorted(running, target, side="right"))
    before = running[block - 1] if block else 0.0
    inside = before + np.cumsum(weights[block * DRAW_BLOCK : (block + 1) * DRAW_BLOCK], dtype=np.float64)
    # the block's own running sum may round a hair below its sum above: its last token then,
    # which has a positive weight like every token here
    return block * DRAW_BLOCK + min(int(np.searchsorted(inside, target, side="right")), len(inside) - 1)


def draw(logits: np.ndarray, temperature: float | np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One token per row from softmax(logits / temperature) (a number, or one per row as
    [rows, 1]), by a single uniform number per row against the running sum of probabilities:
    Gumbel-max would need two logarithms per vocabulary entry. A token of probability zero can
    never be drawn: u stays strictly below the total."""
    temperatures = np.broadcast_to(np.reshape(temperature, (-1,)), (len(logits),))
    peaks = logits.max(axis=-1)
    u = rng.random(len(logits))
    chosen = np.empty(len(logits), dtype=np.int64)
    for row, (peak, t) in enumerate(zip(peaks.tolist(), temperatures.tolist())):
        # a float64 bound (a NumPy scalar): float32 logits are compared in float64, not the bound rounded
        near = np.flatnonzero(logits[row] > np.float64(peak - DRAW_CUTOFF * t))
        # float32 exponentials (NumPy's float64 exp is a scalar loop without AVX-512, and at 1.0
        # the whole vocabulary is near), all at least e^-50, summed in float64: a draw can move
        # only where u lands within about 1e-7 of the total from a boundary between two tokens
        weights = np.exp(np.asarray((logits[row, near] - peak) / t, dtype=np.float32))
        chosen[row] = near[_inverse_cdf(weights, u[row])]
    return chosen


class Scratch:
    """A float32 buffer kept from step to step, handed out in the shape of the step's logits:
    fresh memory of that size (0.2 MB a row) would fault its pages in on every step."""

    def __init__(self):
        self.buffer = np.empty((0, 0), dtype=np.float32)

    def like(self, logits: np.ndarray) -> np.ndarray:
        rows, width = logits.shape
        if self.buffer.shape[0] < rows or self.buffer.shape[1] != width:
            self.buffer = np.empty((rows, width), dtype=np.float32)
        return self.buffer[:rows]


class Sampler:
    """Greedy decoding at temperature 0 (the likeliest token), sampling above it. A row that
    wrote <|endoftext|> keeps writing it, and its sum stops growing. temperature is one for
    every row, or one per row (a window drawn at several fallback temperatures at once)."""

    def __init__(self, temperature: float | np.ndarray, eot: int, rng: np.random.Generator):
        self.temperature = temperature
        self.eot = eot
        self.rng = rng
        self.work = Scratch()  # log_normalisers' buffer

    def keep(self, rows: np.ndarray) -> None:
        """Only these rows go on (the others left the batch)."""
        if np.ndim(self.temperature):
            self.temperature = self.temperature[rows]

    def _choose(self, logits: np.ndarray, ranked: Ranked | None) -> np.ndarray:
        t = self.temperature
        # the first of the ranked ids is argmax's answer: the best, the lowest id among equals
        best = logits.argmax(axis=-1) if ranked is None else ranked.top[:, 0].copy()
        if np.ndim(t) == 0:
            return best if t == 0 else draw(logits, t, self.rng)
        chosen = best
        warm = t > 0
        if warm.any():
            chosen[warm] = draw(logits[warm], t[warm, None], self.rng)
        return chosen

    def step(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray, ranked: Ranked | None = None
    ) -> tuple[np.ndarray, bool]:
        """tokens with one more column, and whether every row has finished."""
        chosen = self._choose(logits, ranked)
        ended = tokens[:, -1] == self.eot
        if ranked is None:
            gained = chosen_log_probs(logits, chosen, self.work.like(logits))
        else:
            gained = (logits[np.arange(len(chosen)), chosen].astype(np.float64) - ranked.peaks) - ranked.normalisers
        sum_logprobs += np.where(ended, 0.0, gained)
        chosen[ended] = self.eot
        tokens = np.concatenate([tokens, chosen[:, None]], axis=-1)
        return tokens, bool((chosen == self.eot).all())

    def candidates(self, tokens: np.ndarray, sum_logprobs: np.ndarray) -> Candidates:
        """Every row of tokens [n_audio, n_group, n_ctx] is a candidate; the ones that ran out
        of room (sample_len) are closed with the <|endoftext|> they never wrote."""
        closing = np.full((*tokens.shape[:-1], 1), self.eot, dtype=tokens.dtype)
        return np.concatenate([tokens, closing], axis=-1).tolist(), sum_logprobs.tolist()


def top_tokens(scores: np.ndarray, k: int) -> np.ndarray:
    """The k best-scored tokens of each row [rows, k] (logits or log probabilities: they rank
    alike), best first, equal ones by lower id.
    k argmax passes (about 10 us each) beat argpartition here: 0.4 ms a row, and 6 ms when
    the timestamp rules have barred most of the vocabulary."""
    rest = scores.copy()
    rows = np.arange(len(rest))
    top = np.empty((len(rest), k), dtype=np.int64)
    for j in range(k):
        top[:, j] = rest.argmax(axis=-1)
        reached = rest[rows, top[:, j]]
        rest[rows, top[:, j]] = -np.inf
    # rows with fewer than k allowed tokens: argmax would repeat the first -inf one, so those
    # are ordered in full
    for row in np.flatnonzero(reached == -np.inf):
        by_rank = np.lexsort((np.arange(scores.shape[-1]), -scores[row]))
        top[row] = by_rank[:k]
    return top


class BeamSearch:
    """beam_size open beams per audio, each extended by its beam_size + 1 likeliest tokens
    (enough to keep beam_size open even if one of them is <|endoftext|>). Finished sequences
    are collected until round(beam_size * patience) per audio (arxiv:2204.05424), which ends
    the search. The decoder's cache follows the beams through inference.rearrange_kv_cache."""

    def __init__(
        self, beam_size: int, eot: int, inference: Inference | None, patience: float | None = None
    ):
        self.beam_size = beam_size
        self.eot = eot
        self.inference = inference
        self.wanted = round(beam_size * (patience or 1.0))  # finished sequences per audio
        if self.wanted <= 0:
            raise ValueError(
                f"Invalid beam size ({beam_size}) or patience ({patience}): "
                "no finished sequence would ever be kept"
            )
        self.finished: list[dict[tuple[int, ...], float]] | None = None
        self.work = Scratch()  # log_normalisers' buffer

    def step(
        self, tokens: np.ndarray, logits: np.ndarray, sum_logprobs: np.ndarray, ranked: Ranked | None = None
    ) -> tuple[np.ndarray, bool]:
        width = self.beam_size
        if tokens.shape[0] % width:
            raise ValueError(f"{tokens.shape[0]} rows do not split into beams of {width}")
        n_audio = tokens.shape[0] // width
        if self.finished is None:
            self.finished = [{} for _ in range(n_audio)]

        # Within a row, log probabilities rank as the logits do (they differ by the row's peak
        # and normaliser), so the candidates are picked on the logits and only they are scaled.
        if ranked is not None and ranked.top.shape[1] > width:
            extensions, peaks, normalisers = ranked.top[:, : width + 1], ranked.peaks, ranked.normalisers
        else:
            extensions = top_tokens(logits, width + 1)
            peaks, normalisers = log_normalisers(logits, self.work.like(logits))
        picked = np.take_along_axis(logits, extensions, -1).astype(np.float64)
        picked = (picked - peaks[:, None]) - normalisers[:, None]
        scores = (sum_logprobs[:, None] + picked).tolist()
        extensions = extensions.tolist()

        kept_rows: list[int] = []
        kept_tokens: list[int] = []
        kept_scores: list[float] = []
        for audio in range(n_audio):
            # A candidate is (beam text, token). Beams with the same text (all of them at the
            # first step) share one key, so such a candidate is counted once, with the score
            # and row of the last beam proposing it, in the place where it was first proposed.
            score: dict[tuple[int, int], float] = {}
            row_of: dict[tuple[int, int], int] = {}
            text_key: dict[bytes, int] = {}
            for row in range(audio * width, (audio + 1) * width):
                key = text_key.setdefault(tokens[row].tobytes(), row)
                for token, value in zip(extensions[row], scores[row]):
                    score[key, token] = value
                    row_of[key, token] = row

            newly_finished: dict[tuple[int, ...], float] = {}
            for candidate in sorted(score, key=score.get, reverse=True):
                row = row_of[candidate]
                if candidate[1] == self.eot:
                    newly_finished[(*tokens[row].tolist(), self.eot)] = score[candidate]
                    continue
                kept_rows.append(row)
                kept_tokens.append(candidate[1])
                kept_scores.append(score[candidate])
                if len(kept_rows) == (audio + 1) * width:
                    break
            # best first, as long as the list has room
            collected = self.finished[audio]
            for sequence in sorted(newly_finished, key=newly_finished.get, reverse=True):
                if len(collected) >= self.wanted:
                    break
                collected[sequence] = newly_finished[sequence]

        sum_logprobs[:] = kept_scores
        tokens = np.concatenate(
            [tokens[kept_rows], np.array(kept_tokens, dtype=tokens.dtype)[:, None]], axis=-1
        )
        self.inference.rearrange_kv_cache(kept_rows)
        return tokens, all(len(found) >= self.wanted for found in self.finished)

    def candidates(self, tokens: np.ndarray, sum_logprobs: np.ndarray) -> Candidates:
        """The finished sequences of each audio; one that ran out of room (sample_len) before
        beam_size finished is topped up with its best open beams."""
        for audio, found in enumerate(self.finished):
            for beam in np.argsort(sum_logprobs[audio])[::-1]:
                if len(found) >= self.beam_size:
                    break
                found[(*tokens[audio, beam].tolist(), self.eot)] = float(sum_logprobs[audio, beam])
        return [[list(s) for s in found] for found in self.finished], [
            list(found.values()) for found in self.finished
        ]


def best_candidates(
    sequences: list[list[list[int]]], sums: list[list[float]], length_penalty: float | None
) -> list[int]:
    """Per audio, the index of the candidate with the best length-normalised log probability:
    the sum over the length (length_penalty None), or over ((5 + length) / 6) ** alpha."""

    def norm(length: int) -> float:
        return length if length_penalty is None else ((5 + length) / 6) ** length_penalty

    return [
        int(np.argmax([total / norm(len(seq)) for seq, total in zip(group, totals)]))
        for group, totals in zip(sequences, sums)
    ]
