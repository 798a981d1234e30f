"""Decoding and long-form transcription driven by a scripted fake model.

The fake model answers each decoder call with fixed logits chosen from the tokens written so
far, so every expectation below follows by hand from openai-whisper's algorithm.
"""

from __future__ import annotations

import collections
import importlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maxwhisper_kernels.decoding import (
    BeamSearch,
    DecodingOptions,
    Sampler,
    TokenRules,
    best_candidates,
    chosen_log_probs,
    compression_ratio,
    decode,
    decode_batch,
    detect_language,
    log_softmax,
    plan_decoding,
    suppressed_tokens,
    top_tokens,
)
from maxwhisper_kernels.decoding.loops import LOOP_TOKENS, MAX_PERIOD, MIN_LOOP_TOKENS, loop_periods
from maxwhisper_kernels.decoding.rules import token_rules
from maxwhisper_kernels.decoding.search import draw
from maxwhisper_kernels.tokenizer import default_vocab_dir, get_tokenizer
from maxwhisper_kernels.transcribe import transcribe
from maxwhisper_kernels.weights import ModelDimensions

# The module whose log_mel_spectrogram start_transcriptions calls (replaced by a fake below).
transcribe_module = importlib.import_module("maxwhisper_kernels.transcribe.batch")

EN_DIR = default_vocab_dir(multilingual=False)
TOKENIZER = get_tokenizer(False)
N_VOCAB = 51864  # tiny.en
SOT, EOT, TS = TOKENIZER.sot, TOKENIZER.eot, TOKENIZER.timestamp_begin
NO_SPEECH, NO_TIMESTAMPS = TOKENIZER.no_speech, TOKENIZER.no_timestamps
HELLO, WORLD, PERIOD, THE, AGAIN, ONE, TWO, AND, THEN = 18435, 995, 13, 262, 757, 530, 734, 290, 788
BLANK = 220  # " "

# Text tokens a scripted step can make nearly as likely as its own token, to lower the average
# log probability of a reply without changing what greedy decoding picks.
RIVALS = [t for t in range(1000, 2000) if t not in TOKENIZER.non_speech_tokens][:400]

Script = Callable[[int, int, list[int]], np.ndarray]


def ts(seconds: float) -> int:
    return TS + round(seconds / 0.02)


def dims(n_vocab: int = N_VOCAB) -> ModelDimensions:
    return ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=8,
        n_audio_head=1,
        n_audio_layer=1,
        n_vocab=n_vocab,
        n_text_ctx=448,
        n_text_state=8,
        n_text_head=1,
        n_text_layer=1,
    )


class Features:
    """Audio features of a batch: the numbers of the windows encoded."""

    def __init__(self, windows: list[int]):
        self.windows = windows
        self.n_audio = len(windows)

    def subset(self, audios) -> Features:
        return Features([self.windows[a] for a in audios])


class FakeModel:
    """model.encode numbers the windows it sees; each decoder row's logits come from
    script(window, attempt, tokens so far), attempt counting the passes over that window.
    With draws_per_attempt, a pass's rows of one window count as consecutive attempts, that
    many rows each (a window decoded at several temperatures at once, parallel_fallback)."""

    def __init__(
        self,
        script: Script,
        *,
        multilingual: bool = False,
        tokenizer_dir=EN_DIR,
        n_vocab: int = N_VOCAB,
        draws_per_attempt: int | None = None,
    ):
        self.dims = dims(n_vocab)
        self.draws_per_attempt = draws_per_attempt
        self.is_multilingual = multilingual
        self.num_languages = 99
        self.alignment_heads = None
        self.tokenizer_dir = tokenizer_dir
        self.script = script
        self.n_encoded = 0
        self.attempts: collections.Counter[int] = collections.Counter()
        self.inferences: list[FakeInference] = []

    def encode(self, mel: np.ndarray) -> Features:
        assert mel.dtype == np.float32 and mel.shape[1:] == (80, 3000), mel.shape
        windows = list(range(self.n_encoded, self.n_encoded + len(mel)))
        self.n_encoded += len(mel)
        return Features(windows)

    def new_inference(self, audio_features: Features, n_group: int = 1) -> FakeInference:
        inference = FakeInference(self, audio_features.windows, n_group)
        self.inferences.append(inference)
        return inference


