"""The token_scores kernel (kernels/token_scores.mojo) against the op written out in NumPy from
its definition (reference.token_scores), and against decoding's own NumPy path (TokenRules.apply,
log_normalisers, top_tokens) on the rules of real decoding states."""

import numpy as np
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st

from maxwhisper_kernels import ops
from maxwhisper_kernels.decoding import TokenRules, top_tokens
from maxwhisper_kernels.decoding.rules import TO_THE_END, token_rules
from maxwhisper_kernels.decoding.search import log_normalisers
from maxwhisper_kernels.tokenizer import get_tokenizer


def check(logits, bars, suppressed, first_timestamp, k):
    filtered, top, stats = ops.token_scores(logits, bars, suppressed, first_timestamp, k)
    want_filtered, want_top, want_stats = reference.token_scores(logits, bars, suppressed, first_timestamp, k)
    assert np.array_equal(filtered, want_filtered)
    assert top.tolist() == want_top.tolist()
    assert np.array_equal(stats[:, 0], want_stats[:, 0])
    # float32 exponentials summed in float64: within a few float32 ulps of the float64 sum
    np.testing.assert_allclose(stats[:, 1], want_stats[:, 1], rtol=0, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(1, 7),
    st.sampled_from([3, 17, 100, 1000, 51864]),
    st.sampled_from([1, 6, 16]),  # each k is a graph of its own: a few keep the compiles few
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.01, 1.0, 8.0]),
)
def test_token_scores_match_the_definition(rows, vocab, k, seed, spread):
    rng = np.random.default_rng(seed)
    k = min(k, vocab)
    # coarse values so that ties, which order by id, occur
    logits = (np.round(rng.normal(0, spread, (rows, vocab)) * 4) / 4).astype(np.float32)
    n_bars = int(rng.integers(0, 4))
    bars = np.sort(rng.integers(-5, vocab + 5, (rows, n_bars, 2)), axis=-1)
    bars[:, :, 1] = np.where(rng.random((rows, n_bars)) < 0.2, TO_THE_END, bars[:, :, 1])
    suppressed = rng.choice(vocab, int(rng.integers(0, min(vocab, 40))), replace=False)
    first_timestamp = int(rng.integers(1, vocab)) if rng.random() < 0.6 else -1
    check(logits, bars, suppressed, first_timestamp, k)


def test_rows_with_fewer_allowed_tokens_than_k_rank_the_barred_by_id():
    logits = np.arange(40, dtype=np.float32)[None].repeat(2, 0)
    bars = np.array([[[3, 40]], [[0, 38]]])
    check(logits, bars, np.array([1]), -1, 6)


def test_timestamps_outweighing_the_best_text_bar_the_text():
    """Many equal timestamps together beat one slightly better text token: log(1501) = 7.31."""
    logits = np.zeros((2, 51864), dtype=np.float32)
    logits[:, 220] = [7.2, 7.4]
    filtered, top, _ = ops.token_scores(logits, np.zeros((2, 0, 2)), np.zeros(0), 50363, 6)
    assert np.isneginf(filtered[0, :50363]).all() and top[0].tolist() == list(range(50363, 50369))
    assert np.isfinite(filtered[1]).all() and top[1, 0] == 220


@pytest.fixture(scope="module")
def decoding_rules() -> TokenRules:
    tokenizer = get_tokenizer(False)
    return token_rules(
        tokenizer, 3, suppress_blank=True, suppress_tokens="-1", timestamps=True, latest_start=50
    )


def written_states(ts: int, eot: int) -> list[list[int]]:
    """Token histories after the prompt that reach every branch of the timestamp grammar."""
    return [
        [],
        [ts + 10],
        [ts + 10, 400],
        [ts + 10, 400, ts + 60],
        [ts + 10, 400, ts + 60, ts + 60],
        [ts + 10, 400, 500, 600, ts + 90, ts + 95, 700],
    ]


def test_kernel_and_numpy_paths_agree_on_real_rules(decoding_rules):
    """What decoding does in NumPy where the model has no token_scores (the GPU, the test
    fakes) and what the CPU graph does give the same filtered logits, ranking and normalisers."""
    rules = decoding_rules
    rng = np.random.default_rng(7)
    for written in written_states(rules.first_timestamp, rules.eot):
        tokens = np.array([[50257, 50362, 50363][: rules.sample_begin] + written] * 5)
        for spread in (2.0, 6.0):
            logits = rng.normal(0, spread, (5, 51864)).astype(np.float32)
            last_open_end = np.array([-1, 0, 40, 80, 200])
            bars = rules.bars(tokens, last_open_end)
            filtered, top, stats = ops.token_scores(
                logits, bars, rules.barred_everywhere, rules.first_timestamp, 6
            )
            numpy_path = logits.copy()
            rules.apply(numpy_path, tokens, last_open_end)
            assert np.array_equal(filtered, numpy_path)
            assert top.tolist() == top_tokens(numpy_path, 6).tolist()
            peaks, normalisers = log_normalisers(numpy_path)
            assert np.array_equal(stats[:, 0], peaks)
            np.testing.assert_allclose(stats[:, 1], normalisers, rtol=0, atol=1e-6)


def test_token_scores_refuses_a_top_wider_than_it_keeps():
    with pytest.raises(ValueError, match="k"):
        ops.token_scores(np.zeros((1, 100)), np.zeros((1, 0, 2)), np.zeros(0), -1, 33)
