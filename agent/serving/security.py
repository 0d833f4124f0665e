"""Who may talk to the server and how much they may send.

- Loopback by default; binding any other interface needs a bearer token (the server refuses to start
  without one), because a policy server drives a robot.
- ``Authorization: Bearer TOKEN`` on every endpoint but /health, compared in constant time.
- HTTP bodies larger than the limit get 413 before they are read (Content-Length) or while they are
  streamed (chunked uploads); websocket frames are capped by uvicorn's ``ws_max_size`` and re-checked here.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import os
from typing import Any

from fastapi import HTTPException, Request, WebSocket

TOKEN_ENV = "UIO2_SERVE_TOKEN"
MIN_TOKEN_CHARS = 16


class InsecureBindError(ValueError):
    """Binding a non-loopback interface without a (long enough) token."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name other than localhost: could resolve to anything
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the server beyond this machine without a token."""
    if is_loopback(host):
        return
    if not token:
        raise InsecureBindError(
            f"refusing to bind {host!r} without a token: pass --token-file FILE or set {TOKEN_ENV} "
            f"(any interface other than loopback needs one), or use --host 127.0.0.1"
        )
    if len(token) < MIN_TOKEN_CHARS:
        raise InsecureBindError(
            f"the token must have at least {MIN_TOKEN_CHARS} characters, got {len(token)}"
        )


def _bearer(headers: Any) -> str | None:
    value = headers.get("authorization")
    if not value or not value.lower().startswith("bearer "):
        return None
    return value[7:].strip()


def token_matches(expected: str | None, headers: Any) -> bool:
    if expected is None:
        return True
    given = _bearer(headers)
    return given is not None and hmac.compare_digest(given.encode(), expected.encode())


class TokenGuard:
    """FastAPI dependency: 401 without a valid bearer token (no-op when the server has no token)."""

    def __init__(self, token: str | None) -> None:
        self.token = token

    async def __call__(self, request: Request) -> None:
        if not token_matches(self.token, request.headers):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong token: send the header 'Authorization: Bearer TOKEN'",
                headers={"WWW-Authenticate": "Bearer"},
            )

    def websocket_ok(self, websocket: WebSocket) -> bool:
        return token_matches(self.token, websocket.headers)


def read_token(token_file: str | None) -> str | None:
    """The token from a file (first line) or from $UIO2_SERVE_TOKEN; None when neither is set."""
    if token_file:
        with open(token_file, encoding="utf-8") as f:
            token = f.readline().strip()
        return token or None
    return os.environ.get(TOKEN_ENV) or None


class PayloadTooLarge(HTTPException):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(413, detail=f"request body of {size} bytes exceeds the limit of {limit} bytes")


class BodySizeLimit:
    """ASGI middleware: 413 for HTTP bodies over ``max_bytes`` (declared or streamed)."""

    def __init__(self, app: Any, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            try:
                size = int(declared)
            except ValueError:
                size = -1
            if size < 0:
                await _send_error(send, 400, f"invalid Content-Length header {declared[:40]!r}")
                return
            if size > self.max_bytes:
                await _send_error(send, 413, PayloadTooLarge(size, self.max_bytes).detail)
                return
        received = 0
        started = False

        async def limited_receive() -> dict:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    # An HTTPException, so FastAPI's body reader passes it on as a 413 response.
                    raise PayloadTooLarge(received, self.max_bytes)
            return message

        async def tracking_send(message: dict) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except PayloadTooLarge as e:
            if not started:
                await _send_error(send, 413, e.detail)


async def _send_error(send: Any, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
