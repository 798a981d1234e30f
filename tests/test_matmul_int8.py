"""kernels/matmul_int8.mojo against a NumPy integer reference: every inner
product path (the native one, which is AMX where the CPU has it, VNNI's
vpdpbusd, AVX2's vpmaddubsw/vpmaddwd, portable) on awkward shapes."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import reference
from maxwhisper_kernels import ops
from maxwhisper_kernels.build import kernel_library
from maxwhisper_kernels.int8_layout import pack_int8_matrix
from maxwhisper_kernels.graph.parameters import quantize_rows
from strategies import arrays
from whisper_reference import gelu

PATHS = ["native", "vnni", "avx2", "portable"]


@st.composite
def gemm_inputs(draw):
    m = draw(st.sampled_from([1, 7, 1500]) | st.integers(1, 40))
    k = draw(st.sampled_from([384, 1536, 1, 3, 5, 63, 65]) | st.integers(1, 700))
    n = draw(st.sampled_from([1, 5, 17, 63, 65, 129, 384]) | st.integers(1, 300))
    x = draw(arrays((m, k), 1e-3, 100))
    values = draw(arrays((n, k), 1, 127)).round().clip(-127, 127).astype(np.int8)
    weight_scale = np.abs(draw(arrays((n,), 1e-4, 1e-1))) + np.float32(1e-6)
    bias = draw(st.none() | arrays((n,), 1e-2, 1))
    return x, values, weight_scale, bias


@pytest.mark.parametrize("isa", PATHS)
@given(inputs=gemm_inputs())
def test_matches_integer_reference(isa, inputs):
    x, values, weight_scale, bias = inputs
    got = ops.matmul_int8(x, pack_int8_matrix(values), weight_scale, bias, isa=isa)
    expected = reference.matmul_int8(x, values, weight_scale, bias)
    assert got.dtype == np.float32 and got.shape == expected.shape
    # Same integer sums and the same float32 epilogue: equal up to the last
    # bit of the int -> float conversion and fma (a few ulps at most).
    np.testing.assert_allclose(got, expected, rtol=2e-6, atol=1e-30)


@pytest.mark.parametrize("isa", PATHS)
@pytest.mark.parametrize("k", [1000, 1024])  # 1024 (with 16 rows or more): AMX, where present
def test_integer_sums_are_exact(isa, k):
    """Integer inputs whose row peak is 127 quantize to themselves (scale 1),
    so with unit weight scales the output is the int32 sum itself, exact in
    float32 below 2^24: extremes -127/127 everywhere test the AVX2 path's
    saturation guard and the VNNI path's +128 shift."""
    rng = np.random.default_rng(3)
    m, n = 19, 70
    x = rng.integers(-127, 128, (m, k)).astype(np.float32)
    x[:, 0] = 127
    x[0] = 127
    x[1] = -127
    x[1, 0] = 127
    values = rng.integers(-127, 128, (n, k)).astype(np.int8)
    values[0] = 127
    values[1] = -127
    got = ops.matmul_int8(x, pack_int8_matrix(values), np.ones(n, np.float32), isa=isa)
    exact = x.astype(np.int64) @ values.astype(np.int64).T
    assert np.abs(exact).max() < 2**24
    np.testing.assert_array_equal(got, exact.astype(np.float32))


@pytest.mark.parametrize("m,k", [(37, 389), (77, 384)])  # AMX takes K % 64 == 0 only
def test_paths_agree_bit_for_bit(m, k):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((m, k)).astype(np.float32)
    values = rng.integers(-127, 128, (131, k)).astype(np.int8)
    scale = rng.uniform(1e-3, 1e-2, 131).astype(np.float32)
    bias = rng.standard_normal(131).astype(np.float32)
    packed = pack_int8_matrix(values)
    outs = [ops.matmul_int8(x, packed, scale, bias, isa=isa) for isa in PATHS]
    for out in outs[1:]:
        np.testing.assert_array_equal(out, outs[0])


@pytest.mark.parametrize("isa", PATHS)
def test_fused_gelu_is_maxs_gelu_bit_for_bit(isa):
    """gelu=True (the int8 encoder's first MLP matrix) gives exactly MAX's ops.gelu on the
    op's plain result, on every path, and the exact GELU of the integer reference."""
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType
    from max.graph import ops as graph_ops

    from maxwhisper_kernels import custom_ops
    from maxwhisper_kernels.cpu_device import cpu_session

    rng = np.random.default_rng(11)
    m, k, n = 70, 384, 200  # 70 rows: AMX blocks and a partial tile on every path
    x = rng.standard_normal((m, k)).astype(np.float32)
    values = rng.integers(-127, 128, (n, k)).astype(np.int8)
    scale = rng.uniform(1e-4, 1e-3, n).astype(np.float32)
    bias = rng.standard_normal(n).astype(np.float32)
    packed = pack_int8_matrix(values)
    device = DeviceRef.CPU()
    types = [TensorType(DType.from_numpy(a.dtype), list(a.shape), device) for a in (x, packed, scale, bias)]
    with Graph(f"gelu_{isa}", input_types=types, custom_extensions=[kernel_library()]) as graph:
        args = [value.tensor for value in graph.inputs]
        fused = custom_ops.matmul_int8(*args, isa=isa, gelu=True)
        graph.output(fused, graph_ops.gelu(custom_ops.matmul_int8(*args, isa=isa)))
    fused, separate = (out.to_numpy() for out in cpu_session().load(graph).execute(x, packed, scale, bias))
    assert (fused < 0).any() and (fused > 1).any()  # both of GELU's regimes are exercised
    np.testing.assert_array_equal(fused, separate)
    plain = reference.matmul_int8(x, values, scale, bias).astype(np.float64)
    np.testing.assert_allclose(fused, gelu(plain), rtol=1e-5, atol=1e-6)


