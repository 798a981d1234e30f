"""Errors in the shape the openai client parses: {"error": {"message", "type", "param", "code"}}.

The client retries 408/409/429/5xx unless told not to; a failure that would fail the same way
again (bad input, unknown model) says so with `x-should-retry: false`, so a client does not
upload the same file three times.
"""

from __future__ import annotations

from fastapi.responses import JSONResponse


class APIError(Exception):
    """A request the server answers with an OpenAI-style error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        retry: bool = False,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.retry = retry
        self.headers = headers or {}


def error_body(error: APIError) -> dict:
    return {
        "error": {
            "message": error.message,
            "type": error.type,
            "param": error.param,
            "code": error.code,
        }
    }


def error_response(error: APIError) -> JSONResponse:
    headers = dict(error.headers)
    if not error.retry:
        headers["x-should-retry"] = "false"
    return JSONResponse(error_body(error), status_code=error.status, headers=headers)


def bad_request(message: str, param: str | None = None) -> APIError:
    return APIError(400, message, param=param)
