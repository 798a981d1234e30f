"""The `_SUCCESS` summary written when a corpus run ends."""

from __future__ import annotations

import json
import os

from .bookkeeping import SUCCESS_FILE


def summarize(rows: list[dict], skipped: int, wall_seconds: float) -> dict:
    """Counts over this run's rows; the real-time factor is wall time over audio time."""
    failed = sum(row["error"] is not None for row in rows)
    audio_seconds = sum(row["duration"] or 0.0 for row in rows if row["error"] is None)
    return {
        "done": len(rows) - failed,
        "failed": failed,
        "skipped": skipped,
        "audio_hours": audio_seconds / 3600.0,
        "wall_seconds": wall_seconds,
        "rtf": wall_seconds / audio_seconds if audio_seconds else None,
    }


def write_summary(output: str, summary: dict) -> str:
    path = os.path.join(output, SUCCESS_FILE)
    with open(path, "w", encoding="utf-8") as file:
        json.dump(summary, file, indent=2)
    return path
