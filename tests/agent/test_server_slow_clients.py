"""A slow-client flood (loopback only, bounded) cannot stop /health or an authenticated request.

The flood comes from 127.0.0.2 and 127.0.0.3 (loopback addresses of this machine): connections that
trickle their headers forever, and authenticated ones that trickle their body. Without the header and
body timeouts and the per-client cap, they would fill uvicorn's connection limit (here 20) and every
new request, /health included, would get 503 until they closed.
"""

import socket
import statistics
import threading
import time

import httpx
import numpy as np
import pytest

from agent.client import observation_to_json
from agent.server import ServerConfig, create_app
from agent.serving.launch import BackgroundServer

TOKEN = "slow-client-test-token-0123456789"
CAP = 8  # connections per client address
TIMEOUT_S = 1.0  # header and body timeouts


@pytest.fixture(scope="module")
def server(tiny_checkpoint):
    from agent.policy import Policy

    config = ServerConfig(
        token=TOKEN,
        max_sessions=4,
        max_pending=16,  # uvicorn's limit_concurrency: 20 connections
        header_timeout_s=TIMEOUT_S,
        body_timeout_s=TIMEOUT_S,
        max_connections_per_client=CAP,
    )
    s = BackgroundServer(create_app(Policy.from_pretrained(tiny_checkpoint), config))
    s.start()
    yield s
    s.stop()


class SlowClient:
    """One connection from ``source`` that sends ``head`` and then trickles ``trickle`` every 0.2 s."""

    def __init__(self, port: int, source: str, head: bytes, trickle: bytes) -> None:
        self.sock = socket.socket()
        self.sock.bind((source, 0))
        self.sock.settimeout(5)
        self.sock.connect(("127.0.0.1", port))
        self.sock.sendall(head)
        self.trickle = trickle
        self.reply = b""
        self.closed_at: float | None = None

    def step(self) -> None:
        if self.closed_at is not None:
            return
        try:
            self.sock.sendall(self.trickle)
            self.sock.setblocking(False)
            try:
                data = self.sock.recv(4096)
                self.reply += data
                if not data:
                    self.closed_at = time.monotonic()
            except BlockingIOError:
                pass
            finally:
                self.sock.setblocking(True)
        except OSError:  # reset or broken pipe: the server closed it
            self.closed_at = time.monotonic()

    def close(self) -> None:
        self.sock.close()


def test_a_slow_client_flood_cannot_stop_health_nor_an_authenticated_request(server, policy_obs=None):
    port = server.port
    obs = {
        "images": {"scene": np.zeros((96, 96, 3), np.uint8)},
        "state": np.zeros(8, np.float32),
        "instruction": "push the red cube to the left",
    }
    auth = {"Authorization": f"Bearer {TOKEN}"}
    slow_head = b"POST /v1/action_chunk HTTP/1.1\r\nHost: x\r\n"
    body_head = (
        f"POST /v1/action_chunk HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
        "Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{"
    ).encode()
    protocol = server.server.config.http  # the guarded h11 protocol class of this server
    refused_before = protocol.refused
    flood: list[SlowClient] = []
    refused_at_connect = 0
    for i in range(60):  # 3x uvicorn's connection limit
        source, head, trickle = (
            ("127.0.0.2", slow_head, b"X-Slow: 1\r\n") if i % 2 else ("127.0.0.3", body_head, b" ")
        )
        try:
            flood.append(SlowClient(port, source, head, trickle))
        except OSError:
            refused_at_connect += 1
    stop = threading.Event()

    def trickle():
        while not stop.is_set():
            for c in flood:
                c.step()
            stop.wait(0.2)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    health_ms, statuses = [], []
    try:
        time.sleep(0.3)  # the flood is in place
        with httpx.Client(base_url=server.url, timeout=10) as http:
            start = time.monotonic()
            while time.monotonic() - start < 2.5:  # through the timeouts of the first wave and after
                t = time.perf_counter()
                statuses.append(http.get("/health").status_code)
                health_ms.append(1000 * (time.perf_counter() - t))
                time.sleep(0.05)
            r = http.post("/v1/action_chunk", json={"observation": observation_to_json(obs)}, headers=auth)
            assert r.status_code == 200, r.text
    finally:
        stop.set()
        thread.join(timeout=5)
        for c in flood:
            c.close()
    assert statuses and set(statuses) == {200}, statuses
    replies = [c.reply.split(b"\r\n", 1)[0] for c in flood]
    capped = protocol.refused - refused_before  # closed at once: most never read the 503 line
    header_timeouts = sum(
        r.startswith(b"HTTP/1.1 408") and b"headers" in c.reply for r, c in zip(replies, flood)
    )
    body_timeouts = sum(r.startswith(b"HTTP/1.1 408") and b"body" in c.reply for r, c in zip(replies, flood))
    print(
        f"\nslow-client flood of {len(flood)}: /health {len(health_ms)} x 200, median "
        f"{statistics.median(health_ms):.1f} ms, max {max(health_ms):.1f} ms; {capped} refused at the "
        f"per-client cap, {header_timeouts} header and {body_timeouts} body timeouts (408)"
    )
    assert max(health_ms) < 1000
    assert capped >= 60 - 2 * CAP - refused_at_connect  # each address held at most CAP connections
    assert header_timeouts >= 1 and body_timeouts >= 1
    assert all(c.closed_at is not None for c in flood), "every flood connection was closed by the server"


def recv_all(sock: socket.socket) -> bytes:
    """Everything until the server closes the connection (a 408 says ``connection: close``)."""
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


def test_half_sent_headers_get_408_within_the_header_timeout(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        start = time.monotonic()
        s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n")
        reply = recv_all(s)
        took = time.monotonic() - start
    assert reply.startswith(b"HTTP/1.1 408") and b"not received within 1 s" in reply, reply
    assert TIMEOUT_S - 0.05 <= took < TIMEOUT_S + 1.0, took


def test_an_authenticated_slow_body_gets_408(server):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(
            f"POST /v1/caption HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {TOKEN}\r\n"
            "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{".encode()
        )
        reply = recv_all(s)
    assert reply.startswith(b"HTTP/1.1 408") and b"request body not received within 1 s" in reply, reply
    assert b"connection: close" in reply.lower()
