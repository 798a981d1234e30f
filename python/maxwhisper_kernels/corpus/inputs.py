"""Turns the command's INPUT arguments (files, folders, globs, manifests) into a
list of {"path", "language"} items, each file once, in a stable order."""

from __future__ import annotations

import csv
import glob
import hashlib
import json
import os
from pathlib import Path

AUDIO_EXTENSIONS = frozenset(
    ".flac .wav .mp3 .m4a .ogg .opus .webm .aac .wma .mp4 .mkv .mov .aiff .aif".split()
)
MANIFEST_EXTENSIONS = frozenset({".csv", ".parquet", ".jsonl"})


class InputError(ValueError):
    """An INPUT that names nothing usable: `source` is the argument, `reason` says why."""

    def __init__(self, source: str, reason: str) -> None:
        super().__init__(f"{source}: {reason}")
        self.source = source
        self.reason = reason


def _manifest_rows(path: Path) -> list[dict]:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.DictReader(file))
    elif suffix == ".jsonl":
        with open(path, encoding="utf-8") as file:
            rows = [json.loads(line) for line in file if line.strip()]
    else:
        import pyarrow.parquet as pq

        rows = pq.read_table(path).to_pylist()
    if rows and "path" not in rows[0]:
        raise InputError(str(path), "manifest has no 'path' column")
    base = path.parent
    # Relative paths in a manifest are relative to the manifest, not to the caller.
    return [
        {"path": str((base / row["path"]).resolve()), "language": row.get("language") or None}
        for row in rows
    ]


def _folder_files(folder: Path) -> list[str]:
    return sorted(
        str(p.resolve())
        for p in folder.rglob("*")
        if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS
    )


def list_inputs(inputs: list[str | os.PathLike[str]]) -> list[dict]:
    """Every audio file the arguments name, first mention wins (for its language)."""
    items: dict[str, dict] = {}

    def add(path: str, language: str | None = None) -> None:
        items.setdefault(path, {"path": path, "language": language})

    for argument in inputs:
        text = os.fspath(argument)
        path = Path(text)
        if path.is_dir():
            for file in _folder_files(path):
                add(file)
        elif path.is_file() and path.suffix.lower() in MANIFEST_EXTENSIONS:
            for row in _manifest_rows(path):
                add(row["path"], row["language"])
        elif path.is_file():
            # Named explicitly: kept whatever its extension, so a bad file becomes an error row.
            add(str(path.resolve()))
        elif glob.has_magic(text):
            matches = sorted(glob.glob(text, recursive=True))
            if not matches:
                raise InputError(text, "the pattern matches no file")
            for match in matches:
                if os.path.isfile(match):
                    add(str(Path(match).resolve()))
        else:
            raise InputError(text, "no such file or folder")
    return list(items.values())


def content_hash(path: str) -> str:
    """SHA-256 of the file's bytes (empty for a file that cannot be read: it fails later, with its reason)."""
    try:
        with open(path, "rb") as file:
            return hashlib.file_digest(file, "sha256").hexdigest()
    except OSError:
        return ""
