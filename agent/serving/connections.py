"""Slow and greedy clients at the connection level: uvicorn's h11 protocol with three more limits.

uvicorn times out idle keep-alive connections but not a request that is half sent, and counts every
open connection against ``limit_concurrency``: a few hundred connections trickling their headers
would make every new request, /health included, get 503 before authentication is even checked.
So each connection here must

- finish its request line and headers within ``header_timeout_s`` (else 408, then closed),
- keep them under ``MAX_HEADER_BYTES`` however they are split into sends (else 431, then closed;
  h11's own limit only applies to data still incomplete, so one large send got through), and
- come from an address holding fewer than ``max_connections_per_client`` connections (else 503 at once).

Bodies are timed by the BodySizeLimit middleware (agent/serving/security.py), after authentication.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from agent.serving.config import MAX_HEADER_BYTES

log = logging.getLogger("uio2.serve")
END_OF_HEADERS = b"\r\n\r\n"
LINGER_S = 1.0


def guarded_protocol(
    header_timeout_s: float, max_per_client: int, max_header_bytes: int = MAX_HEADER_BYTES
) -> type[H11Protocol]:
    """An H11Protocol class with these limits (uvicorn.Config(http=...) takes a class)."""
    return type(
        "GuardedH11Protocol",
        (GuardedH11Protocol,),
        {
            "header_timeout_s": header_timeout_s,
            "max_per_client": max_per_client,
            "max_header_bytes": max_header_bytes,
        },
    )


class GuardedH11Protocol(H11Protocol):
    header_timeout_s = 10.0
    max_per_client = 64
    max_header_bytes = MAX_HEADER_BYTES
    refused = 0  # connections refused for the per-client cap (class-wide; for tests and logs)
    _last_log = 0.0

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._awaiting_headers = True
        self._discarding = False
        self._header_bytes = 0
        self._tail = b""
        self._header_timer: asyncio.TimerHandle | None = None
        host = self.client[0] if self.client else None
        if host is not None:
            # Upgraded websockets are in ``connections`` too (their own protocol objects, same ``client``).
            held = sum(1 for c in self.connections if getattr(c, "client", None) and c.client[0] == host)
            if held > self.max_per_client:
                type(self).refused += 1
                self._refuse(
                    503, f"too many connections from {host} (limit {self.max_per_client})", linger=False
                )
                return
        self._arm_header_timer()

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _disarm_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        if self._discarding or self.transport.is_closing():
            return
        if self._draining():  # an answered request whose body still trickles in: no one waits for it
            self.transport.close()
        elif self._awaiting_headers:
            if self._header_bytes:  # something was sent: say why it is cut off; an idle socket just closes
                self._refuse(408, f"request headers not received within {self.header_timeout_s:g} s")
            else:
                self.transport.close()

    def _refuse(self, status: int, text: str, linger: bool = True) -> None:
        now = time.monotonic()
        if now - GuardedH11Protocol._last_log >= 1.0:  # a flood must not become a log flood
            GuardedH11Protocol._last_log = now
            log.warning("%s: %s", self.client[0] if self.client else "?", text)
        phrase = {408: "Request Timeout", 431: "Request Header Fields Too Large", 503: "Service Unavailable"}
        body = text.encode()
        head = (
            f"HTTP/1.1 {status} {phrase[status]}\r\ncontent-type: text/plain; charset=utf-8\r\n"
            f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
        ).encode()
        self._awaiting_headers = False
        self._disarm_header_timer()
        self._discarding = True
        self.connections.discard(self)  # a refused connection no longer counts against any limit
        self.transport.write(head + body)
        # Lingering close: closing with the client's data unread would reset the connection and could
        # lose this answer, so end our side, drop what still comes, and close after LINGER_S.
        if linger and self.transport.can_write_eof():
            self.transport.write_eof()
            self.loop.call_later(LINGER_S, self.transport.close)
        else:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        if self._discarding or self.transport.is_closing():
            return
        if self._awaiting_headers:
            if self._header_timer is None:  # the next request on a kept-alive connection
                self._arm_header_timer()
            end = (self._tail + data).find(END_OF_HEADERS)
            if end < 0:
                self._header_bytes += len(data)
                self._tail = data[-3:] if len(data) >= 3 else (self._tail + data)[-3:]
            else:
                self._header_bytes += end + len(END_OF_HEADERS) - len(self._tail)
            if self._header_bytes > self.max_header_bytes:
                self._refuse(431, f"request line and headers exceed {self.max_header_bytes} bytes")
                return
            if end >= 0:
                self._awaiting_headers = False
                self._disarm_header_timer()
        super().data_received(data)
        if not self._awaiting_headers and self._between_requests():
            self._expect_headers()  # an answered request's unread body has been drained

    def _between_requests(self) -> bool:
        return self.conn.their_state is h11.IDLE and (self.cycle is None or self.cycle.response_complete)

    def _expect_headers(self) -> None:
        self._awaiting_headers, self._header_bytes, self._tail = True, 0, b""  # timer armed by the next data

    def _draining(self) -> bool:
        answered = self.cycle is not None and self.cycle.response_complete
        return answered and self.conn.their_state is h11.SEND_BODY

    def on_response_complete(self) -> None:
        if self.conn.their_state is h11.DONE:  # the whole request was read: what comes next is a new one
            self._expect_headers()
        elif self.conn.their_state is h11.SEND_BODY:  # answered early (413): its body is drained, in time
            self._disarm_header_timer()
            self._arm_header_timer()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm_header_timer()
        super().connection_lost(exc)


def protocol_options(config: Any) -> dict[str, Any]:
    """uvicorn.Config keyword arguments for a ServerConfig's connection limits."""
    return {
        "http": guarded_protocol(config.header_timeout_s, config.max_connections_per_client),
        "h11_max_incomplete_event_size": MAX_HEADER_BYTES,
    }
