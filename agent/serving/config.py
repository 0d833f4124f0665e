"""The limits of one inference server: what ``uio2 serve``'s options set and what the app and uvicorn enforce."""

from __future__ import annotations

from dataclasses import dataclass

MIN_TOKEN_BYTES = 16
MAX_HEADER_BYTES = 64 * 1024  # request line + headers, however the client splits them into sends


@dataclass
class ServerConfig:
    """Limits and batching of one server (the command-line options of ``uio2 serve``)."""

    token: str | None = None
    max_request_bytes: int = 4 * 1024 * 1024  # HTTP body and websocket frame
    max_sessions: int = 64
    max_batch: int = 8  # 1 turns batching off
    max_wait_ms: float = 2.0
    max_pending: int = 256  # requests waiting for the model; more get 503
    idle_timeout_s: float = 300.0  # a control session silent this long is closed (frees its slot)
    # Slow clients: a connection must finish its request line and headers, then its body, in these times
    # (else 408 and the connection is closed), and one address may hold at most this many connections.
    header_timeout_s: float = 10.0
    body_timeout_s: float = 30.0
    max_connections_per_client: int = 64

    def __post_init__(self) -> None:
        if self.token is not None and len(self.token.encode()) < MIN_TOKEN_BYTES:
            raise ValueError(
                f"the token must have at least {MIN_TOKEN_BYTES} bytes, got {len(self.token.encode())}"
            )
        for name in ("header_timeout_s", "body_timeout_s", "idle_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)!r}")
        if self.max_connections_per_client < 1:
            raise ValueError(
                f"max_connections_per_client must be >= 1, got {self.max_connections_per_client}"
            )
