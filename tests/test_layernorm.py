import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from maxwhisper_kernels import ops
from strategies import arrays

TOL = dict(rtol=2e-4, atol=2e-4)


@st.composite
def layer_norm_inputs(draw):
    rows = draw(st.integers(1, 64))
    cols = draw(st.sampled_from([1, 2, 7, 8, 33, 384, 512]) | st.integers(1, 600))
    x = draw(arrays((rows, cols), 1e-3, 1e4))
    # A common offset up to 100x the spread: beyond that fp32 cannot hold
    # the deviations, whatever the kernel does.
    offset = draw(st.floats(-100, 100)) * float(np.abs(x).max() + 1e-30)
    weight = draw(arrays((cols,), 0.1, 3))
    bias = draw(arrays((cols,), 0.1, 3))
    return (x + np.float32(offset)).astype(np.float32), weight, bias


@given(layer_norm_inputs())
def test_layer_norm_matches_reference(inputs):
    x, weight, bias = inputs
    np.testing.assert_allclose(
        ops.layer_norm(x, weight, bias), reference.layer_norm(x, weight, bias), **TOL
    )


@given(layer_norm_inputs(), st.data())
def test_add_layer_norm_matches_reference(inputs, data):
    x, weight, bias = inputs
    residual = data.draw(arrays(x.shape, 1e-3, 1e2))
    y, total = ops.add_layer_norm(x, residual, weight, bias)
    np.testing.assert_array_equal(total, x + residual)
    np.testing.assert_allclose(y, reference.layer_norm(x + residual, weight, bias), **TOL)


@pytest.mark.parametrize("value", [0.0, 1.0, -3.5, 1e6])
def test_constant_rows_give_the_bias(value):
    x = np.full((5, 384), value, dtype=np.float32)
    bias = np.linspace(-1, 1, 384, dtype=np.float32)
    y = ops.layer_norm(x, np.full(384, 2.0, np.float32), bias)
    np.testing.assert_array_equal(y, np.broadcast_to(bias, x.shape))


def test_leading_axes_are_kept():
    x = np.random.default_rng(1).standard_normal((2, 3, 4, 16)).astype(np.float32)
    w, b = np.ones(16, np.float32), np.zeros(16, np.float32)
    y = ops.layer_norm(x, w, b)
    assert y.shape == x.shape
    np.testing.assert_allclose(y, reference.layer_norm(x, w, b), **TOL)


def test_whisper_shapes():
    rng = np.random.default_rng(2)
    for rows in (1, 1500):
        x = rng.standard_normal((rows, 384)).astype(np.float32)
        w = rng.standard_normal(384).astype(np.float32)
        b = rng.standard_normal(384).astype(np.float32)
        np.testing.assert_allclose(ops.layer_norm(x, w, b), reference.layer_norm(x, w, b), **TOL)


@pytest.mark.parametrize(
    "x, weight, match",
    [
        (np.ones((2, 4), np.int32), np.ones(4), "floating-point"),
        (np.ones((2, 4)), np.ones(5), "must be"),
        (np.ones((2, 4)), np.ones((1, 4)), "dimensions"),
    ],
)
def test_bad_input_raises(x, weight, match):
    with pytest.raises(ValueError, match=match):
        ops.layer_norm(x, weight, np.zeros(np.shape(weight)[-1]))


def test_mismatched_residual_raises():
    with pytest.raises(ValueError, match="shapes must match"):
        ops.add_layer_norm(np.ones((2, 4)), np.ones((3, 4)), np.ones(4), np.zeros(4))