class FakeInference:
    def __init__(self, model: FakeModel, windows: list[int], n_group: int):
        self.model = model
        self.windows = windows
        self.n_group = n_group
        self.attempts = [model.attempts[w] for w in windows]
        self.draws = min(model.draws_per_attempt or n_group, n_group)  # rows per attempt
        for _ in range(n_group // self.draws):
            model.attempts.update(windows)
        self.audios = list(range(len(windows)))  # the windows still stepped (keep_rows)
        self.fed: list[np.ndarray] = []
        self.rearrangements: list[list[int]] = []
        self.kept: list[list[int]] = []  # the rows of each keep_rows call
        self.cleaned_up = False

    def logits(self, tokens: np.ndarray, positions=None) -> np.ndarray:
        assert tokens.shape[0] == len(self.audios) * self.n_group
        new = range(tokens.shape[1]) if not self.fed else [tokens.shape[1] - 1]
        if positions is None:
            positions = new
        positions = [p % tokens.shape[1] for p in positions]
        assert set(positions) <= set(new), (positions, new)
        self.fed.append(tokens.copy())
        return np.array(
            [
                [
                    self.model.script(
                        self.windows[self.audios[row // self.n_group]],
                        self.attempts[self.audios[row // self.n_group]] + row % self.n_group // self.draws,
                        tokens[row, : p + 1].tolist(),
                    )
                    for p in positions
                ]
                for row in range(tokens.shape[0])
            ],
            dtype=np.float32,
        )

    def rearrange_kv_cache(self, source_indices: list[int]) -> None:
        self.rearrangements.append(list(source_indices))

    def keep_rows(self, rows) -> None:
        rows = list(rows)
        assert len(rows) % self.n_group == 0 and rows[:: self.n_group] == sorted(rows[:: self.n_group])
        self.audios = [self.audios[row // self.n_group] for row in rows[:: self.n_group]]
        self.kept.append(rows)

    def cleanup_caching(self) -> None:
        self.cleaned_up = True

    def cross_attention_weights(self) -> None:
        return None


def written(prefix: list[int], tokenizer=TOKENIZER) -> list[int]:
    """The tokens after the prompt: after the last control token (sot, language, task...)."""
    controls = [i for i, t in enumerate(prefix) if tokenizer.eot <= t < tokenizer.timestamp_begin]
    return prefix[controls[-1] + 1 :]


@dataclass
class Reply:
    tokens: list[int]  # written after the prompt, then <|endoftext|>
    rivals: int = 0  # text tokens nearly as likely at each step
    no_speech: float = -np.inf  # logit of <|nospeech|> after <|startoftranscript|>


def replies(*windows: list[Reply], tokenizer=TOKENIZER, language: int | None = None) -> Script:
    """A script answering window w's attempt a with windows[w][a] (its last reply after that)."""

    def script(window: int, attempt: int, prefix: list[int]) -> np.ndarray:
        reply = windows[window][min(attempt, len(windows[window]) - 1)]
        logits = np.zeros(tokenizer.encoding.n_vocab, dtype=np.float32)
        logits[RIVALS[: reply.rivals]] = 29.99
        done = written(prefix, tokenizer)
        next_token = reply.tokens[len(done)] if len(done) < len(reply.tokens) else tokenizer.eot
        logits[next_token] = 30.0
        if prefix[-1] == tokenizer.sot:
            logits[tokenizer.no_speech] = reply.no_speech
            if language is not None:
                logits[language] = 40.0
        return logits

    return script


def tree(branches: dict[tuple[int, ...], dict[int, float]]) -> Script:
    """Probabilities of the next token after each written sequence; <|endoftext|> elsewhere."""

    def script(window: int, attempt: int, prefix: list[int]) -> np.ndarray:
        logits = np.full(N_VOCAB, -np.inf, dtype=np.float32)
        for token, p in branches.get(tuple(written(prefix)), {EOT: 1.0}).items():
            logits[token] = math.log(p)
        return logits

    return script


MEL = np.zeros((80, 3000), dtype=np.float32)


# --- logit filters -------------------------------------------------------------------------


def masked(filter_, sampled: list[int], logits: np.ndarray | None = None) -> np.ndarray:
    """Which tokens `filter_` masks after `sampled`, behind a one-token prompt (<|sot|>)."""
    logits = np.zeros((1, N_VOCAB)) if logits is None else logits[None].copy()
    filter_.apply(logits, np.array([[SOT, *sampled]]))
    return np.isneginf(logits[0])


def rules(*, blank: bool = False, timestamps: bool = False) -> TokenRules:
    return token_rules(
        TOKENIZER,
        1,
        suppress_blank=blank,
        suppress_tokens=None,
        timestamps=timestamps,
        latest_start=50,
    )


def timestamp_rules() -> TokenRules:
    return rules(timestamps=True)


def test_first_token_is_a_timestamp_within_max_initial_timestamp():
    mask = masked(timestamp_rules(), [])
    allowed = np.flatnonzero(~mask)
    assert allowed.tolist() == list(range(TS, TS + 51))  # <|0.00|> .. <|1.00|>


def test_after_a_lone_first_timestamp_text_must_follow():
    mask = masked(timestamp_rules(), [ts(0.5)])
    assert mask[TS:].all()  # no timestamp: a pair cannot start the text
    assert mask[NO_TIMESTAMPS]
    assert not mask[:EOT].any() and not mask[EOT]


def test_after_text_timestamps_must_move_forward():
    logits = np.zeros(N_VOCAB)
    logits[HELLO] = 20.0  # so that the timestamps' total probability does not win
    mask = masked(timestamp_rules(), [ts(0.5), HELLO], logits)
    assert mask[TS : ts(0.5) + 1].all()  # up to and including the segment's start
    assert not mask[ts(0.5) + 1 :].any()
    assert not mask[:EOT].any() and not mask[EOT]


def test_after_a_closing_timestamp_only_timestamps_or_end_of_text():
    logits = np.zeros(N_VOCAB)
    logits[EOT] = 20.0
    mask = masked(timestamp_rules(), [ts(0.5), HELLO, ts(1.0)], logits)
    assert mask[:EOT].all()  # no text
    assert not mask[EOT]
    assert mask[TS : ts(1.0)].all()  # the next segment may start where this one ended
    assert not mask[ts(1.0) :].any()


def test_after_a_timestamp_pair_text_must_follow():
    logits = np.zeros(N_VOCAB)
    logits[WORLD] = 20.0
    mask = masked(timestamp_rules(), [ts(0.5), HELLO, ts(1.0), ts(1.0)], logits)
    assert mask[TS:].all()
    assert not mask[:EOT].any()


def test_known_speech_end_bars_ending_on_a_segment_opened_well_before_it():
    """With a speech end (VAD-cut windows), <|endoftext|> may not follow a pair that opens a
    segment before last_open_end (timestamp steps); later, at the lone start, or with no
    limit (-1), it may."""
    logits = np.zeros(N_VOCAB)
    logits[EOT] = 20.0
    pair = [ts(0.5), HELLO, ts(1.0), ts(1.0)]  # a segment opened at 1.0 s = step 50
    filter_ = timestamp_rules()

    def eot_barred(sampled: list[int], limit: int) -> bool:
        masks = logits[None].copy()
        filter_.apply(masks, np.array([[SOT, *sampled]]), np.array([limit]))
        return bool(np.isneginf(masks[0, EOT]))

    assert eot_barred(pair, 51)
    assert not eot_barred(pair, 50) and not eot_barred(pair, -1)
    assert not eot_barred([ts(0.5)], 1000)  # an empty window may still end at once
    assert not eot_barred([ts(0.5), HELLO, ts(1.0)], 1000)  # a closed segment may end the text
    assert not masked(filter_, pair, logits)[EOT]  # no limit given: openai-whisper's rule


def _unsaid_tail() -> Script:
    """A window whose likeliest ending opens a segment at 2 s and stops: what the model does
    when it takes the rest of the speech for cut off by the window's edge."""
    opened = (ts(0), HELLO, ts(2), ts(2))
    return tree({
        (): {ts(0): 1.0},
        (ts(0),): {HELLO: 1.0},
        (ts(0), HELLO): {ts(2): 1.0},
        (ts(0), HELLO, ts(2)): {ts(2): 1.0},
        opened: {EOT: 0.9, WORLD: 0.1},
        (*opened, WORLD): {ts(3): 1.0},
    })  # fmt: skip


def test_speech_end_per_window_keeps_the_text_going_after_an_early_pair():
    """Rows of one batch differ in speech_end: the window whose speech runs on past the pair
    must transcribe it; the one whose speech ends within a second of the pair may stop."""
    mels = np.zeros((2, 80, 3000), dtype=np.float32)
    late, early = (DecodingOptions(speech_end=end) for end in (10.0, 2.5))
    results = decode_batch(FakeModel(_unsaid_tail()), mels, [late, early])
    assert results[0].tokens == [ts(0), HELLO, ts(2), ts(2), WORLD, ts(3)]
    assert results[1].tokens == [ts(0), HELLO, ts(2), ts(2)]
    plain = decode(FakeModel(_unsaid_tail()), MEL)
    assert plain.tokens == [ts(0), HELLO, ts(2), ts(2)]


@pytest.mark.usefixtures("fake_mel")
def test_vad_cut_audio_is_transcribed_to_its_end_in_one_window():
    """vad_cut: the window that reaches the audio's end gets the speech end, so the unsaid
    tail is decoded in that window instead of as a window of its own from 2 s."""
    model = FakeModel(_unsaid_tail())
    result = transcribe(model, seconds_of_audio(10), vad_cut=True, temperature=0.0)
    assert segment_summary(result) == [(0, 0, 0.0, 2.0, " Hello"), (1, 0, 2.0, 3.0, " world")]
    assert len(model.inferences) == 1
    plain = FakeModel(_unsaid_tail())
    transcribe(plain, seconds_of_audio(10), temperature=0.0)
    assert len(plain.inferences) > 1  # the sequential rule decodes again from the pair


def test_timestamps_win_when_their_total_beats_every_text_token():
    # 1500 allowed timestamps at logit 0 add up to log(1500) = 7.31 (relative to one of them)
    weak, strong = np.zeros(N_VOCAB), np.zeros(N_VOCAB)
    weak[HELLO], strong[HELLO] = 7.2, 7.4
    assert masked(timestamp_rules(), [ts(0.0), WORLD], weak)[:TS].all()
    mask = masked(timestamp_rules(), [ts(0.0), WORLD], strong)
    assert not mask[:EOT].any()


def test_suppress_blank_only_at_the_first_token():
    blank = rules(blank=True)
    assert np.flatnonzero(masked(blank, [])).tolist() == [220, EOT]  # " " and <|endoftext|>
    assert not masked(blank, [HELLO]).any()


def test_suppress_tokens_expands_minus_one_and_adds_control_tokens():
    model = FakeModel(tree({}))
    controls = {SOT, TOKENIZER.sot_prev, TOKENIZER.sot_lm, NO_SPEECH}
    controls |= {TOKENIZER.transcribe, TOKENIZER.translate}
    default = suppressed_tokens(DecodingOptions().suppress_tokens, TOKENIZER)
    assert set(default) == set(TOKENIZER.non_speech_tokens) | controls
    listed = suppressed_tokens("13, 11", TOKENIZER)
    assert set(listed) == {11, 13} | controls
    none = plan_decoding(model, DecodingOptions(suppress_tokens="")).rules
    # the blank-start rule and the timestamp grammar, but no suppressed ids
    assert [none.blank_start is not None, none.suppressed is not None] == [True, False]
    assert none.first_timestamp == TS


# --- token decoders and ranking ---------------------------------------------------------


def test_log_softmax_is_stable_and_keeps_masked_tokens():
    logprobs = log_softmax(np.array([[1000.0, 1000.0, -np.inf]]))
    np.testing.assert_allclose(logprobs[0, :2], math.log(0.5))
    assert logprobs[0, 2] == -np.inf


@given(st.integers(1, 9), st.integers(2, 300), st.integers(0, 2**32 - 1), st.floats(0.1, 50))
def test_chosen_log_probs_are_log_softmax_to_float32_precision(rows, vocab, seed, spread):
    rng = np.random.default_rng(seed)
    logits = rng.standard_normal((rows, vocab)) * spread
    logits[rng.random((rows, vocab)) < 0.3] = -np.inf  # barred tokens
    logits[:, 0] = rng.standard_normal(rows)  # every row keeps an allowed token
    chosen = np.array([rng.choice(np.flatnonzero(np.isfinite(row))) for row in logits])
    expected = log_softmax(logits)[np.arange(rows), chosen]
    # float32 exponentials: a few float32 ulps of the normaliser (which is at most log(vocab))
    np.testing.assert_allclose(chosen_log_probs(logits, chosen), expected, rtol=0, atol=3e-7 * (1 + np.log(vocab)))
    # the work buffer holds the same numbers as fresh memory
    work = np.full(logits.shape, np.nan, dtype=np.float32)
    assert np.array_equal(chosen_log_probs(logits, chosen, work), chosen_log_probs(logits, chosen))


def test_greedy_decoder_picks_argmax_and_freezes_finished_rows():
    decoder = Sampler(temperature=0.0, eot=3, rng=np.random.default_rng(0))
    logits = np.log(np.array([[0.1, 0.6, 0.2, 0.1], [0.7, 0.1, 0.1, 0.1]]))
    sum_logprobs = np.zeros(2)
    tokens, completed = decoder.step(np.array([[9], [3]]), logits, sum_logprobs)
    assert tokens.tolist() == [[9, 1], [3, 3]]
    np.testing.assert_allclose(sum_logprobs, [math.log(0.6), 0.0])
    assert not completed


def test_greedy_decoder_samples_softmax_at_temperature_reproducibly():
    probs = np.array([0.2, 0.3, 0.5, 0.0])  # the last token is masked (-inf)
    with np.errstate(divide="ignore"):
        logits = np.tile(np.log(probs) * 0.5, (6000, 1))  # softmax(logits / 0.5) = probs

    def sample(seed: int) -> np.ndarray:
        decoder = Sampler(temperature=0.5, eot=9, rng=np.random.default_rng(seed))
        tokens, _ = decoder.step(np.zeros((6000, 1), dtype=np.int64), logits, np.zeros(6000))
        return tokens[:, -1]

    counts = np.bincount(sample(1), minlength=4) / 6000
    np.testing.assert_allclose(counts, probs, atol=0.025)  # about 4 standard deviations
    assert counts[3] == 0
    assert (sample(7) == sample(7)).all()
    assert (sample(7) != sample(8)).any()


def _draw_over_the_whole_vocabulary(logits: np.ndarray, temperatures: np.ndarray, u: np.ndarray) -> list[int]:
    """Inverse-CDF sampling from the definition: the first token whose running sum of
    exp(logit / t) passes u times the total."""
    chosen = []
    for row, t, draw_u in zip(logits, temperatures, u):
        weights = np.exp((row - row.max()) / t)
        running = np.cumsum(weights)
        chosen.append(int(np.flatnonzero(running > draw_u * running[-1])[0]))
    return chosen


@given(st.integers(0, 2**31), st.floats(0.05, 1.0), st.floats(0.5, 12.0))
def test_draw_matches_sampling_over_the_whole_vocabulary(seed, temperature, spread):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, spread, (5, 2000))
    logits[:, rng.integers(0, 2000, 300)] = -np.inf  # barred tokens
    temperatures = np.array([temperature, 1.0, 0.2, temperature, 0.7])
    u = np.random.default_rng(seed + 1).random(5)
    chosen = draw(logits, temperatures[:, None], np.random.default_rng(seed + 1))
    assert chosen.tolist() == _draw_over_the_whole_vocabulary(logits, temperatures, u)


def test_rows_at_their_own_temperatures():
    """Rows at 0 take the likeliest token; rows above 0 draw, each at its own temperature."""
    probs = np.array([0.2, 0.3, 0.5, 0.0])
    with np.errstate(divide="ignore"):
        base = np.log(probs)
    temperatures = np.tile([0.0, 0.5, 1.0], 3000)
    # softmax(logits / t) = probs for the rows at 0.5 and 1.0
    logits = np.where(temperatures[:, None] == 0.5, base * 0.5, base)
    sampler = Sampler(temperature=temperatures, eot=9, rng=np.random.default_rng(5))
    tokens, _ = sampler.step(np.zeros((9000, 1), dtype=np.int64), logits, np.zeros(9000))
    picked = tokens[:, -1].reshape(3000, 3)
    assert (picked[:, 0] == 2).all()
    for column in (1, 2):
        counts = np.bincount(picked[:, column], minlength=4) / 3000
        np.testing.assert_allclose(counts, probs, atol=0.035)  # about 4 standard deviations
    sampler.keep(np.arange(0, 9000, 3))  # only the greedy rows stay
    tokens, _ = sampler.step(np.zeros((3000, 1), dtype=np.int64), logits[::3], np.zeros(3000))
    assert (tokens[:, -1] == 2).all()


def test_ranker_length_normalisation_and_google_nmt_penalty():
    tokens = [[[1], [1, 2, 3, 4]]]
    sum_logprobs = [[-1.0, -3.0]]
    # lengths 1 and 4: -1/1 < -3/4; penalty ((5 + n) / 6) ** alpha: 1 and 1.5 for alpha=1
    assert best_candidates(tokens, sum_logprobs, None) == [1]
    assert best_candidates(tokens, sum_logprobs, 0.0) == [0]
    assert best_candidates(tokens, sum_logprobs, 1.0) == [0]


# Probabilities after each written prefix: a 0.7 / b 0.3; a -> eot 0.2, c 0.8; b -> eot 0.9,
# d 0.1. Beam search (2 beams) finishes (b) at 0.27 and (a) at 0.14 while (a, c) at 0.56 is
# still open; with patience 2 it waits for 4 finished sequences, which takes in (a, c) and (b, d).
A, B, C, D = HELLO, WORLD, AGAIN, ONE
BEAM_TREE = {
    (): {A: 0.7, B: 0.3},
    (A,): {EOT: 0.2, C: 0.8},
    (B,): {EOT: 0.9, D: 0.1},
    (A, C): {EOT: 1.0},
    (B, D): {EOT: 1.0},
}
PLAIN = dict(without_timestamps=True, suppress_blank=False, suppress_tokens="")


def test_beam_search_keeps_the_best_finished_sequence():
    model = FakeModel(tree(BEAM_TREE))
    result = decode(model, MEL, DecodingOptions(beam_size=2, **PLAIN))
    assert result.tokens == [B]
    assert result.avg_logprob == pytest.approx(math.log(0.27) / 2)
    inference = model.inferences[-1]
    # step 1: both beams come from the last identical row; step 2: a from row 0, b from row 1
    assert inference.rearrangements == [[1, 1], [0, 1]]
    assert inference.fed[0].tolist() == [[SOT, NO_TIMESTAMPS]] * 2
    assert inference.cleaned_up


def test_beam_search_patience_waits_for_more_finished_sequences():
    model = FakeModel(tree(BEAM_TREE))
    result = decode(model, MEL, DecodingOptions(beam_size=2, patience=2.0, **PLAIN))
    # (a, c): log(0.56) / 2 beats (b): log(0.27) / 1
    assert result.tokens == [A, C]
    assert result.avg_logprob == pytest.approx(math.log(0.56) / 3)
    # the two open beams finish at step 3 (the others in them are -inf)
    assert model.inferences[-1].rearrangements == [[1, 1], [0, 1], [0, 0]]


@given(
    st.lists(
        st.lists(st.sampled_from([-np.inf, -3.0, -1.0, -0.5, 0.0]), min_size=8, max_size=40),
        min_size=1,
        max_size=6,
    ).filter(lambda rows: len({len(r) for r in rows}) == 1),
    st.integers(1, 6),
)
def test_beam_candidates_are_the_top_tokens_best_first_ties_to_the_lower_id(rows, beam_size):
    logprobs = np.array(rows)
    top = top_tokens(logprobs, beam_size + 1)
    for row, tokens in zip(logprobs, top.tolist()):
        expected = sorted(range(len(row)), key=lambda t: (-row[t], t))[: beam_size + 1]
        assert tokens == expected


def test_beam_search_decoder_rejects_a_zero_candidate_list():
    with pytest.raises(ValueError, match="Invalid beam size"):
        BeamSearch(beam_size=1, eot=EOT, inference=None, patience=0.1)


def test_greedy_decode_with_timestamps_and_no_speech_probability():
    reply = Reply([ts(0.0), HELLO, WORLD, PERIOD, ts(1.5)], no_speech=31.0)
    model = FakeModel(replies([reply]))
    result = decode(model, MEL)
    assert result.tokens == reply.tokens
    assert result.text == "Hello world."
    assert result.language == "en" and result.temperature == 0.0
    # after <|sot|>: <|0.00|> at 30, <|nospeech|> at 31, every other token at 0
    expected = math.exp(31) / (math.exp(30) + math.exp(31) + N_VOCAB - 2)
    assert result.no_speech_prob == pytest.approx(expected)
    assert result.avg_logprob == pytest.approx(0.0, abs=1e-6)
    assert result.compression_ratio == compression_ratio("Hello world.")
    # the whole prompt first, then one token at a time
    fed = model.inferences[-1].fed
    assert [f.shape[1] for f in fed] == [1, 2, 3, 4, 5, 6]


def test_best_of_keeps_the_likeliest_sample():
    model = FakeModel(tree({(): {A: 0.5, B: 0.5}, (A,): {EOT: 0.1, C: 0.9}, (B,): {EOT: 1.0}}))
    options = DecodingOptions(temperature=1.0, best_of=8, seed=3, **PLAIN)
    result = decode(model, MEL, options)
    # samples are (a) at log(.05), (a, c) at log(.45) / 2 or (b) at log(.5): (a, c) ranks first
    assert result.tokens == [A, C]
    assert model.inferences[-1].n_group == 8


def test_prompt_and_prefix_surround_the_sot_sequence():
    model = FakeModel(tree({}))
    task = plan_decoding(model, DecodingOptions(prompt=" Hello world", prefix="again"))
    assert task.initial_tokens == (TOKENIZER.sot_prev, HELLO, WORLD, SOT, AGAIN)
    assert task.sample_begin == 5 and task.sot_index == 3
    long_prompt = plan_decoding(model, DecodingOptions(prompt=[THE] * 300))
    assert len(long_prompt.initial_tokens) == 1 + 223 + 1  # the last n_text_ctx // 2 - 1


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (dict(beam_size=2, best_of=2), "can't be given together"),
        (dict(best_of=2), "not compatible"),
        (dict(patience=2.0), "requires beam_size"),
        (dict(beam_size=2, length_penalty=2.0), "between 0 and 1"),
        (dict(task="translate"), "English-only model: it cannot translate"),
        (dict(language="fr"), "English-only model: it cannot transcribe language 'fr'"),
    ],
)
def test_invalid_options(options, message):
    with pytest.raises(ValueError, match=message):
        decode(FakeModel(tree({})), MEL, DecodingOptions(**options))


def test_batch_decoding_returns_one_result_per_audio():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])], [Reply([ts(0), WORLD, ts(2)])]))
    results = decode(model, np.zeros((2, 80, 3000), dtype=np.float32), beam_size=3)
    assert [r.text for r in results] == ["Hello", "world"]
    assert model.inferences[-1].n_group == 3


