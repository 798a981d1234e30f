"""A maxwhisper server on 127.0.0.1 for tests: uvicorn in a thread of the test process, on a
port the OS picks, stopped when the block ends."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

import uvicorn

from maxwhisper_kernels.server import ServerConfig, create_app

SERVER_API_KEY = "test-key"  # the session server's (conftest.server_url)


@contextlib.contextmanager
def running_server(model, config: ServerConfig, start_timeout: float = 30.0):
    """Yields the server's base URL (http://127.0.0.1:PORT)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(model, config), log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()
