"""`maxwhisper-server`: flags, the model loaded once, and uvicorn serving the app.

uvicorn handles SIGTERM and SIGINT itself: it stops accepting connections and waits for the
requests in flight; the app's lifespan then stops the scheduler once its queue is empty.
"""

from __future__ import annotations

import argparse
import logging

import uvicorn

from .. import COMPUTE_TYPES, load_model
from .app import ServerConfig, create_app


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="maxwhisper-server",
        description="An OpenAI-compatible transcription server (POST /v1/audio/transcriptions).",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add("--host", default="127.0.0.1", help="address to listen on")
    add("--port", type=int, default=8000, help="port to listen on")
    add("--model", default="tiny.en", help="model name or checkpoint path")
    add("--compute_type", choices=COMPUTE_TYPES, default="default",
        help="storage of the decoder's weight matrices")  # fmt: skip
    add("--api-key", default=None, help="require 'Authorization: Bearer KEY' on /v1/ routes")
    add("--max-upload-mb", type=float, default=25.0, help="largest accepted upload, in MiB")
    add("--max-batch", type=int, default=8, help="most windows (one per request) decoded per round")
    add("--max-queue", type=int, default=64,
        help="most unfinished requests (queued or being decoded) before 429")  # fmt: skip
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    if args.max_batch < 1 or args.max_queue < 1 or args.max_upload_mb <= 0:
        build_parser().error("--max-batch, --max-queue and --max-upload-mb must be positive")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    model = load_model(args.model, compute_type=args.compute_type)
    config = ServerConfig(
        model_name=str(args.model),
        api_key=args.api_key,
        max_upload_bytes=int(args.max_upload_mb * 1024 * 1024),
        max_batch=args.max_batch,
        max_queue=args.max_queue,
    )
    uvicorn.run(create_app(model, config), host=args.host, port=args.port, log_level="info")
