"""The files that come beside a checkpoint's weights: configuration and tokenizer."""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from .errors import CorruptWeightsError

TOKENIZER_FILES = ("tokenizer.json", "vocabulary.txt", "vocabulary.json")


def read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptWeightsError(path, f"not valid JSON: {error}") from error


def find_config(dirs: Iterable[Path], name: str = "config.json") -> dict[str, Any] | None:
    """The first ``name`` found in ``dirs``, parsed, or None."""
    for directory in dirs:
        if (directory / name).is_file():
            return read_json(directory / name)
    return None


def find_tokenizer_dir(dirs: Iterable[Path]) -> Path | None:
    """The first of ``dirs`` that holds a tokenizer file, or None."""
    for directory in dirs:
        if any((directory / name).is_file() for name in TOKENIZER_FILES):
            return directory
    return None
