"""``load_checkpoint``: any model name, directory or weights file to a ``Checkpoint``."""

from __future__ import annotations

import os
from pathlib import Path

from .checkpoint import Checkpoint
from .ctranslate2 import load_ctranslate2
from .errors import WeightsError, WeightsFileNotFoundError
from .files import find_config, find_tokenizer_dir
from .openai_pt import load_openai_pt
from .registry import resolve_model
from .safetensors import load_safetensors

_SUFFIXES = (".bin", ".safetensors", ".pt")


def _load_ctranslate2_files(model_bin: list[Path], dirs: list[Path]) -> Checkpoint:
    return load_ctranslate2(
        model_bin, config=find_config(dirs), tokenizer_dir=find_tokenizer_dir(dirs)
    )


def _load_file(path: Path) -> Checkpoint:
    dirs = [path.parent]
    if path.suffix == ".bin":
        return _load_ctranslate2_files([path], dirs)
    if path.suffix == ".safetensors":
        return load_safetensors(
            path,
            config=find_config(dirs),
            generation_config=find_config(dirs, "generation_config.json"),
            tokenizer_dir=find_tokenizer_dir(dirs),
        )
    if path.suffix == ".pt":
        return load_openai_pt(path)
    raise WeightsError(f"{path}: unsupported weights file; expected one of {', '.join(_SUFFIXES)}")


def _load_directory(directory: Path) -> Checkpoint:
    for name in ("model.bin", "model.safetensors"):
        if (directory / name).is_file():
            return _load_file(directory / name)
    checkpoints = sorted(directory.glob("*.pt"))
    if len(checkpoints) == 1:
        return _load_file(checkpoints[0])
    if checkpoints:
        raise WeightsError(
            f"{directory}: several .pt checkpoints, pass one: {[p.name for p in checkpoints]}"
        )
    raise WeightsFileNotFoundError(
        f"{directory}: no model.bin, model.safetensors or .pt checkpoint in it"
    )


def load_checkpoint(name_or_path: str | os.PathLike) -> Checkpoint:
    """Load Whisper weights from a model name (e.g. "tiny.en"), a directory or a weights file.

    An existing path wins over a model name of the same spelling; a name is looked up among the
    installed weights packages and never downloaded.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return _load_directory(path)
    if path.is_file():
        return _load_file(path)
    if (
        isinstance(name_or_path, os.PathLike)
        or os.sep in str(name_or_path)
        or path.suffix in _SUFFIXES
    ):
        raise WeightsFileNotFoundError(f"weights path not found: {path}")
    resolved = resolve_model(str(name_or_path))
    return _load_ctranslate2_files(resolved.model_bin, resolved.dirs)
