"""Reading a transcription request: the multipart form as the openai client sends it, the
upload size enforced while the body arrives, the audio decoded, the fields checked.

The bytes are counted in the ASGI receive channel, so an upload over the limit is refused as
soon as it passes the limit rather than after it has been spooled whole.
"""

from __future__ import annotations

import os
import tempfile
from dataclasses import dataclass

import numpy as np
from starlette.datastructures import UploadFile
from starlette.requests import Request

from ..audio import SAMPLE_RATE, AudioError, load_audio
from ..tokenizer import LANGUAGES, TO_LANGUAGE_CODE
from .errors import APIError, bad_request

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")


@dataclass(frozen=True)
class TranscriptionRequest:
    audio: np.ndarray  # mono float32 at 16 kHz
    filename: str
    model: str
    task: str  # "transcribe" or "translate"
    language: str | None
    prompt: str | None
    temperature: float
    response_format: str
    granularities: tuple[str, ...]
    stream: bool

    @property
    def duration(self) -> float:
        return len(self.audio) / SAMPLE_RATE

    def transcribe_options(self) -> dict:
        """start_transcriptions' keyword arguments; requests with equal options share batches."""
        # temperature 0 is OpenAI's "raise it when the result looks wrong": whisper's schedule
        temperature = (0.0, 0.2, 0.4, 0.6, 0.8, 1.0) if self.temperature == 0 else self.temperature
        return dict(
            task=self.task,
            language=self.language,
            initial_prompt=self.prompt,
            temperature=temperature,
            word_timestamps="word" in self.granularities,
        )


async def read_form(request: Request, max_bytes: int):
    """The request's form, refusing (413) a body larger than max_bytes while it is read."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise _too_large(max_bytes)
    received = 0
    receive = request.receive

    async def counting_receive():
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > max_bytes:
                raise _too_large(max_bytes)
        return message

    counted = Request(request.scope, counting_receive)
    try:
        return await counted.form(max_files=1, max_fields=32)
    except APIError:
        raise
    except Exception as error:  # starlette's multipart errors: the body is not a usable form
        raise bad_request(f"could not read the multipart form: {error}") from None


def _too_large(max_bytes: int) -> APIError:
    return APIError(
        413,
        f"the upload is larger than the server's limit of {max_bytes} bytes",
        param="file",
        code="file_too_large",
    )


async def decode_upload(upload: UploadFile) -> np.ndarray:
    """The uploaded file's audio; 400 naming the file and the reason when it has none."""
    name = os.path.basename(upload.filename or "upload")
    data = await upload.read()
    if not data:
        raise bad_request(f"{name}: the file is empty (0 bytes)", param="file")
    # PyAV opens paths; the temporary file's own path must never reach the client
    with tempfile.NamedTemporaryFile(suffix=os.path.splitext(name)[1]) as spool:
        spool.write(data)
        spool.flush()
        try:
            return load_audio(spool.name)
        except AudioError as error:
            raise bad_request(f"{name}: {error.reason.replace(spool.name, name)}", "file") from None


def _language(value: str | None) -> str | None:
    if not value:
        return None
    code = value.lower()
    code = TO_LANGUAGE_CODE.get(code, code)
    if code not in LANGUAGES:
        raise bad_request(f"unknown language {value!r}: expected an ISO-639-1 code", "language")
    return code


def _temperature(value: str | None) -> float:
    if value is None or value == "":
        return 0.0
    try:
        temperature = float(value)
    except ValueError:
        raise bad_request(f"temperature {value!r} is not a number", "temperature") from None
    if not 0.0 <= temperature <= 1.0:
        raise bad_request(f"temperature {temperature} is outside 0..1", "temperature")
    return temperature


def _stream(value: str | None) -> bool:
    if value is None or value.lower() in ("", "false"):
        return False
    if value.lower() == "true":
        return True
    raise bad_request(f"stream {value!r} is not true or false", "stream")


async def parse_request(
    request: Request,
    task: str,
    models: tuple[str, ...],
    max_bytes: int,
    multilingual: bool,
) -> TranscriptionRequest:
    form = await read_form(request, max_bytes)
    model = form.get("model")
    if not model:
        raise bad_request("the model field is required", "model")
    if model not in models:
        raise APIError(
            404,
            f"the model {model!r} does not exist: this server has {', '.join(models)}",
            param="model",
            code="model_not_found",
        )
    response_format = form.get("response_format") or "json"
    if response_format not in RESPONSE_FORMATS:
        raise bad_request(
            f"response_format {response_format!r}: expected one of {', '.join(RESPONSE_FORMATS)}",
            "response_format",
        )
    granularities = tuple(dict.fromkeys(form.getlist("timestamp_granularities[]")))
    for granularity in granularities:
        if granularity not in GRANULARITIES:
            raise bad_request(
                f"timestamp granularity {granularity!r}: expected segment or word",
                "timestamp_granularities",
            )
    if granularities and response_format != "verbose_json":
        raise bad_request(
            "timestamp_granularities needs response_format verbose_json", "timestamp_granularities"
        )
    language = _language(form.get("language"))
    if not multilingual:
        if task == "translate":
            raise bad_request(f"{model} is English-only: it cannot translate", "model")
        if language not in (None, "en"):
            raise bad_request(f"{model} is English-only: language must be en", "language")
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise bad_request("the file field is required (a multipart file upload)", "file")
    return TranscriptionRequest(
        audio=await decode_upload(upload),
        filename=os.path.basename(upload.filename or "upload"),
        model=model,
        task=task,
        language=language,
        prompt=form.get("prompt") or None,
        temperature=_temperature(form.get("temperature")),
        response_format=response_format,
        granularities=granularities,
        stream=_stream(form.get("stream")),
    )