def test_windows_that_ended_leave_the_batch_and_keep_their_text():
    """Greedy: once half the windows wrote <|endoftext|>, later steps feed only the others;
    every window still gets its own text and log probability."""
    short = [Reply([ts(0), HELLO, ts(1)])]
    long = [Reply([ts(0), *[WORLD, HELLO] * 6, ts(9)])]
    model = FakeModel(replies(short, long, short, long))
    results = decode(model, np.zeros((4, 80, 3000), dtype=np.float32))
    assert [r.text for r in results] == ["Hello", "world Hello" + " world Hello" * 5] * 2
    inference = model.inferences[-1]
    assert inference.kept == [[1, 3]]
    assert {len(fed) for fed in inference.fed[-3:]} == {2}
    alone = decode(FakeModel(replies(short)), np.zeros((1, 80, 3000), dtype=np.float32))[0]
    assert results[0].avg_logprob == alone.avg_logprob and results[0].tokens == alone.tokens


def test_beam_search_keeps_every_row_to_the_end():
    short = [Reply([ts(0), HELLO, ts(1)])]
    long = [Reply([ts(0), *[WORLD, HELLO] * 6, ts(9)])]
    model = FakeModel(replies(short, long))
    results = decode(model, np.zeros((2, 80, 3000), dtype=np.float32), beam_size=2)
    assert [r.text for r in results] == ["Hello", "world Hello" + " world Hello" * 5]
    assert model.inferences[-1].kept == []


