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


def sse_delta(segment: dict) -> str:
    """Server-sent event of one decoded segment's text."""
    event = {"type": "transcript.text.delta", "delta": segment["text"]}
    return _sse({**event, "segment_id": str(segment["id"])})


def sse_done(result: dict) -> str:
    return _sse({"type": "transcript.text.done", "text": result["text"]})


def sse_error(body: dict) -> str:
    """An error after the stream has started (the status is sent already): the event the openai
    client raises as an APIError."""
    return f"event: error\ndata: {json.dumps(body)}\n\n"


def _sse(event: dict) -> str:
    return f"data: {json.dumps(event)}\n\n"
