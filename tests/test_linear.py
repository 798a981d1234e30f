import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from maxwhisper_kernels import ops
from strategies import arrays


@st.composite
def linear_inputs(draw):
    m = draw(st.integers(1, 12))
    k = draw(st.sampled_from([384, 1536, 1, 3, 17, 64]) | st.integers(1, 700))
    n = draw(st.sampled_from([1, 3, 4, 5, 255, 256, 257, 1152]) | st.integers(1, 1200))
    x = draw(arrays((m, k), 1e-2, 10))
    w = draw(arrays((n, k), 1e-2, 1))
    if draw(st.booleans()):
        w = w.astype(np.float16)
    bias = draw(st.none() | arrays((n,), 1e-2, 1))
    return x, w, bias


@given(linear_inputs())
def test_linear_matches_reference(inputs):
    x, w, bias = inputs
    w64 = w.astype(np.float64)
    expected = x.astype(np.float64) @ w64.T
    if bias is not None:
        expected += bias
    scale = np.abs(x).astype(np.float64) @ np.abs(w64).T + 1e-30
    got = ops.linear(x, w, bias)
    assert got.dtype == np.float32
    # fp32 accumulation: error relative to the sum of |products|.
    assert np.all(np.abs(got - expected) <= 1e-5 * scale + 1e-6)


@given(linear_inputs())
def test_a_row_comes_out_the_same_in_any_batch(inputs):
    """Batched decoding (windows, beams) is exact only if a row's output does not depend on
    the rows beside it: the row tiles must sum the same products in the same order."""
    x, w, bias = inputs
    together = ops.linear(x, w, bias)
    for m in range(len(x)):
        np.testing.assert_array_equal(ops.linear(x[m : m + 1], w, bias)[0], together[m])


def test_whisper_vocabulary_projection():
    rng = np.random.default_rng(8)
    x = rng.standard_normal((5, 384)).astype(np.float32)
    w = rng.standard_normal((51864, 384)).astype(np.float16)
    expected = x.astype(np.float64) @ w.astype(np.float64).T
    np.testing.assert_allclose(ops.linear(x, w), expected, rtol=0, atol=1e-3)


@pytest.mark.parametrize(
    "x, w, match",
    [
        (np.ones((2, 4), np.float32), np.ones((3, 5), np.float32), "do not fit"),
        (np.ones((2, 4), np.float32), np.ones((3, 4), np.int16), "float16 or float32"),
        (np.ones((2, 4), np.float32), np.ones((3, 4), np.int8), "float16 or float32"),
        (np.ones(4, np.float32), np.ones((3, 4), np.float32), "dimensions"),
    ],
)
def test_bad_input_raises(x, w, match):
    with pytest.raises(ValueError, match=match):
        ops.linear(x, w)
