"""Errors raised while finding, reading or checking Whisper weights.

Every error is a ``WeightsError`` (a ``ValueError``), so callers can catch the family at once
and still tell the cases apart. Messages name the file and, where there is one, the tensor:
the user must be able to act on the message without a debugger.
"""

from __future__ import annotations

from pathlib import Path


class WeightsError(ValueError):
    """Base class of every weights error."""


class UnknownModelError(WeightsError):
    """A model name that no known weights package provides."""


class ModelNotInstalledError(WeightsError):
    """A known model whose weights package is not installed; the message gives the pip command."""


class WeightsFileNotFoundError(WeightsError, FileNotFoundError):
    """A path, or a file a checkpoint needs, that does not exist."""


class CorruptWeightsError(WeightsError):
    """A weights file that is truncated, malformed or uses an unsupported encoding."""

    def __init__(self, path: Path | str, message: str, tensor: str | None = None):
        where = f"{path}" if tensor is None else f"{path}, tensor {tensor!r}"
        super().__init__(f"{where}: {message}")
        self.path = Path(path)
        self.tensor = tensor


class MissingTensorError(WeightsError):
    """A checkpoint that lacks a tensor the Whisper architecture needs."""

    def __init__(self, source: Path | str, tensor: str):
        super().__init__(f"{source}: missing tensor {tensor!r}")
        self.source = Path(source)
        self.tensor = tensor


class TensorShapeError(WeightsError):
    """A tensor whose shape disagrees with the model dimensions."""

    def __init__(self, source: Path | str, tensor: str, expected: tuple, found: tuple):
        super().__init__(
            f"{source}: tensor {tensor!r} has shape {tuple(found)}, expected {tuple(expected)}"
        )
        self.source = Path(source)
        self.tensor = tensor
        self.expected = tuple(expected)
        self.found = tuple(found)
