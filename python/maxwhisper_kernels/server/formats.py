"""The response formats, as a table of functions over one transcribe() result.

verbose_json carries segments and top-level words exactly for the granularities asked (OpenAI:
none or "segment" -> segments only; "word" -> words only; both -> both). srt, vtt and text are
the CLI's writers, so a file from the server and one from `maxwhisper` read the same.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable

from fastapi.responses import JSONResponse, PlainTextResponse, Response

from ..writers import WriteSRT, WriteTXT, WriteVTT
from .request import TranscriptionRequest

SEGMENT_FIELDS = (
    "id", "seek", "start", "end", "text", "tokens",
    "temperature", "avg_logprob", "compression_ratio", "no_speech_prob",
)  # fmt: skip


def _written(writer_class, result: dict) -> str:
    buffer = io.StringIO()
    writer_class(output_dir=None).write_result(result, file=buffer)
    return buffer.getvalue()


def verbose_json(result: dict, request: TranscriptionRequest) -> dict:
    body = {
        "task": request.task,
        "language": result["language"],
        "duration": request.duration,
        "text": result["text"],
    }
    if not request.granularities or "segment" in request.granularities:
        body["segments"] = [
            {field: segment[field] for field in SEGMENT_FIELDS} for segment in result["segments"]
        ]
    if "word" in request.granularities:
        body["words"] = [
            {"word": word["word"], "start": word["start"], "end": word["end"]}
            for segment in result["segments"]
            for word in segment.get("words", [])
        ]
    return body


FORMATTERS: dict[str, Callable[[dict, TranscriptionRequest], Response]] = {
    "json": lambda result, request: JSONResponse({"text": result["text"]}),
    "verbose_json": lambda result, request: JSONResponse(verbose_json(result, request)),
    "text": lambda result, request: PlainTextResponse(_written(WriteTXT, result)),
    "srt": lambda result, request: PlainTextResponse(_written(WriteSRT, result)),
    "vtt": lambda result, request: PlainTextResponse(
        _written(WriteVTT, result), media_type="text/vtt"
    ),
}


def sse_events(result: dict) -> list[str]:
    """Server-sent events: a transcript.text.delta per segment, then transcript.text.done."""
    events = [
        {"type": "transcript.text.delta", "delta": segment["text"], "segment_id": str(i)}
        for i, segment in enumerate(result["segments"])
    ]
    events.append({"type": "transcript.text.done", "text": result["text"]})
    return [f"data: {json.dumps(event)}\n\n" for event in events]