# --- repetition loops (stop_loops) ---------------------------------------------------------


def _shortest_period(row: list[int]) -> int:
    """From the definition: the least p <= MAX_PERIOD such that the last max(24, 4p) tokens,
    at most 48, repeat a block of p (tail[k] == tail[k - p] for every k)."""
    for p in range(1, MAX_PERIOD + 1):
        tail = row[-min(LOOP_TOKENS, max(MIN_LOOP_TOKENS, 4 * p)) :]
        if all(tail[k] == tail[k - p] for k in range(p, len(tail))):
            return p
    return 0


@given(st.lists(st.lists(st.integers(0, 2), min_size=1, max_size=20), min_size=1, max_size=6), st.data())
def test_loop_periods_match_the_definition(blocks, data):
    rows = []
    for block in blocks:  # a repeated block, sometimes with one token changed
        row = (block * (LOOP_TOKENS + 5))[: LOOP_TOKENS + 5]
        if data.draw(st.booleans()):
            row[data.draw(st.integers(0, len(row) - 1))] = 7
        rows.append(row)
    assert loop_periods(np.array(rows)).tolist() == [_shortest_period(row) for row in rows]


def _loop_reply(breaks_after: int | None = None) -> list[Reply]:
    """ " Hello" then " world" over and over, with rivals (so each step's log probability is
    well below 0); if breaks_after, the loop ends after that many " world"s."""
    words = [WORLD] * (breaks_after or 400)
    ending = [PERIOD, ts(2)] if breaks_after else []
    return [Reply([ts(0), HELLO, *words, *ending], rivals=3)]


