"""Picking tokens (decoding/search.py): log-softmax, greedy and temperature sampling,
candidate ranking and beam search, and decode / decode_batch on top of them; checked against
the definitions (hypothesis) and against results worked out by hand from the scripted fake
model's probabilities."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from decoding_script import (
    AGAIN,
    EOT,
    HELLO,
    MEL,
    NO_TIMESTAMPS,
    N_VOCAB,
    ONE,
    PERIOD,
    SOT,
    THE,
    TOKENIZER,
    WORLD,
    FakeModel,
    Reply,
    replies,
    tree,
    ts,
)
from maxwhisper_kernels.decoding import (
    BeamSearch,
    DecodingOptions,
    Sampler,
    best_candidates,
    chosen_log_probs,
    compression_ratio,
    decode,
    log_softmax,
    plan_decoding,
    top_tokens,
)
from maxwhisper_kernels.decoding.search import draw


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
