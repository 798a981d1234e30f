"""Hugging Face safetensors checkpoints: an exact round trip of tiny.en, head counts from
config.json, a truncated file, and an output projection that is not tied to the embeddings."""

from __future__ import annotations

import json

import numpy as np
import pytest

from maxwhisper_kernels.weights import (
    CorruptWeightsError,
    WeightsError,
    load_checkpoint,
    write_safetensors,
)

from weight_files import SMALL_DIMS, assert_same_tensors, hf_config, hf_names, small_tensors


def test_safetensors_round_trip(tiny, tmp_path):
    # Stored as float16, which is what tiny.en holds, so the round trip is exact.
    hf = hf_names(tiny.tensors, np.float16)
    hf["proj_out.weight"] = hf["model.decoder.embed_tokens.weight"]
    write_safetensors(tmp_path / "model.safetensors", hf)
    (tmp_path / "generation_config.json").write_text(
        json.dumps({"alignment_heads": tiny.alignment_heads})
    )

    loaded = load_checkpoint(tmp_path)

    # No config.json: the head counts come from Whisper's 64-wide heads, 384 / 64 = 6.
    assert loaded.dims == tiny.dims
    assert loaded.alignment_heads == tiny.alignment_heads
    assert_same_tensors(loaded.tensors, tiny.tensors)


def test_safetensors_config_gives_head_counts(tmp_path):
    tensors = small_tensors()
    write_safetensors(tmp_path / "model.safetensors", hf_names(tensors))
    # SMALL_DIMS is too narrow for a 64-wide head: without config.json it cannot load.
    with pytest.raises(WeightsError, match="n_audio_head=0"):
        load_checkpoint(tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text(json.dumps(hf_config(SMALL_DIMS)))
    loaded = load_checkpoint(tmp_path / "model.safetensors")
    assert loaded.dims == SMALL_DIMS
    assert_same_tensors(loaded.tensors, tensors)


def test_truncated_safetensors_names_the_tensor(tmp_path):
    path = tmp_path / "model.safetensors"
    write_safetensors(path, hf_names(small_tensors()))
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(CorruptWeightsError, match="truncated") as caught:
        load_checkpoint(path)
    assert caught.value.path == path and caught.value.tensor is not None


def test_untied_output_projection_is_refused(tmp_path):
    hf = hf_names(small_tensors())
    hf["proj_out.weight"] = hf["model.decoder.embed_tokens.weight"] + 1
    write_safetensors(tmp_path / "model.safetensors", hf)
    with pytest.raises(CorruptWeightsError, match="not tied"):
        load_checkpoint(tmp_path)
