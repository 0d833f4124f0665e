"""What an outside test of ``uio2 serve`` broke (issue 16), pinned: deep msgpack, lone surrogates, the
timestamp extension, coerced shapes, the header limit, and a state of the wrong length mid-chunk."""

import json
import logging
import socket
import time

import httpx
import msgpack
import numpy as np
import pytest
from websockets.sync.client import connect

from agent.client import observation_to_json
from agent.server import ServerConfig, create_app
from agent.serving.codec import packb, unpackb
from agent.serving.launch import BackgroundServer

STATE_DIMS = [0, 1, 2, 6, 7]  # as in the issue: the policy reads index 7, so the state needs 8 features


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint, state_dims=STATE_DIMS)


@pytest.fixture(scope="module")
def server(policy):
    s = BackgroundServer(create_app(policy, ServerConfig(max_request_bytes=512 * 1024)))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def observation(state_size=8, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "images": {"scene": rng.integers(0, 256, (96, 96, 3), dtype=np.uint8)},
        "state": rng.uniform(-1, 1, state_size).astype(np.float32),
        "instruction": "push the red cube to the left",
    }


def ws_session(server):
    ws = connect(server.url.replace("http", "ws") + "/v1/control", max_size=None, legacy=True)
    assert unpackb(ws.recv(timeout=30))["type"] == "metadata"
    return ws


def ask(ws, frame):
    ws.send(frame)
    return unpackb(ws.recv(timeout=60))


@pytest.mark.parametrize("depth", [300, 490, 1_000, 5_000, 100_000])
def test_deeply_nested_frames_get_400_and_no_traceback(server, policy, depth, caplog):
    caplog.set_level(logging.DEBUG)
    frame = b"\x82\xa4type\xa5reset\xa2id" + b"\x91" * depth + b"\x01"  # {"type": "reset", "id": [[[...1]]]}
    with ws_session(server) as ws:
        reply = ask(ws, frame)
        assert reply["type"] == "error" and reply["status"] == 400, reply
        assert "nests deeper than 32 levels" in reply["error"] and len(reply["error"]) < 300
        ok = ask(ws, packb({"type": "select_action", "observation": observation()}))  # the session lives on
        assert ok["type"] == "action" and np.isfinite(ok["action"]).all()
    log_text = "\n".join(r.getMessage() + str(r.exc_info or "") for r in caplog.records)
    assert "Traceback" not in log_text and "RecursionError" not in log_text and len(log_text) < 2000


def test_msgpack_timestamp_extension_is_refused_like_the_others(server):
    frame = msgpack.packb({"type": "reset", "id": msgpack.Timestamp(1, 0)})
    with ws_session(server) as ws:
        reply = ask(ws, frame)
        assert reply["status"] == 400 and "frame.id" in reply["error"] and "ext type -1" in reply["error"]


def _surrogate_body(endpoint: str, field: str) -> bytes:
    """A valid JSON body whose ``field`` holds a lone UTF-16 surrogate (JSON allows the escape)."""
    body = {"observation": observation_to_json(observation())}
    extra = {"/v1/answer": "question", "/v1/boxes": "name"}.get(endpoint)
    if endpoint in ("/v1/text", "/v1/image", "/v1/speech"):
        extra = "prompt"
    if extra:
        body[extra] = "what is this"
    if field == "instruction":
        body["observation"]["instruction"] = "SURROGATE"
    elif field == "camera":
        body["observation"]["images"]["SURROGATE"] = body["observation"]["images"]["scene"]
    else:
        body[field] = "SURROGATE"
    return json.dumps(body).replace("SURROGATE", "push \\ud800 it").encode()


ENDPOINTS = [
    "/v1/action_chunk",
    "/v1/caption",
    "/v1/answer",
    "/v1/boxes",
    "/v1/text",
    "/v1/image",
    "/v1/speech",
]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_lone_surrogates_get_422_naming_the_field_on_every_endpoint(http, endpoint):
    fields = {"instruction": "observation.instruction", "camera": "observation.images camera name"}
    extra = {"/v1/answer": "question", "/v1/boxes": "name", "/v1/text": "prompt"}
    extra.update({"/v1/image": "prompt", "/v1/speech": "prompt"})
    if endpoint in extra:
        fields[extra[endpoint]] = extra[endpoint]
    for field, named in fields.items():
        content = _surrogate_body(endpoint, field)
        r = http.post(endpoint, content=content, headers={"content-type": "application/json"})
        assert r.status_code == 422, (endpoint, field, r.status_code, r.text)
        detail = r.json()["detail"]
        assert named in detail and ("surrogate" in detail or "unicode" in detail.lower()), (
            endpoint,
            field,
            detail,
        )


