"""`python -m maxwhisper_kernels.server` as its own process: SIGTERM while a request is being
transcribed lets that request finish with its full answer, then the process exits cleanly."""

from __future__ import annotations

import concurrent.futures
import json
import signal
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from clips import SHARED_AUDIO

openai = pytest.importorskip("openai")

JFK = SHARED_AUDIO / "jfk.flac"
START_TIMEOUT_S = 300  # loading compiles graphs when the cache is cold


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _get(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.read().decode()
    except OSError:
        return None


def _gauge(url: str, name: str) -> float:
    for line in (_get(f"{url}/metrics") or "").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return 0.0


def test_sigterm_finishes_the_request_in_flight(tiny_en):
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "maxwhisper_kernels.server", "--port", str(port)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while _get(f"{url}/health") is None:
            assert server.poll() is None, server.stdout.read()
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.5)
        assert json.loads(_get(f"{url}/health"))["status"] == "ok"

        client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", max_retries=0, timeout=120)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            answer = pool.submit(
                lambda: client.audio.transcriptions.create(model="tiny.en", file=JFK).text
            )
            while _gauge(url, "maxwhisper_requests_in_progress") < 1 and not answer.done():
                time.sleep(0.02)
            server.send_signal(signal.SIGTERM)
            text = answer.result(timeout=120)
        assert text == tiny_en.transcribe(str(JFK))["text"]
        # uvicorn re-raises the signal it caught once it has shut down cleanly
        assert server.wait(timeout=60) == -signal.SIGTERM
        log = server.stdout.read()
        assert "Finished server process" in log and "Traceback" not in log
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
