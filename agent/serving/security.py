"""Who may talk to the server and how much they may send.

- Loopback by default; binding any other interface needs a bearer token (the server refuses to start
  without one), because a policy server drives a robot. A token has at least 16 bytes: an empty or
  short token file stops the server at start, naming the file.
- ``Authorization: Bearer TOKEN`` on every path but /health (/docs and /openapi.json too), compared in
  constant time, checked before anything reads the body (a bad body without a token is 401, not 422).
- HTTP bodies larger than the limit get 413 before they are read (Content-Length) or while they are
  streamed (chunked uploads); a body not received within ``body_timeout_s`` gets 408 and the connection
  closes. Websocket frames are capped by uvicorn's ``ws_max_size`` and re-checked here.
- Header size, header timeout and per-client connection caps: agent/serving/connections.py.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import os
import time
from typing import Any

from fastapi import HTTPException

from agent.serving.config import MIN_TOKEN_BYTES

TOKEN_ENV = "UIO2_SERVE_TOKEN"
OPEN_PATHS = frozenset({"/health"})
CLOSE = [(b"connection", b"close")]


class InsecureBindError(ValueError):
    """Binding a non-loopback interface without a (long enough) token."""


class TokenError(ValueError):
    """A token file or $UIO2_SERVE_TOKEN that is unreadable, empty or too short; names where it came from."""


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
    if len(token.encode()) < MIN_TOKEN_BYTES:
        raise InsecureBindError(
            f"the token must have at least {MIN_TOKEN_BYTES} bytes, got {len(token.encode())}"
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


class TokenAuth:
    """ASGI middleware: 401 (HTTP) or a close before accept (websocket, HTTP 403) without the bearer token.

    Outermost, so it runs before the body is read or validated; every path but /health needs it.
    """

    def __init__(self, app: Any, token: str | None) -> None:
        self.app = app
        self.token = token

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if self.token is None or scope["type"] not in ("http", "websocket") or scope["path"] in OPEN_PATHS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope.get("headers") or []}
        if token_matches(self.token, headers):
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008, "reason": "missing or wrong token"})
        else:
            detail = "missing or wrong token: send the header 'Authorization: Bearer TOKEN'"
            await _send_error(send, 401, detail, [(b"www-authenticate", b"Bearer")])


def read_token(token_file: str | None) -> str | None:
    """The token from a file (first line) or from $UIO2_SERVE_TOKEN; None when neither is given.

    TokenError naming the file (or the variable) when it is empty or shorter than 16 bytes: a server
    told to use a token must never start without one.
    """
    if token_file:
        try:
            with open(token_file, encoding="utf-8") as f:
                token = f.readline().strip()
        except (OSError, UnicodeDecodeError) as e:
            raise TokenError(f"cannot read the token file {token_file!r}: {e}") from None
        where = f"the token file {token_file!r}"
    else:
        token = os.environ.get(TOKEN_ENV)
        if token is None:
            return None
        token = token.strip()
        where = f"${TOKEN_ENV}"
    if not token:
        raise TokenError(
            f"{where} is empty: put a token of at least {MIN_TOKEN_BYTES} bytes on its first line"
        )
    if len(token.encode()) < MIN_TOKEN_BYTES:
        raise TokenError(
            f"{where} holds a token of {len(token.encode())} bytes, at least {MIN_TOKEN_BYTES} bytes needed "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


class PayloadTooLarge(HTTPException):
    def __init__(self, size: int, limit: int) -> None:
        super().__init__(413, detail=f"request body of {size} bytes exceeds the limit of {limit} bytes")


class BodyTimeout(HTTPException):
    def __init__(self, seconds: float) -> None:
        super().__init__(408, detail=f"request body not received within {seconds:g} s")


class BodySizeLimit:
    """ASGI middleware: 413 for HTTP bodies over ``max_bytes`` (declared or streamed), 408 for bodies
    not received within ``timeout_s`` of the request's headers."""

    def __init__(self, app: Any, max_bytes: int, timeout_s: float = 30.0) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.timeout_s = timeout_s

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
        failed = False  # the body timed out: close the connection after the answer, do not drain it
        deadline = time.monotonic() + self.timeout_s

        async def limited_receive() -> dict:
            nonlocal received, failed
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - time.monotonic()))
            except TimeoutError:
                failed = True
                raise BodyTimeout(self.timeout_s) from None
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
                if failed:
                    message = {**message, "headers": [*message.get("headers", []), *CLOSE]}
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except (PayloadTooLarge, BodyTimeout) as e:
            if not started:
                await _send_error(send, e.status_code, e.detail, CLOSE if failed else None)


async def _send_error(send: Any, status: int, detail: str, extra: list | None = None) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
