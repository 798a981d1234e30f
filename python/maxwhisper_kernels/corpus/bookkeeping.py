"""What an output folder already holds: the rows of earlier runs, which files to
skip on resume, and where this run's shards go."""

from __future__ import annotations

import glob
import os
import time

ROW_COLUMNS = (
    "path", "sha256", "duration", "language", "text", "segments",
    "model", "options", "error", "seconds",
)
SUCCESS_FILE = "_SUCCESS"


def existing_rows(output: str) -> list[dict]:
    """Rows of every earlier run under `output`; for a file written twice the later run wins."""
    import pyarrow.parquet as pq

    rows: dict[tuple[str, str], dict] = {}
    for shard in sorted(glob.glob(os.path.join(output, "run-*", "*.parquet"))):
        for row in pq.read_table(shard, columns=list(ROW_COLUMNS)).to_pylist():
            rows[(row["path"], row["sha256"])] = row
    return list(rows.values())


def pending(items: list[dict], done: list[dict], retry_failed: bool) -> list[dict]:
    """The items still to transcribe: not done before with the same content, or
    failed before when `retry_failed`."""
    status = {(row["path"], row["sha256"]): row["error"] is None for row in done}
    todo = []
    for item in items:
        succeeded = status.get((item["path"], item["sha256"]))
        if succeeded is None or (retry_failed and not succeeded):
            todo.append(item)
    return todo


def new_run_dir(output: str) -> str:
    """A fresh folder for this run's shards: earlier runs stay untouched, so a
    crash mid-write can never damage rows already kept."""
    name = time.strftime("run-%Y%m%dT%H%M%S", time.gmtime()) + f"-{os.getpid()}"
    return os.path.join(output, name)
