"""Start the server: uvicorn with our limits, in the foreground (``uio2 serve``) or on a thread (tests, benchmarks)."""

from __future__ import annotations

import socket
import threading
import time
from typing import Any

import uvicorn

from agent.serving.config import ServerConfig
from agent.serving.connections import protocol_options


def uvicorn_config(
    app: Any, host: str = "127.0.0.1", port: int = 8000, log_level: str = "info"
) -> uvicorn.Config:
    """uvicorn settings that enforce the app's ServerConfig limits at the protocol layer too."""
    config: ServerConfig = app.state.config
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        ws_max_size=config.max_request_bytes,  # larger frames: connection closed with 1009
        ws_per_message_deflate=False,  # a compressed frame could inflate past the limit
        # h11 with header size and time limits and a per-client connection cap (agent/serving/connections.py)
        **protocol_options(config),
        timeout_keep_alive=5,
        # Connections beyond this get 503 from uvicorn instead of queueing without bound.
        limit_concurrency=config.max_sessions + config.max_pending,
        lifespan="on",
    )


class BackgroundServer:
    """A real uvicorn server on 127.0.0.1 and a free port, on a thread: ``with BackgroundServer(app, cfg) as url``."""

    def __init__(self, app: Any, log_level: str = "warning") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.server = uvicorn.Server(uvicorn_config(app, port=self.port, log_level=log_level))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> str:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start on port {self.port}")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()

    def __enter__(self) -> str:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