def test_close_to_float_product():
    """Quantizing weights (per channel) and activations (per row) to int8
    stays within the bound of the two rounding errors of the float product."""
    rng = np.random.default_rng(7)
    x = rng.standard_normal((64, 384)).astype(np.float32)
    w = (rng.standard_normal((1152, 384)) * 0.05).astype(np.float32)
    values, scale = quantize_rows(w)
    got = ops.matmul_int8(x, pack_int8_matrix(values), scale)
    exact = x.astype(np.float64) @ w.astype(np.float64).T
    # x' w' - x w = (x' - x) w' + x (w' - w), each rounding at most half a step.
    x_step = np.abs(x).max(axis=1, keepdims=True) / 127
    w_sum = (np.abs(w).sum(axis=1) + 0.5 * 384 * scale)[None, :]
    bound = 0.5 * x_step * w_sum + 0.5 * np.abs(x).sum(axis=1, keepdims=True) * scale[None, :]
    assert np.all(np.abs(got - exact) <= bound * 1.01 + 1e-6)
    # and it is far below the bound in practice (errors average out)
    assert np.abs(got - exact).max() < 0.05 * np.abs(exact).max()


def test_zero_rows_give_the_bias():
    x = np.zeros((3, 8), np.float32)
    bias = np.arange(5, dtype=np.float32)
    got = ops.matmul_int8(x, pack_int8_matrix(np.ones((5, 8), np.int8)), np.ones(5, np.float32), bias)
    np.testing.assert_array_equal(got, np.tile(bias, (3, 1)))


def test_pack_layout():
    values = np.arange(-60, 60, dtype=np.int8).reshape(20, 6)
    packed = pack_int8_matrix(values)
    assert packed.shape == (4, 2 * 64)
    # channel 17 = panel 1, c = 1; k = 5 -> group 1, byte 1
    assert packed[1, 64 * 1 + 4 * 1 + 1] == values[17, 5]
    assert packed[0, 4 * 3 + 2] == values[3, 2]
    assert packed[1, 64 + 4 * 1 + 2] == 0  # k = 6 pads K
    assert not packed[2:].any()  # channels 20 .. 63 pad N


@pytest.mark.parametrize("n, d", [(51864, 384), (20, 6), (7, 3), (129, 70)])
def test_rows_read_back_from_the_packed_layout(n, d):
    """layers.packed_rows (the int8 decoder's token lookup) against plain indexing; d not a
    multiple of 4 reads a padded group and cuts it."""
    from max.dtype import DType
    from max.graph import DeviceRef, Graph, TensorType

    from maxwhisper_kernels.cpu_device import cpu_session
    from maxwhisper_kernels.graph.layers import packed_rows

    rng = np.random.default_rng(n)
    values = rng.integers(-127, 128, (n, d)).astype(np.int8)
    packed = pack_int8_matrix(values)
    ids = rng.integers(0, n, (2, 3)).astype(np.int64)
    device = DeviceRef.CPU()
    types = [TensorType(DType.int8, list(packed.shape), device), TensorType(DType.int64, ["b", "t"], device)]
    with Graph("packed_rows", input_types=types) as graph:
        graph.output(packed_rows(graph.inputs[0].tensor, graph.inputs[1].tensor, d))
    model = cpu_session().load(graph)
    np.testing.assert_array_equal(model.execute(packed, ids)[0].to_numpy(), values[ids])


@pytest.mark.parametrize(
    "x, packed, scale, match",
    [
        (np.ones((2, 8), np.float32), np.ones((4, 64), np.int8), np.ones(3, np.float32), "do not fit"),
        (np.ones((2, 8), np.float32), np.ones((4, 128), np.int16), np.ones(3, np.float32), "do not fit"),
        (np.ones(8, np.float32), np.ones((4, 128), np.int8), np.ones(3, np.float32), "dimensions"),
        (np.ones((2, 8), np.int32), np.ones((4, 128), np.int8), np.ones(3, np.float32), "floating-point"),
    ],
)
def test_bad_input_raises(x, packed, scale, match):
    with pytest.raises(ValueError, match=match):
        ops.matmul_int8(x, packed, scale)


def test_pack_rejects_float_weights():
    with pytest.raises(ValueError, match="int8"):
        pack_int8_matrix(np.ones((3, 4), np.float32))
