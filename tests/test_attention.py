import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from maxwhisper_kernels import ops
from strategies import arrays


def check(q, k, v, causal=False, scale=None):
    out = ops.attention(q, k, v, causal=causal, scale=scale)
    expected = reference.attention(q, k, v, causal=causal, scale=scale)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * float(np.abs(v).max()))


@st.composite
def attention_inputs(draw):
    b, h = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    d = draw(st.sampled_from([64, 1, 3, 8, 16, 40, 80, 128]))
    causal = draw(st.booleans())
    tq = draw(st.integers(1, 80))
    tk = draw(st.integers(tq if causal else 1, 200))
    # Large q/k magnitudes make the softmax peaky: the online max must cope.
    q = draw(arrays((b, h, tq, d), 1e-2, 4))
    k = draw(arrays((b, h, tk, d), 1e-2, 4))
    v = draw(arrays((b, h, tk, d), 1e-2, 1e2))
    scale = draw(st.none() | st.floats(0.01, 2.0))
    return q, k, v, causal, scale


@given(attention_inputs())
def test_attention_matches_reference(inputs):
    check(*inputs)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("tq, tk", [(1, 1), (1, 448), (1, 1500), (65, 65), (64, 129), (7, 7)])
def test_edge_lengths(tq, tk, causal):
    rng = np.random.default_rng(tq * 1000 + tk)
    q, k, v = (rng.standard_normal((1, 2, t, 64)).astype(np.float32) for t in (tq, tk, tk))
    check(q, k, v, causal=causal)


def test_causal_square_is_lower_triangular():
    # With Tq = Tk, query 0 sees only key 0: its output is exactly v[0].
    rng = np.random.default_rng(3)
    q, k, v = (rng.standard_normal((1, 1, 9, 64)).astype(np.float32) for _ in range(3))
    out = ops.attention(q, k, v, causal=True)
    np.testing.assert_allclose(out[0, 0, 0], v[0, 0, 0], rtol=1e-6)
    check(q, k, v, causal=True)


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize(
    "audios, group, heads, keys",
    # 2 audios x 3 beams over a short cache; then the decoder's cross-attention, a few rows
    # per audio over 1500 keys of 6 heads: enough work to run in parallel, where each thread
    # takes one run of (audio, head) items
    [(2, 3, 2, 30), (8, 1, 6, 1500), (3, 5, 6, 1500), (1, 2, 6, 1500)],
)
def test_key_rows_shared_by_groups_of_queries(audios, group, heads, keys, causal):
    # Consecutive query rows of one audio (its beams) read that audio's one key/value row.
    rng = np.random.default_rng(audios * 10 + group)
    q = rng.standard_normal((audios * group, heads, 1, 64)).astype(np.float32)
    k, v = (rng.standard_normal((audios, heads, keys, 64)).astype(np.float32) for _ in range(2))
    out = ops.attention(q, k, v, causal=causal)
    expected = reference.attention(q, np.repeat(k, group, axis=0), np.repeat(v, group, axis=0), causal=causal)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4)


def test_whisper_encoder_shape():
    rng = np.random.default_rng(4)
    q, k, v = (rng.standard_normal((1, 6, 1500, 64)).astype(np.float32) for _ in range(3))
    check(q, k, v)


@pytest.mark.parametrize(
    "shapes, causal, match",
    [
        (((1, 2, 3, 8), (1, 2, 4, 8), (1, 2, 4, 8)), True, None),
        (((1, 2, 3), (1, 2, 4, 8), (1, 2, 4, 8)), False, "dimensions"),
        (((1, 2, 3, 8), (1, 2, 4, 8), (1, 2, 5, 8)), False, "shapes must match"),
        (((1, 2, 3, 8), (1, 3, 4, 8), (1, 3, 4, 8)), False, "must agree"),
        (((3, 2, 3, 8), (2, 2, 4, 8), (2, 2, 4, 8)), False, "must divide"),
        (((1, 2, 5, 8), (1, 2, 4, 8), (1, 2, 4, 8)), True, "at least as many keys"),
    ],
)
def test_bad_shapes(shapes, causal, match):
    q, k, v = (np.zeros(s, np.float32) for s in shapes)
    if match is None:
        assert ops.attention(q, k, v, causal=causal).shape == q.shape
    else:
        with pytest.raises(ValueError, match=match):
            ops.attention(q, k, v, causal=causal)


def test_integer_input_raises():
    x = np.zeros((1, 1, 2, 4), np.int64)
    with pytest.raises(ValueError, match="floating-point"):
        ops.attention(x, x, x)