def test_a_loop_that_goes_on_stops_early_with_the_same_result():
    loop, short = _loop_reply(), [Reply([ts(0), HELLO, ts(1)])]
    mel = np.zeros((2, 80, 3000), dtype=np.float32)
    full_model, stopped_model = FakeModel(replies(loop, short)), FakeModel(replies(loop, short))
    full = decode(full_model, mel)
    stopped = decode(stopped_model, mel, stop_loops=True)
    assert len(full[0].tokens) == 224  # written to the limit
    for a, b in zip(full, stopped):
        assert a.tokens == b.tokens and a.text == b.text
        assert a.compression_ratio == b.compression_ratio
        assert b.avg_logprob == pytest.approx(a.avg_logprob, rel=1e-12)
    assert stopped[0].compression_ratio > 2.4 and stopped[0].avg_logprob < -0.5  # still fails
    # the loop (" world" over and over, after <|0.00|> Hello) is caught once 24 written tokens
    # repeat it
    assert len(stopped_model.inferences[-1].fed) == MIN_LOOP_TOKENS + 2 < len(full_model.inferences[-1].fed)


def test_a_loop_that_would_break_off_is_written_out_as_a_loop():
    """The documented cost: a row that would have left its loop by itself is judged as if it
    had not (it falls back at a higher temperature, where the loop may well not start)."""
    mel = np.zeros((1, 80, 3000), dtype=np.float32)
    full = decode(FakeModel(replies(_loop_reply(breaks_after=60))), mel)[0]
    stopped = decode(FakeModel(replies(_loop_reply(breaks_after=60))), mel, stop_loops=True)[0]
    assert full.tokens[-2:] == [PERIOD, ts(2)] and len(full.tokens) == 64
    assert len(stopped.tokens) == 224 and set(stopped.tokens[2:]) == {WORLD}


