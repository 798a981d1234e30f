"""The int8 decoder's cross-attention (kernels/attention_int8kv.mojo) against NumPy float64
attention over the dequantized keys and values, and the encoder graph's row quantization
(graph/layers.cross_kv) against the definition written in NumPy."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from maxwhisper_kernels import ops


def check(q, k, v, scale=None):
    kq, ks = reference.quantize_rows(k)
    vq, vs = reference.quantize_rows(v)
    out = ops.attention_int8kv(q, kq, ks, vq, vs, scale=scale)
    keys, values = kq * ks[..., None].astype(np.float64), vq * vs[..., None].astype(np.float64)
    group = q.shape[0] // k.shape[0]
    expected = reference.attention(q, np.repeat(keys, group, 0), np.repeat(values, group, 0), scale=scale)
    np.testing.assert_allclose(out, expected, rtol=1e-4, atol=1e-4 * float(np.abs(values).max() + 1e-30))


@given(
    st.integers(1, 2),
    st.sampled_from([1, 3, 5]),
    st.integers(1, 3),
    st.integers(1, 12),
    st.integers(1, 120),
    st.sampled_from([64, 8, 16, 3]),
    st.integers(0, 2**32 - 1),
)
def test_matches_attention_over_the_dequantized_rows(bk, group, h, tq, tk, d, seed):
    """Few query rows a head (steps, beams: the direct path with scales) and more (a prompt:
    dequantized once, then the float32 paths); head sizes off the vector width go the latter way."""
    rng = np.random.default_rng(seed)
    q = rng.standard_normal((bk * group, h, tq, d)).astype(np.float32)
    # rows of very different ranges: each keeps its own scale
    k = (rng.standard_normal((bk, h, tk, d)) * rng.uniform(0.01, 20, (bk, h, tk, 1))).astype(np.float32)
    v = (rng.standard_normal((bk, h, tk, d)) * rng.uniform(0.01, 20, (bk, h, tk, 1))).astype(np.float32)
    check(q, k, v)


@pytest.mark.parametrize("tq, tk", [(1, 1500), (5, 1500), (1, 1), (1, 13), (9, 1500)])
def test_whisper_lengths_and_a_zero_row(tq, tk):
    rng = np.random.default_rng(tq * 7 + tk)
    q = rng.standard_normal((2, 6, tq, 64)).astype(np.float32) * 3
    k, v = (rng.standard_normal((1, 6, tk, 64)).astype(np.float32) * 4 for _ in range(2))
    k[0, 0, -1] = 0  # a silent row: scale 0, dequantized to zeros
    v[0, 1, 0] = 0
    check(q, k, v, scale=0.125)


def test_the_graph_quantizes_rows_as_defined():
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType

    from maxwhisper_kernels.cpu_device import cpu_session
    from maxwhisper_kernels.graph.layers import cross_kv

    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 40, 6 * 64)) * rng.uniform(0.001, 30, (2, 40, 1))).astype(np.float32)
    x[1, 5] = 0
    x[0, 3, :64] = 0  # one head of one position
    with Graph("cross_kv_test", input_types=[TensorType(DType.float32, [2, 40, 6 * 64], DeviceRef.CPU())]) as graph:
        graph.output(*cross_kv(graph.inputs[0].tensor, 6, int8=True))
    quantized, scale = (out.to_numpy() for out in cpu_session().load(graph).execute(x))
    heads = x.reshape(2, 40, 6, 64).transpose(0, 2, 1, 3)
    want_q, want_scale = reference.quantize_rows(heads)
    # MAX may divide by 127 as a multiply by its reciprocal: a float32 ulp apart at most, which
    # can move a value lying on a rounding half by one step, in a handful of places
    np.testing.assert_allclose(scale, want_scale, rtol=2.5e-7, atol=0)
    assert (scale[want_scale == 0] == 0).all()
    assert quantized.dtype == np.int8 and quantized.shape == want_q.shape
    assert np.abs(quantized.astype(np.int16) - want_q).max() <= 1
    assert (quantized != want_q).mean() < 1e-3
    assert (np.abs(quantized).max(axis=-1)[want_scale > 0] == 127).all()
    assert (quantized[want_scale == 0] == 0).all()


@pytest.mark.parametrize(
    "k, k_scale, match",
    [
        (np.ones((1, 2, 5, 8), np.float32), np.ones((1, 2, 5), np.float32), "int8"),
        (np.ones((1, 2, 5, 8), np.int8), np.ones((1, 2, 4), np.float32), "shapes must match"),
        (np.ones((1, 3, 5, 8), np.int8), np.ones((1, 3, 5), np.float32), "must agree"),
    ],
)
def test_bad_input_raises(k, k_scale, match):
    q = np.ones((2, 2, 1, 8), np.float32)
    with pytest.raises(ValueError, match=match):
        ops.attention_int8kv(q, k, k_scale, k, k_scale)