@pytest.mark.parametrize(
    "shape, message",
    [(["96", "96", "3"], "shape.0"), ([True, True, 3], "shape.0"), ([96.0, 96, 3], "shape.0")],
)
def test_array_shapes_take_ints_only(http, shape, message):
    body = {"observation": observation_to_json(observation())}
    body["observation"]["images"]["scene"]["shape"] = shape
    if shape[0] is True:  # 3 bytes: what (1, 1, 3) would need, so only the type can refuse it
        body["observation"]["images"]["scene"]["bytes"] = "AAAA"
    r = http.post("/v1/action_chunk", json=body)
    assert r.status_code == 422 and message in r.json()["detail"] and "integer" in r.json()["detail"], r.text


def test_listen_takes_a_bool_only(http):
    body = {"observation": observation_to_json(observation()), "prompt": "what was said", "listen": "yes"}
    r = http.post("/v1/text", json=body)
    assert r.status_code == 422 and "listen" in r.json()["detail"], r.text


def _raw_request(url: str, head: bytes, pieces: int = 1, pause: float = 0.0) -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        step = -(-len(head) // pieces)
        try:
            for i in range(0, len(head), step):
                s.sendall(head[i : i + step])
                time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server answered and stopped reading: its answer is still there to read
        data = b""
        while chunk := s.recv(65536):
            data += chunk
            if b"\r\n\r\n" in data and b"connection: close" not in data.lower():
                break
        return data


@pytest.mark.parametrize("pieces", [1, 40])
def test_the_64_kib_header_limit_holds_however_the_headers_are_sent(server, pieces):
    pad = b"x" * (100 * 1024)
    head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: " + pad + b"\r\nConnection: close\r\n\r\n"
    reply = _raw_request(server.url, head, pieces, pause=0.002)
    assert reply.startswith(b"HTTP/1.1 431"), reply[:200]
    assert b"exceed 65536 bytes" in reply
    small = (
        b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Pad: "
        + pad[:60_000]
        + b"\r\nConnection: close\r\n\r\n"
    )
    assert _raw_request(server.url, small, pieces).startswith(b"HTTP/1.1 200")


def test_metadata_says_the_state_length_the_policy_needs(http):
    spec = http.get("/v1/metadata").json()["observation"]
    assert spec["min_state_size"] == 8 and spec["state_size"] is None
    r = http.post("/v1/action_chunk", json={"observation": observation_to_json(observation(4))})
    assert r.status_code == 422 and "observation.state has 4 values, the policy needs at least 8" in r.text


def test_a_state_of_the_wrong_length_is_refused_at_every_step_also_mid_chunk(server, policy):
    with ws_session(server) as ws:
        first = ask(ws, packb({"type": "select_action", "observation": observation(8)}))
        assert first["type"] == "action"  # the policy now has a queued chunk ...
        for size, message in [
            (4, "observation.state has 4 values, the policy needs at least 8"),
            (9, "observation.state has 9 values, but this episode's first observation had 8 values"),
        ]:
            reply = ask(ws, packb({"type": "select_action", "observation": observation(size)}))
            assert reply["type"] == "error" and reply["status"] == 422, reply  # ... not served for it
            assert message in reply["error"]
        no_state = {k: v for k, v in observation(8).items() if k != "state"}
        reply = ask(ws, packb({"type": "select_action", "observation": no_state}))
        assert reply["status"] == 422 and "has no state" in reply["error"]
        assert ask(ws, packb({"type": "select_action", "observation": observation(8)}))["type"] == "action"
        assert ask(ws, packb({"type": "reset"}))["type"] == "reset"
        assert ask(ws, packb({"type": "select_action", "observation": observation(9)}))["type"] == "action"