def _closed_then_loop(after_pair: dict[int, float]) -> Script:
    """<|0.00|> Hello <|2.00|><|2.00|>, each with a known probability, then after_pair; in the
    loop's place (after_pair {WORLD: 0.9, ...}) " world" stays the likeliest for good."""
    closed = (ts(0), HELLO, ts(2), ts(2))
    branches = {(): {ts(0): 1.0}, closed[:1]: {HELLO: 0.8, WORLD: 0.2}, closed[:2]: {ts(2): 0.7, EOT: 0.3}}
    branches[closed[:3]] = {ts(2): 0.6, EOT: 0.4}
    for k in range(230):
        branches[closed + (WORLD,) * k] = after_pair
    return tree(branches)


def test_a_loop_after_a_closed_segment_keeps_the_text_before_it():
    """The row keeps its tokens up to the segment boundary before the loop, with the log
    probability it had there: what a row ending right at that boundary gets."""
    mel = np.zeros((1, 80, 3000), dtype=np.float32)
    looping = FakeModel(_closed_then_loop({WORLD: 0.9, EOT: 0.1}))
    stopped = decode(looping, mel, stop_loops=True)[0]
    ending_there = decode(FakeModel(_closed_then_loop({EOT: 1.0})), mel)[0]
    assert stopped.tokens == ending_there.tokens == [ts(0), HELLO, ts(2), ts(2)]
    assert stopped.avg_logprob == pytest.approx(ending_there.avg_logprob, rel=1e-12)
    assert stopped.text == "Hello" and stopped.compression_ratio < 2.4
    assert len(looping.inferences[-1].fed) == 4 + MIN_LOOP_TOKENS  # caught after 24 " world"s
    # not asked to stop, the loop runs to the limit
    assert len(decode(FakeModel(_closed_then_loop({WORLD: 0.9, EOT: 0.1})), mel)[0].tokens) == 224


@pytest.mark.usefixtures("fake_mel")
def test_transcribe_resumes_greedy_where_a_loop_began():
    """A window looping after a closed segment is not decoded again warmer: its closed segment
    stands and the next window starts at the boundary, at the first temperature."""
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, ts(2), ts(2), *[WORLD] * 300])],
            [Reply([ts(0), AGAIN, ts(1)])],
        )
    )
    result = transcribe(model, seconds_of_audio(10), stop_loops=True)
    assert segment_summary(result) == [(0, 0, 0.0, 2.0, " Hello"), (1, 200, 2.0, 3.0, " again")]
    assert [s["temperature"] for s in result["segments"]] == [0.0, 0.0]
    assert model.attempts == {0: 1, 1: 1}
    # without stop_loops the loop runs to the limit, fails, and is drawn again warmer
    plain = FakeModel(replies([Reply([ts(0), HELLO, ts(2), ts(2), *[WORLD] * 300])], [Reply([ts(0), AGAIN, ts(1)])]))
    transcribe(plain, seconds_of_audio(10))
    assert plain.attempts[0] == 6


@pytest.mark.usefixtures("fake_mel")
def test_after_a_loop_the_audio_is_read_with_beams_prompted_by_the_text_before_it():
    """resume_beam_size: the window resuming where a loop began uses beam search, prompted with
    the closed segment kept before the loop even though the windows are otherwise unprompted;
    the window after it is decoded like any other again."""
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, ts(2), ts(2), *[WORLD] * 300])],
            [Reply([ts(0), AGAIN, ts(1)])],  # a lone final timestamp: on to 30 s later
            [Reply([ts(0), ONE, ts(1)])],
        )
    )
    options = {"stop_loops": True, "resume_beam_size": 2, "condition_on_previous_text": False}
    result = transcribe(model, seconds_of_audio(40), **options)
    assert [s["text"] for s in result["segments"]] == [" Hello", " again", " one"]
    assert [s["seek"] for s in result["segments"]] == [0, 200, 3200]
    assert [inference.n_group for inference in model.inferences] == [1, 2, 1]
    prompts = [inference.fed[0][0].tolist() for inference in model.inferences]
    assert prompts == [[SOT], [TOKENIZER.sot_prev, ts(0), HELLO, ts(2), SOT], [SOT]]


@pytest.mark.parametrize("bad", [0, -1, 2.0, "2"])
def test_resume_beam_size_must_be_a_positive_whole_number(bad):
    with pytest.raises(ValueError, match="resume_beam_size"):
        transcribe(FakeModel(replies([Reply([ts(0), HELLO, ts(1)])])), seconds_of_audio(1), resume_beam_size=bad)


def test_beam_search_ignores_stop_loops():
    mel = np.zeros((1, 80, 3000), dtype=np.float32)
    plain = decode(FakeModel(replies(_loop_reply())), mel, beam_size=2)[0]
    asked = decode(FakeModel(replies(_loop_reply())), mel, beam_size=2, stop_loops=True)[0]
    assert asked.tokens == plain.tokens and len(asked.tokens) == 224


# --- multilingual models -------------------------------------------------------------------


@pytest.fixture(scope="module")
def multilingual_dir(tmp_path_factory):
    """GPT-2's tokens plus the empty token that multilingual vocabularies have at 50256."""
    tokens = (EN_DIR / "vocabulary.txt").read_text(encoding="utf-8").split("\n")
    directory = tmp_path_factory.mktemp("multilingual")
    (directory / "vocabulary.json").write_text(json.dumps(tokens[:50256] + ["", "<|endoftext|>"]))
    return directory


