"""The in-place KV cache attention op (kernels/kv_cache.mojo) against NumPy:
the cache gathered through the lineage, then float64 causal attention."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from maxwhisper_kernels import ops


def expected_after(q, k, v, k_cache, v_cache, slots, lineage, scale=None):
    """(output, caches after the stores) computed independently of the op."""
    past = lineage.shape[1] - q.shape[2]
    k_cache, v_cache = k_cache.copy(), v_cache.copy()
    for b, slot in enumerate(slots):
        k_cache[slot, :, past : past + q.shape[2]] = k[b]
        v_cache[slot, :, past : past + q.shape[2]] = v[b]
    positions = np.arange(lineage.shape[1])
    keys = np.stack([k_cache[lineage[b], :, positions].transpose(1, 0, 2) for b in range(len(q))])
    values = np.stack([v_cache[lineage[b], :, positions].transpose(1, 0, 2) for b in range(len(q))])
    return reference.attention(q, keys, values, causal=True, scale=scale), k_cache, v_cache


@st.composite
def cache_inputs(draw):
    rows = draw(st.integers(1, 5))  # cache rows
    b = draw(st.integers(1, rows))
    h = draw(st.integers(1, 3))
    d = draw(st.sampled_from([64, 1, 5, 16, 24]))
    ctx = draw(st.integers(1, 40))
    t = draw(st.integers(1, ctx))
    past = draw(st.integers(0, ctx - t))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    q, k, v = (rng.standard_normal((b, h, t, d)).astype(np.float32) * 2 for _ in range(3))
    k_cache, v_cache = (rng.standard_normal((rows, h, ctx, d)).astype(np.float32) for _ in range(2))
    slots = rng.permutation(rows)[:b]
    # history: any cache row per earlier position; the new positions are the row's own slot
    lineage = np.concatenate([rng.integers(0, rows, (b, past)), np.repeat(slots[:, None], t, axis=1)], axis=1)
    return q, k, v, k_cache, v_cache, slots, lineage


@given(cache_inputs())
def test_cached_attention_matches_reference(inputs):
    q, k, v, k_cache, v_cache, slots, lineage = inputs
    out_expected, k_expected, v_expected = expected_after(*inputs)
    out = ops.cached_attention(q, k, v, k_cache, v_cache, slots, lineage)
    np.testing.assert_allclose(out, out_expected, rtol=1e-4, atol=1e-4 * float(np.abs(v_expected).max()))
    np.testing.assert_array_equal(k_cache, k_expected)  # stored where the slots say, nothing else touched
    np.testing.assert_array_equal(v_cache, v_expected)


def test_beams_share_a_prompt_row_and_diverge():
    # Whisper-sized heads: one prompt pass into row 0, then 3 beams continue it.
    rng = np.random.default_rng(1)
    k_cache, v_cache = (np.zeros((3, 6, 448, 64), np.float32) for _ in range(2))
    prompt = [rng.standard_normal((1, 6, 200, 64)).astype(np.float32) for _ in range(3)]
    ops.cached_attention(*prompt, k_cache, v_cache, np.array([0]), np.zeros((1, 200), np.int64))
    step = [rng.standard_normal((3, 6, 1, 64)).astype(np.float32) for _ in range(3)]
    lineage = np.concatenate([np.zeros((3, 200), np.int64), np.arange(3)[:, None]], axis=1)
    inputs = (*step, k_cache.copy(), v_cache.copy(), np.arange(3), lineage)
    out_expected, _, _ = expected_after(*inputs)
    out = ops.cached_attention(*step, k_cache, v_cache, np.arange(3), lineage)
    np.testing.assert_allclose(out, out_expected, rtol=1e-4, atol=1e-5)


def test_positions_beyond_the_cache_are_refused():
    q = np.zeros((1, 1, 2, 8), np.float32)
    k_cache = np.zeros((1, 1, 4, 8), np.float32)
    with pytest.raises(Exception, match="cache of 4"):
        ops.cached_attention(q, q, q, k_cache, k_cache.copy(), np.array([0]), np.zeros((1, 5), np.int64))
