"""The real tiny.en package through the CTranslate2 loader: its dimensions and tensors, the split
of fused projections, memory use while loading, split files with int8, bfloat16 and float32
variables, and truncated files."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from maxwhisper_kernels.weights import (
    CorruptWeightsError,
    ModelDimensions,
    load_checkpoint,
    load_ctranslate2,
    read_model_bin,
    tensor_shapes,
)
from maxwhisper_kernels.weights.ctranslate2 import DTYPES

from weight_files import write_model_bin


@pytest.fixture(scope="module")
def tiny_model_bin(tiny) -> Path:
    return tiny.source


def test_tiny_en_dimensions(tiny):
    assert tiny.dims == ModelDimensions(
        n_mels=80,
        n_audio_ctx=1500,
        n_audio_state=384,
        n_audio_head=6,
        n_audio_layer=4,
        n_vocab=51864,
        n_text_ctx=448,
        n_text_state=384,
        n_text_head=6,
        n_text_layer=4,
    )
    assert not tiny.is_multilingual
    assert (tiny.tokenizer_dir / "tokenizer.json").is_file()
    assert tiny.alignment_heads and all(
        0 <= layer < 4 and 0 <= head < 6 for layer, head in tiny.alignment_heads
    )
    assert tiny.config["suppress_ids"]


def test_tiny_en_tensors_are_the_openai_state_dict(tiny):
    assert {name: a.shape for name, a in tiny.tensors.items()} == tensor_shapes(tiny.dims)
    assert "encoder.blocks.0.attn.key.bias" not in tiny.tensors
    assert all(a.flags.c_contiguous for a in tiny.tensors.values())
    # the package stores float16: kept as stored, never widened at load
    assert {a.dtype for a in tiny.tensors.values()} == {np.dtype(np.float16)}


def test_ctranslate2_fused_projections_split_in_order(tiny, tiny_model_bin):
    raw = read_model_bin([tiny_model_bin])
    fused = raw["decoder/layer_1/self_attention/linear_0/weight"]
    q, k, v = np.split(fused.astype(np.float32), 3)
    np.testing.assert_array_equal(tiny.tensors["decoder.blocks.1.attn.query.weight"], q)
    np.testing.assert_array_equal(tiny.tensors["decoder.blocks.1.attn.key.weight"], k)
    np.testing.assert_array_equal(tiny.tensors["decoder.blocks.1.attn.value.weight"], v)
    k, v = np.split(raw["decoder/layer_1/attention/linear_1/weight"].astype(np.float32), 2)
    np.testing.assert_array_equal(tiny.tensors["decoder.blocks.1.cross_attn.key.weight"], k)
    np.testing.assert_array_equal(tiny.tensors["decoder.blocks.1.cross_attn.value.weight"], v)
    assert raw["decoder/projection/weight"] is raw["decoder/embeddings/weight"]


def test_ctranslate2_loads_without_a_second_copy_of_the_file(tiny_model_bin):
    # Each tensor is read into an array of its own: no whole-file buffer is held beside the
    # arrays (which doubled the load's peak), and no array is copied again afterwards.
    size = tiny_model_bin.stat().st_size
    tracemalloc.start()
    try:
        checkpoint = load_checkpoint(tiny_model_bin)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert all(a.base is None for a in read_model_bin([tiny_model_bin]).values())
    # the file once, plus the tied-projection check's temporaries (a bool per vocabulary entry)
    assert peak < 1.35 * size, (peak, size)
    assert sum(a.nbytes for a in checkpoint.tensors.values()) < 1.01 * size


def test_ctranslate2_parts_int8_bf16_f32(tiny, tiny_model_bin, tmp_path):
    """Split files, int8 weights with per-row scales, bfloat16 and float32 all load."""
    raw = read_model_bin([tiny_model_bin])
    dtype_ids = {name: dtype for dtype, name in DTYPES.items()}
    variables = {
        name: (dtype_ids[str(a.dtype)], a)
        for name, a in raw.items()
        if name != "decoder/projection/weight"
    }
    quantised = "encoder/layer_1/ffn/linear_0/weight"
    weight = raw[quantised].astype(np.float32)
    scale = (127.0 / np.abs(weight).max(axis=1)).astype(np.float32)
    variables[quantised] = (dtype_ids["int8"], np.round(weight * scale[:, None]).astype(np.int8))
    variables[f"{quantised}_scale"] = (dtype_ids["float32"], scale)
    bf16 = raw["decoder/layer_0/ffn/linear_1/weight"].astype(np.float32)
    variables["decoder/layer_0/ffn/linear_1/weight"] = (
        dtype_ids["bfloat16"],
        (bf16.view(np.uint32) >> 16).astype(np.uint16),
    )
    variables["encoder/conv1/weight"] = (
        dtype_ids["float32"],
        raw["encoder/conv1/weight"].astype(np.float32),
    )
    whole = tmp_path / "model.bin"
    write_model_bin(whole, variables, {"decoder/projection/weight": "decoder/embeddings/weight"})
    data = whole.read_bytes()
    parts = [tmp_path / f"model.bin.part{i}" for i in range(3)]
    for i, part in enumerate(parts):
        part.write_bytes(data[i * len(data) // 3 : (i + 1) * len(data) // 3])

    loaded = load_ctranslate2(parts)

    dequantised = loaded.tensors["encoder.blocks.1.mlp.0.weight"]
    assert np.all(np.abs(dequantised - weight) <= 0.5 / scale[:, None] + 1e-6)
    truncated = (bf16.view(np.uint32) & 0xFFFF0000).view(np.float32)
    np.testing.assert_array_equal(loaded.tensors["decoder.blocks.0.mlp.2.weight"], truncated)
    np.testing.assert_array_equal(
        loaded.tensors["encoder.conv1.weight"], tiny.tensors["encoder.conv1.weight"]
    )
    np.testing.assert_array_equal(
        loaded.tensors["decoder.ln.bias"], tiny.tensors["decoder.ln.bias"]
    )


@pytest.mark.parametrize("keep", [3, 40, 5000, 40_000_000, -1])
def test_truncated_model_bin_names_file_and_tensor(tiny_model_bin, tmp_path, keep):
    data = tiny_model_bin.read_bytes()
    truncated = tmp_path / "model.bin"
    truncated.write_bytes(data[: keep % len(data)])
    with pytest.raises(CorruptWeightsError, match="truncated") as caught:
        load_checkpoint(truncated)
    assert str(truncated) in str(caught.value)
    assert caught.value.path == truncated
    if 5000 <= keep % len(data) < 75_000_000:
        assert caught.value.tensor is not None and caught.value.tensor in str(caught.value)
