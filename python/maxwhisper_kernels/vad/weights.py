"""Silero VAD (v6, 16 kHz) weights, read from the ``silero-vad`` package without importing it.

The package ships ``data/silero_vad_16k_op15.onnx``; importing ``silero_vad`` would pull in
torch, so the file is located through the import system's spec only and its initializers are
read by the project's own protobuf reader. (The package's ``silero_vad_16k.safetensors`` holds
different convolution and LSTM weights from the ONNX models: checked, only the STFT basis
agrees, so the ONNX file, the reference's own, is the source.)
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

from maxwhisper_kernels.weights.errors import (
    CorruptWeightsError,
    MissingTensorError,
    ModelNotInstalledError,
)

from .onnx_reader import read_onnx_initializers

# The weights are for 16 kHz audio only.
WINDOW = 512  # samples per speech probability: 32 ms
CONTEXT = 64  # samples of the previous window seen by each window

PACKAGE = "silero-vad"
_FILE = "silero_vad_16k_op15.onnx"

# Every tensor the network uses (its name here, its name in the ONNX file) and its shape,
# in PyTorch layouts: conv (out, in, kernel).
SHAPES = {
    "stft_conv.weight": (258, 1, 256),  # learned STFT: 129 real + 129 imaginary filters
    "conv1.weight": (128, 129, 3),
    "conv1.bias": (128,),
    "conv2.weight": (64, 128, 3),
    "conv2.bias": (64,),
    "conv3.weight": (64, 64, 3),
    "conv3.bias": (64,),
    "conv4.weight": (128, 64, 3),
    "conv4.bias": (128,),
    "lstm_cell.weight_ih": (512, 128),  # gates i, f, g, o stacked
    "lstm_cell.weight_hh": (512, 128),
    "lstm_cell.bias_ih": (512,),
    "lstm_cell.bias_hh": (512,),
    "final_conv.weight": (1, 128, 1),
    "final_conv.bias": (1,),
}


_ONNX_NAMES = {
    "stft_conv.weight": "model.stft.forward_basis_buffer",
    **{f"conv{i + 1}.{leaf}": f"model.encoder.{i}.reparam_conv.{leaf}" for i in range(4) for leaf in ("weight", "bias")},
    **{f"lstm_cell.{leaf}": f"model.decoder.rnn.{leaf}" for leaf in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")},
    "final_conv.weight": "model.decoder.decoder.2.weight",
    "final_conv.bias": "model.decoder.decoder.2.bias",
}


def weights_path() -> Path:
    """The installed ``silero_vad_16k_op15.onnx``; a clear error when the package is absent."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        raise ModelNotInstalledError(
            f"Silero VAD weights need the {PACKAGE!r} package: "
            f"pip install --no-deps {PACKAGE} (scripts/setup.sh does)"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / _FILE
    if not path.is_file():
        raise ModelNotInstalledError(
            f"{path}: missing from the installed {PACKAGE!r} package; reinstall it "
            f"(pip install --no-deps --force-reinstall {PACKAGE})"
        )
    return path


def load_vad_weights(path: Path | None = None) -> dict[str, np.ndarray]:
    """Every Silero tensor as float32, names and shapes checked against ``SHAPES``."""
    path = weights_path() if path is None else Path(path)
    stored = read_onnx_initializers(path)
    tensors = {}
    for name, shape in SHAPES.items():
        source = _ONNX_NAMES[name]
        if source not in stored:
            raise MissingTensorError(f"{path}: tensor {source!r} is missing")
        if stored[source].shape != shape:
            raise CorruptWeightsError(path, f"shape {stored[source].shape}, expected {shape}", source)
        tensors[name] = stored[source]
    return tensors
