"""openai-whisper .pt checkpoints, written without torch: a round trip of tiny.en with a strided
tensor, refusal of pickled globals outside torch's, dimensions that disagree with the tensors,
and a truncated file."""

from __future__ import annotations

import zipfile

import numpy as np
import pytest

from maxwhisper_kernels.weights import CorruptWeightsError, TensorShapeError, load_checkpoint

from weight_files import SMALL_DIMS, assert_same_tensors, small_tensors, write_torch_pt


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