def german_model(multilingual_dir) -> tuple["FakeModel", int, list[int]]:
    """A multilingual fake model that hears German and answers one segment,
    the German language token, and the start of transcript it should get."""
    tokenizer = get_tokenizer(True, vocab_dir=multilingual_dir)
    german = tokenizer.to_language_token("de")
    ts0 = tokenizer.timestamp_begin
    reply = [Reply([ts0, HELLO, ts0 + 50])]
    script = replies(reply, reply, tokenizer=tokenizer, language=german)
    model = FakeModel(script, multilingual=True, tokenizer_dir=multilingual_dir, n_vocab=51865)
    return model, german, [tokenizer.sot, german, tokenizer.transcribe]


def test_detect_language_and_decode_in_the_detected_language(multilingual_dir):
    model, german, prompt = german_model(multilingual_dir)

    token, probs = detect_language(model, MEL)
    assert token == german
    assert max(probs, key=probs.get) == "de" and sum(probs.values()) == pytest.approx(1.0)
    assert len(probs) == 99

    result = decode(model, MEL)
    assert result.language == "de" and result.language_probs["de"] > 0.99
    assert model.inferences[-1].fed[0][0].tolist() == prompt
    assert result.text == "Hello"


# --- transcribe: windows, segments and seeking -----------------------------------------------


@pytest.fixture
def fake_mel(monkeypatch):
    """The log-mel kernel replaced by silence of the right shape: the fake model ignores it."""

    def log_mel_spectrogram(audio, n_mels=80, padding=0):
        return np.zeros((n_mels, (len(audio) + padding) // 160), dtype=np.float32)

    monkeypatch.setattr(transcribe_module, "log_mel_spectrogram", log_mel_spectrogram)


def seconds_of_audio(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * 16000), dtype=np.float32)


def segment_summary(result: dict) -> list[tuple]:
    return [(s["id"], s["seek"], s["start"], s["end"], s["text"]) for s in result["segments"]]


@pytest.mark.usefixtures("fake_mel")
def test_seek_follows_complete_segments_and_single_timestamp_endings():
    model = FakeModel(
        replies(
            # two closed segments, then one cut off by the window's end: resume at 4.0 s
            [Reply([ts(0), HELLO, ts(2), ts(2), WORLD, ts(4), ts(5), AND, THEN])],
            # a lone final timestamp: nothing more in this window, go on 30 s later
            [Reply([ts(0), AGAIN, ts(1.5)])],
            # the last 16 s: a pair, then a segment closed by a lone final timestamp
            [Reply([ts(0), ONE, ts(1), ts(1), TWO, ts(2)])],
        )
    )
    result = transcribe(model, seconds_of_audio(50), temperature=0.0)
    assert segment_summary(result) == [
        (0, 0, 0.0, 2.0, " Hello"),
        (1, 0, 2.0, 4.0, " world"),
        (2, 400, 4.0, 5.5, " again"),
        (3, 3400, 34.0, 35.0, " one"),
        (4, 3400, 35.0, 36.0, " two"),
    ]
    assert result["text"] == " Hello world again one two"
    assert result["language"] == "en"
    assert result["segments"][0]["tokens"] == [ts(0), HELLO, ts(2)]
    assert result["segments"][3]["temperature"] == 0.0
    assert set(result["segments"][0]) == {
        "id", "seek", "start", "end", "text", "tokens", "temperature", "avg_logprob",
        "compression_ratio", "no_speech_prob",
    }  # fmt: skip
    # each window is prompted with the text so far
    prompts = [inference.fed[0][0].tolist() for inference in model.inferences]
    assert prompts[1] == [TOKENIZER.sot_prev, ts(0), HELLO, ts(2), ts(2), WORLD, ts(4), SOT]
    assert prompts[2][-2:] == [ts(1.5), SOT]


@pytest.mark.usefixtures("fake_mel")
def test_window_without_timestamp_pairs_ends_at_its_last_timestamp():
    model = FakeModel(replies([Reply([ts(0), HELLO, WORLD, ts(7.5)])]))
    result = transcribe(model, seconds_of_audio(10), temperature=0.0)
    assert segment_summary(result) == [(0, 0, 0.0, 7.5, " Hello world")]


@pytest.mark.usefixtures("fake_mel")
def test_condition_on_previous_text_off_prompts_nothing():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(2)])], [Reply([ts(0), WORLD, ts(2)])]))
    transcribe(model, seconds_of_audio(40), condition_on_previous_text=False, initial_prompt="one")
    prompts = [inference.fed[0][0].tolist() for inference in model.inferences]
    assert prompts == [[TOKENIZER.sot_prev, ONE, SOT], [SOT]]


@pytest.mark.usefixtures("fake_mel")
def test_silent_window_is_skipped():
    model = FakeModel(
        replies(
            # probably no speech (0.98 > 0.6) and improbable text: skipped, no fallback
            [Reply([ts(0), HELLO, WORLD, ts(1)], rivals=400, no_speech=40.0)],
            # probably no speech (0.73), but confident text: kept
            [Reply([ts(0), AGAIN, ts(1)], no_speech=31.0)],
        )
    )
    result = transcribe(model, seconds_of_audio(40))
    assert segment_summary(result) == [(0, 3000, 30.0, 31.0, " again")]
    assert model.attempts == {0: 1, 1: 1}
    assert result["segments"][0]["no_speech_prob"] > 0.6


@pytest.mark.usefixtures("fake_mel")
def test_temperature_fallback_on_low_log_probability_and_repetition():
    model = FakeModel(
        replies(
            [
                Reply([ts(0), HELLO, WORLD, AGAIN, ts(1)], rivals=400),  # avg_logprob < -1
                Reply([ts(0), *[THE] * 60, ts(5)]),  # compression ratio > 2.4
                Reply([ts(0), HELLO, ts(1)]),
            ],
        )
    )
    result = transcribe(model, seconds_of_audio(5), beam_size=2, best_of=3)
    assert [s["text"] for s in result["segments"]] == [" Hello"]
    assert result["segments"][0]["temperature"] == 0.4
    assert model.n_encoded == 1  # one encoding serves every attempt
    # beam search at T=0, best-of-3 sampling above it
    assert [inference.n_group for inference in model.inferences] == [2, 3, 3]


FALLBACK_SCRIPT = [
    Reply([ts(0), HELLO, WORLD, AGAIN, ts(1)], rivals=400),  # avg_logprob < -1
    Reply([ts(0), *[THE] * 60, ts(5)]),  # compression ratio > 2.4
    Reply([ts(0), HELLO, ts(1)]),
    Reply([ts(0), WORLD, ts(1)]),
]


