"""The HTTP layer: routes that parse a request, hand its audio to the scheduler, and format
the result. Nothing here touches the model directly.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from fastapi.responses import StreamingResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .errors import APIError, error_body, error_response
from .formats import FORMATTERS, sse_delta, sse_done, sse_error
from .metrics import Metrics
from .page import PAGE
from .request import parse_request
from .scheduler import QueueFull, Scheduler, ShuttingDown

log = logging.getLogger("maxwhisper.server")

RETRY_AFTER_S = 1  # what a client told "queue full" should wait before trying again
INTERNAL = APIError(500, "internal server error", type="server_error", retry=True)
CREATED = 1_700_000_000  # a fixed "created" for /v1/models: the checkpoints carry no date


@dataclass(frozen=True)
class ServerConfig:
    model_name: str
    api_key: str | None = None
    max_upload_bytes: int = 25 * 1024 * 1024
    max_batch: int = 8
    max_queue: int = 64

    @property
    def model_ids(self) -> tuple[str, ...]:
        # whisper-1 is the name OpenAI's examples use; it means this server's model
        return (self.model_name, "whisper-1")


class RequireAPIKey:
    """'Authorization: Bearer KEY' on the /v1/ routes, else 401. A plain ASGI middleware rather
    than @app.middleware("http"): starlette's BaseHTTPMiddleware wraps the receive channel, and
    behind it request.is_disconnected() never sees the client hang up."""

    def __init__(self, app, key: str) -> None:
        self.app = app
        self.expected = f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            sent = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(sent, self.expected):
                error = APIError(401, "missing or wrong API key", code="invalid_api_key")
                await error_response(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(model, config: ServerConfig) -> FastAPI:
    metrics = Metrics()
    scheduler_box: dict[str, Scheduler] = {}

    async def lifespan(app: FastAPI):
        scheduler_box["s"] = Scheduler(model, config.max_batch, config.max_queue, metrics)
        yield
        # uvicorn has already stopped accepting and let in-flight requests finish
        await asyncio.to_thread(scheduler_box["s"].close)

    app = FastAPI(title="maxwhisper-server", lifespan=lifespan, docs_url=None, redoc_url=None)

    @app.exception_handler(APIError)
    async def _api_error(request: Request, error: APIError):
        return error_response(error)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, error: StarletteHTTPException):
        return error_response(APIError(error.status_code, str(error.detail)))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, error: RequestValidationError):
        return error_response(APIError(422, "the request's fields are not valid"))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception):
        log.exception("unexpected error on %s", request.url.path)
        return error_response(INTERNAL)

    if config.api_key is not None:
        app.add_middleware(RequireAPIKey, key=config.api_key)

    async def _transcription(request: Request, task: str) -> Response:
        started = time.monotonic()
        metrics.add_in_progress(1)
        try:
            parsed = await parse_request(
                request, task, config.model_ids, config.max_upload_bytes, model.is_multilingual
            )
            if parsed.stream:
                stream = _stream(request, parsed, started)
                metrics.add_in_progress(1)  # the stream's own, handed back when it ends
                return StreamingResponse(stream, media_type="text/event-stream")
            job = _submit(parsed)
            result = await _watch(request, job, asyncio.wrap_future(job.future))
        except APIError as error:
            metrics.count_request(task, error.status)
            raise
        except Exception:
            metrics.count_request(task, 500)
            raise
        finally:
            metrics.add_in_progress(-1)
        _answered(parsed, started)
        return FORMATTERS[parsed.response_format](result, parsed)

    def _submit(parsed, on_segments=None):
        try:
            return scheduler_box["s"].submit(
                parsed.audio, parsed.transcribe_options(), on_segments
            )
        except QueueFull:
            raise APIError(
                429,
                "the server is busy: too many queued requests",
                type="rate_limit_error",
                retry=True,
                headers={"Retry-After": str(RETRY_AFTER_S)},
            ) from None
        except ShuttingDown:
            raise APIError(
                503, "the server is shutting down", type="server_error", retry=True
            ) from None

    def _answered(parsed, started: float) -> None:
        metrics.count_request(parsed.task, 200)
        metrics.observe_transcription(parsed.duration, time.monotonic() - started)

    def _stream(request: Request, parsed, started: float):
        """Server-sent events: a delta per segment as the scheduler decodes it, then done. The
        job is submitted here, before the 200 goes out, so a full queue is still a 429."""
        loop = asyncio.get_running_loop()
        segments: asyncio.Queue[list[dict] | None] = asyncio.Queue()
        job = _submit(parsed, lambda new: loop.call_soon_threadsafe(segments.put_nowait, new))
        # queued after the last segments, since the worker publishes them before the result
        job.future.add_done_callback(lambda _: loop.call_soon_threadsafe(segments.put_nowait, None))

        async def events():
            try:
                while (new := await _watch(request, job, segments.get())) is not None:
                    for segment in new:
                        yield sse_delta(segment)
                result = job.future.result()
            except APIError as error:  # the client went away
                metrics.count_request(parsed.task, error.status)
                return
            except Exception:  # noqa: BLE001 - the status is sent: the error goes as an event
                log.exception("transcription failed while streaming")
                metrics.count_request(parsed.task, 500)
                yield sse_error(error_body(INTERNAL))
                return
            finally:
                if not job.future.done():  # closed by the server (disconnect seen on a write)
                    job.cancel()
                metrics.add_in_progress(-1)
            _answered(parsed, started)
            yield sse_done(result)

        return events()

    async def _watch(request: Request, job, awaitable):
        """What awaitable gives, unless the client goes away first: then the job is dropped
        from the engine at its next round and the request ends with 499."""
        waiting = asyncio.ensure_future(awaitable)
        while True:
            done, _ = await asyncio.wait({waiting}, timeout=0.5)
            if done:
                return waiting.result()
            if await request.is_disconnected():
                waiting.cancel()
                job.cancel()
                raise APIError(499, "the client closed the request")

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(request: Request) -> Response:
        return await _transcription(request, "transcribe")

    @app.post("/v1/audio/translations")
    async def translations(request: Request) -> Response:
        return await _transcription(request, "translate")

    @app.get("/v1/models")
    async def models() -> JSONResponse:
        data = [
            {"id": name, "object": "model", "created": CREATED, "owned_by": "maxwhisper"}
            for name in config.model_ids
        ]
        return JSONResponse({"object": "list", "data": data})

    @app.get("/health")
    async def health() -> JSONResponse:
        return JSONResponse({"status": "ok", "model": config.model_name})

    @app.get("/metrics")
    async def metrics_text() -> PlainTextResponse:
        return PlainTextResponse(metrics.render(), media_type="text/plain; version=0.0.4")

    @app.get("/")
    async def page() -> HTMLResponse:
        return HTMLResponse(PAGE)

    return app
