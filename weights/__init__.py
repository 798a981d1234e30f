"""Whisper weights from CTranslate2, OpenAI .pt and Hugging Face safetensors checkpoints.

Every format loads into one ``Checkpoint``: NumPy arrays (float16 where the file stores
float16, else float32) under openai-whisper's state-dict names, with ``ModelDimensions`` read off the tensors.
"""

from .checkpoint import Checkpoint
from .ctranslate2 import load_ctranslate2, read_model_bin
from .dims import ModelDimensions
from .errors import (
    CorruptWeightsError,
    MissingTensorError,
    ModelNotInstalledError,
    TensorShapeError,
    UnknownModelError,
    WeightsError,
    WeightsFileNotFoundError,
)
from .load import load_checkpoint
from .openai_pt import load_openai_pt
from .registry import MODEL_PACKAGES, resolve_model
from .safetensors import (
    hf_to_openai_name,
    load_safetensors,
    openai_to_hf_name,
    read_safetensors,
    write_safetensors,
)
from .schema import tensor_shapes

__all__ = [
    "Checkpoint",
    "CorruptWeightsError",
    "MODEL_PACKAGES",
    "MissingTensorError",
    "ModelDimensions",
    "ModelNotInstalledError",
    "TensorShapeError",
    "UnknownModelError",
    "WeightsError",
    "WeightsFileNotFoundError",
    "hf_to_openai_name",
    "load_checkpoint",
    "load_ctranslate2",
    "load_openai_pt",
    "load_safetensors",
    "openai_to_hf_name",
    "read_model_bin",
    "read_safetensors",
    "resolve_model",
    "tensor_shapes",
    "write_safetensors",
]