@pytest.mark.usefixtures("fake_mel")
@pytest.mark.parametrize("parallel, best_of, groups", [(2, 3, [1, 6]), (3, 3, [1, 9]), (3, None, [1, 3])])
def test_parallel_fallback_keeps_what_trying_in_turn_keeps(parallel, best_of, groups):
    in_turn = FakeModel(replies(FALLBACK_SCRIPT))
    at_once = FakeModel(replies(FALLBACK_SCRIPT), draws_per_attempt=best_of or 1)
    expected = transcribe(in_turn, seconds_of_audio(5), best_of=best_of)["segments"]
    found = transcribe(at_once, seconds_of_audio(5), best_of=best_of, parallel_fallback=parallel)["segments"]
    summary = [(s["text"], s["temperature"], s["avg_logprob"], s["compression_ratio"]) for s in expected]
    assert summary == [(" Hello", 0.4, pytest.approx(found[0]["avg_logprob"]), found[0]["compression_ratio"])]
    assert [(s["text"], s["temperature"]) for s in found] == [(" Hello", 0.4)]
    # greedy at 0, then 0.2 and 0.4 (and 0.6) drawn in one pass of best_of rows each
    assert [inference.n_group for inference in at_once.inferences] == groups
    assert [inference.n_group for inference in in_turn.inferences] == [1, best_of or 1, best_of or 1]


@pytest.mark.usefixtures("fake_mel")
def test_parallel_fallback_goes_on_when_every_temperature_of_a_pass_fails():
    script = [*FALLBACK_SCRIPT[:2], FALLBACK_SCRIPT[1], FALLBACK_SCRIPT[1], FALLBACK_SCRIPT[3]]
    model = FakeModel(replies(script), draws_per_attempt=1)
    temperatures = (0.0, 0.2, 0.4, 0.6, 0.8)
    result = transcribe(model, seconds_of_audio(5), temperature=temperatures, parallel_fallback=2)
    assert [(s["text"], s["temperature"]) for s in result["segments"]] == [(" world", 0.8)]
    assert [inference.n_group for inference in model.inferences] == [1, 2, 2]  # 0 | 0.2 0.4 | 0.6 0.8


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_parallel_fallback_must_be_a_count(bad):
    with pytest.raises(ValueError, match="parallel_fallback"):
        transcribe(FakeModel(replies(FALLBACK_SCRIPT)), seconds_of_audio(5), parallel_fallback=bad)


@pytest.mark.usefixtures("fake_mel")
def test_fallback_keeps_the_last_result_when_every_temperature_fails():
    model = FakeModel(
        replies(
            [Reply([ts(0), HELLO, WORLD, AGAIN, ts(1)], rivals=400)],
            [Reply([ts(0), ONE, ts(1)])],
        )
    )
    result = transcribe(model, seconds_of_audio(40), temperature=(0.0, 0.6), seed=0)
    first, second = result["segments"]
    assert first["temperature"] == 0.6 and first["avg_logprob"] < -1
    assert second["temperature"] == 0.0
    # text sampled above temperature 0.5 does not prompt the next window
    assert [inference.fed[0][0].tolist() for inference in model.inferences][-1] == [SOT]


@pytest.mark.usefixtures("fake_mel")
def test_clip_timestamps_limit_the_windows():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(2)])], [Reply([ts(0), WORLD, ts(1)])]))
    result = transcribe(model, seconds_of_audio(60), clip_timestamps="5,8,40")
    assert segment_summary(result) == [
        (0, 500, 5.0, 7.0, " Hello"),
        (1, 4000, 40.0, 41.0, " world"),
    ]


@pytest.mark.usefixtures("fake_mel")
def test_blank_segments_keep_their_place_without_text():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1), ts(1), BLANK, ts(2)])]))
    result = transcribe(model, seconds_of_audio(5))
    assert [(s["start"], s["end"], s["text"], s["tokens"]) for s in result["segments"]] == [
        (0.0, 1.0, " Hello", [ts(0), HELLO, ts(1)]),
        (1.0, 2.0, "", []),
    ]
    assert "words" not in result["segments"][1]


@pytest.mark.usefixtures("fake_mel")
def test_english_only_model_refuses_other_languages_and_translation():
    model = FakeModel(tree({}))
    with pytest.raises(ValueError, match="English-only"):
        transcribe(model, seconds_of_audio(1), language="de")
    with pytest.raises(ValueError, match="cannot translate"):
        transcribe(model, seconds_of_audio(1), task="translate")
    assert model.n_encoded == 0


@pytest.mark.usefixtures("fake_mel")
def test_word_timestamps_need_cross_attention_weights():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])]))
    with pytest.raises(NotImplementedError, match="cross-attention"):
        transcribe(model, seconds_of_audio(2), word_timestamps=True)


@pytest.mark.usefixtures("fake_mel")
def test_multilingual_transcribe_detects_the_language_once(multilingual_dir):
    model, _, prompt = german_model(multilingual_dir)
    result = transcribe(model, seconds_of_audio(5))
    assert result["language"] == "de"
    assert model.n_encoded == 2  # the detection window, then the decoded one
    assert model.inferences[-1].fed[0][0].tolist() == prompt


def test_transcribe_with_the_log_mel_kernel():
    model = FakeModel(replies([Reply([ts(0), HELLO, ts(1)])]))
    result = transcribe(model, seconds_of_audio(3))
    assert segment_summary(result) == [(0, 0, 0.0, 1.0, " Hello")]


WRITTEN = st.sampled_from([HELLO, WORLD, ts(0.0), ts(0.5), ts(1.0), ts(2.0)])


@given(
    # rows of one length (a batch's rows have written as many tokens)
    st.integers(0, 4).flatmap(
        lambda n: st.lists(st.lists(WRITTEN, min_size=n, max_size=n), min_size=2, max_size=5)
    ),
    st.integers(0, 2**32 - 1),
)
def test_timestamp_rules_treat_each_row_of_a_batch_as_if_alone(rows, seed):
    # the rules run over all rows at once; a row's mask must not depend on its neighbours
    logits = np.random.default_rng(seed).normal(0.0, 3.0, (len(rows), N_VOCAB))
    batch = logits.copy()
    timestamp_rules().apply(batch, np.array([[SOT, *row] for row in rows]))
    for k, row in enumerate(rows):
        alone = logits[k : k + 1].copy()
        timestamp_rules().apply(alone, np.array([[SOT, *row]]))
        np.testing.assert_array_equal(batch[k], alone[0])
