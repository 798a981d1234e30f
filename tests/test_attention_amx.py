"""kernels/attention_amx.mojo: the attention op with bf16=True. Where the CPU
has AMX it is checked against a NumPy float64 model of its roundings (scores
from bfloat16 hi/lo splits, probabilities and values rounded to bfloat16) and
against exact attention within bfloat16's error; elsewhere, and for the calls
the path does not take (causal, D != 64), bf16=True must change nothing."""

import numpy as np
import pytest

import reference
from maxwhisper_kernels import ops
from maxwhisper_kernels.graph_store import _cpu_flags

AMX = {"amx_tile", "amx_bf16"} <= set(_cpu_flags().split())


def bf16(x):
    """x rounded to the nearest bfloat16 (ties to even), as float32."""
    bits = np.asarray(x, np.float32).view(np.uint32).astype(np.uint64)
    bits = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16) << 16
    return bits.astype(np.uint32).view(np.float32)


def split(x):
    hi = bf16(x)
    return hi.astype(np.float64), bf16(np.asarray(x, np.float32) - hi).astype(np.float64)


def amx_model(q, k, v, scale):
    """The path's arithmetic in float64, rounding where the kernel rounds; k and
    v rows are repeated for query batches sharing them."""
    group = q.shape[0] // k.shape[0]
    k, v = np.repeat(k, group, axis=0), np.repeat(v, group, axis=0)
    q_hi, q_lo = split(q * np.float32(scale))
    k_hi, k_lo = split(k)
    scores = sum(np.einsum("bhqd,bhkd->bhqk", a, b) for a, b in ((q_hi, k_hi), (q_lo, k_hi), (q_hi, k_lo)))
    weights = np.exp(scores - scores.max(axis=-1, keepdims=True))
    p = bf16(weights.astype(np.float32)).astype(np.float64)
    return np.einsum("bhqk,bhkd->bhqd", p, bf16(v).astype(np.float64)) / weights.sum(axis=-1, keepdims=True)


def inputs(b, bk, h, tq, tk, d=64, seed=0, spread=2.0):
    rng = np.random.default_rng(seed)
    q = (rng.standard_normal((b, h, tq, d)) * spread).astype(np.float32)
    k = (rng.standard_normal((bk, h, tk, d)) * spread).astype(np.float32)
    v = rng.standard_normal((bk, h, tk, d)).astype(np.float32)
    return q, k, v


# (B, Bk, H, Tq, Tk), each with at least 128 query rows per key/value head (the
# kernel's AMX_MIN_ROWS): one key, odd lengths, partial row tiles, shared keys,
# an encoder head
SHAPES = [
    (1, 1, 1, 128, 1),
    (1, 1, 2, 137, 45),
    (1, 1, 1, 129, 33),
    (4, 2, 2, 70, 31),
    (1, 1, 2, 130, 100),
    (1, 1, 2, 1500, 1500),
]
# Fewer rows per key/value head than that: the float32 path, AMX or not
# (a decoder step's cross-attention: 8 audios of one row each; beams sharing keys)
FEW_ROWS = [(1, 1, 2, 37, 45), (8, 8, 6, 1, 1500), (4, 2, 2, 63, 31)]


@pytest.mark.skipif(not AMX, reason="no AMX on this CPU: the bf16 flag falls back (tested below)")
@pytest.mark.parametrize("shape", SHAPES)
def test_matches_model_of_its_roundings(shape):
    q, k, v = inputs(*shape, seed=sum(shape))
    scale = 64**-0.5
    out = ops.attention(q, k, v, bf16=True)
    # float32 sums in another order can flip a probability's bfloat16 rounding
    # (one unit in 2^-8) on a few keys.
    np.testing.assert_allclose(out, amx_model(q, k, v, scale), rtol=0, atol=2e-3)
    group = q.shape[0] // k.shape[0]
    exact = reference.attention(q, np.repeat(k, group, axis=0), np.repeat(v, group, axis=0), scale=scale)
    # bfloat16 values and probabilities: about 2^-8 of |v| at worst.
    np.testing.assert_allclose(out, exact, rtol=0, atol=2e-2)
    if shape[4] > 1:  # with one key the output is bf16(v), which float32 may equal
        assert not np.array_equal(out, ops.attention(q, k, v)), "bf16=True did not take the AMX path"


@pytest.mark.skipif(AMX, reason="this CPU has AMX: the path itself is tested above")
@pytest.mark.parametrize("shape", SHAPES[:4])
def test_without_amx_the_flag_changes_nothing(shape):
    q, k, v = inputs(*shape)
    np.testing.assert_array_equal(ops.attention(q, k, v, bf16=True), ops.attention(q, k, v))


@pytest.mark.parametrize("shape", FEW_ROWS)
def test_few_query_rows_stay_float32(shape):
    q, k, v = inputs(*shape)
    np.testing.assert_array_equal(ops.attention(q, k, v, bf16=True), ops.attention(q, k, v))


@pytest.mark.parametrize("causal, d", [(True, 64), (False, 32)])
def test_calls_the_path_does_not_take_are_float32(causal, d):
    q, k, v = inputs(2, 2, 2, 40, 50, d=d)
    np.testing.assert_array_equal(ops.attention(q, k, v, causal=causal, bf16=True), ops.attention(q, k, v, causal=causal))
