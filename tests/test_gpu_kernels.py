"""The kernels' GPU branches, run on a GPU: the CPU tests' hypothesis
strategies against the same float64 NumPy references. Skipped where MAX
finds no GPU (the CI machines); tests/test_gpu_check.py compile-checks the
same code there.

GPU tolerances are looser than the CPU's, and on purpose: attention's
softmax runs on exp2 (ex2.approx, about 2 ulp) with q pre-scaled by
scale * log2(e); log_mel sums its 400-term DFTs directly in fp32 where the
CPU folds them with float64 tables; layernorm and linear accumulate in fp32
in another order (block and warp trees)."""

import numpy as np
import pytest
from hypothesis import given
from max.driver import accelerator_count

import reference
from maxwhisper_kernels import ops
from test_attention import attention_inputs
from test_kv_cache import cache_inputs, expected_after
from test_layernorm import layer_norm_inputs
from test_linear import linear_inputs

pytestmark = pytest.mark.skipif(
    accelerator_count() == 0, reason="no GPU here: MAX's accelerator_count() is 0 (CI compile-checks the GPU path; scripts/gpu_lease.sh runs these tests on a lent GPU)"
)

ATTENTION_TOL = 1e-3  # relative, and absolute times max |v|
LOG_MEL_TOL = 1e-3  # absolute, after Whisper's (x + 4) / 4
LAYER_NORM_TOL = dict(rtol=5e-4, atol=5e-4)


@given(attention_inputs())
def test_attention_on_gpu(inputs):
    q, k, v, causal, scale = inputs
    with ops.on_gpu():
        out = ops.attention(q, k, v, causal=causal, scale=scale)
    expected = reference.attention(q, k, v, causal=causal, scale=scale)
    np.testing.assert_allclose(out, expected, rtol=ATTENTION_TOL, atol=ATTENTION_TOL * float(np.abs(v).max()))


@pytest.mark.parametrize("causal", [False, True])
@pytest.mark.parametrize("b, bk, tq, tk", [(1, 1, 1500, 1500), (5, 1, 1, 1500), (6, 2, 3, 40), (2, 2, 17, 17), (1, 1, 65, 200)])
def test_attention_whisper_shapes_on_gpu(b, bk, tq, tk, causal):
    # Both kernels (split: <= 16 rows per head, tiled: more), beams sharing
    # keys, tails that fill neither a 64-row block nor a 32-key tile.
    rng = np.random.default_rng(b * 7 + tq)
    q = rng.standard_normal((b, 6, tq, 64)).astype(np.float32)
    k, v = (rng.standard_normal((bk, 6, tk, 64)).astype(np.float32) for _ in range(2))
    with ops.on_gpu():
        out = ops.attention(q, k, v, causal=causal)
    # Beams share keys: query batch i reads key group i // (b // bk), as on the CPU.
    expected = reference.attention(q, np.repeat(k, b // bk, axis=0), np.repeat(v, b // bk, axis=0), causal=causal)
    np.testing.assert_allclose(out, expected, rtol=ATTENTION_TOL, atol=ATTENTION_TOL * float(np.abs(v).max()))


def test_attention_head_over_128_is_a_clear_error_on_gpu():
    q = np.zeros((1, 1, 2, 160), np.float32)
    with ops.on_gpu(), pytest.raises(Exception, match="head sizes up to 128"):
        ops.attention(q, q, q)


@given(cache_inputs())
def test_cached_attention_on_gpu(inputs):
    q, k, v, k_cache, v_cache, slots, lineage = inputs
    out_expected, k_expected, v_expected = expected_after(*inputs)
    with ops.on_gpu():
        out = ops.cached_attention(q, k, v, k_cache, v_cache, slots, lineage)
    atol = ATTENTION_TOL * float(np.abs(v_expected).max())
    np.testing.assert_allclose(out, out_expected, rtol=ATTENTION_TOL, atol=atol)
    np.testing.assert_array_equal(k_cache, k_expected)  # copies: bit-exact
    np.testing.assert_array_equal(v_cache, v_expected)


@given(layer_norm_inputs())
def test_layer_norm_on_gpu(inputs):
    x, weight, bias = inputs
    with ops.on_gpu():
        y = ops.layer_norm(x, weight, bias)
    np.testing.assert_allclose(y, reference.layer_norm(x, weight, bias), **LAYER_NORM_TOL)


@given(layer_norm_inputs())
def test_add_layer_norm_on_gpu(inputs):
    x, weight, bias = inputs
    residual = x[::-1].copy()
    with ops.on_gpu():
        y, total = ops.add_layer_norm(x, residual, weight, bias)
    np.testing.assert_array_equal(total, x + residual)
    np.testing.assert_allclose(y, reference.layer_norm(x + residual, weight, bias), **LAYER_NORM_TOL)


@given(linear_inputs())
def test_linear_on_gpu(inputs):
    x, w, bias = inputs
    w64 = w.astype(np.float64)
    expected = x.astype(np.float64) @ w64.T + (0 if bias is None else bias)
    bound = np.abs(x).astype(np.float64) @ np.abs(w64).T + 1e-30
    with ops.on_gpu():
        got = ops.linear(x, w, bias)
    # fp32 accumulation, error relative to the sum of |products|.
    assert np.all(np.abs(got - expected) <= 1e-5 * bound + 1e-6)


@pytest.mark.parametrize("length", [160, 399, 16000 * 30, 16000 * 47 + 13])
def test_log_mel_on_gpu(length):
    rng = np.random.default_rng(length)
    audio = np.clip(rng.standard_normal(length) * 0.3, -1, 1).astype(np.float32)
    for n_mels in (80, 128):
        with ops.on_gpu():
            out = ops.log_mel_spectrogram(audio, n_mels=n_mels)
        expected = reference.log_mel_spectrogram(audio, n_mels=n_mels)
        np.testing.assert_allclose(out, expected, rtol=0, atol=LOG_MEL_TOL)


def test_log_mel_of_a_tone_on_gpu():
    # One strong bin per frame: the -8 clamp decides most of the output.
    audio = (np.sin(2 * np.pi * 440 * np.arange(16000) / 16000) * 0.5).astype(np.float32)
    with ops.on_gpu():
        out = ops.log_mel_spectrogram(audio)
    np.testing.assert_allclose(out, reference.log_mel_spectrogram(audio), rtol=0, atol=LOG_MEL_TOL)
