"""Fuzzing the wire format (msgpack frames on /v1/control) and the HTTP bodies with hypothesis.

Each example takes a valid request, replaces one field (anywhere in it) by an arbitrary value, or
sends arbitrary bytes, to a real uvicorn server on 127.0.0.1. Whatever comes in: never a 5xx, an
error that names the field that was replaced, and any action that comes back is finite and inside
the policy's limits. Bounded: a fixed number of examples, derandomized, no example database.
"""

import json
import string

import httpx
import msgpack
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from websockets.sync.client import connect

from agent.client import observation_to_json
from agent.server import ServerConfig, create_app
from agent.serving.codec import packb, to_wire, unpackb
from agent.serving.launch import BackgroundServer

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def server(policy):
    s = BackgroundServer(create_app(policy, ServerConfig(max_request_bytes=256 * 1024)))
    s.start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def ws(server):
    with connect(server.url.replace("http", "ws") + "/v1/control", max_size=None, legacy=True) as ws:
        assert unpackb(ws.recv(timeout=30))["type"] == "metadata"
        yield ws


@pytest.fixture(scope="module")
def http(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c


def observation():
    rng = np.random.default_rng(0)
    return {
        "images": {"scene": rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)},
        "state": rng.uniform(-1, 1, 8).astype(np.float32),
        "instruction": "push the red cube to the left",
    }


KEYS = st.text(string.ascii_letters, min_size=1, max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=40)
)


class Deep:
    """``depth`` nested lists, spliced in as bytes when sent (hypothesis's printer, msgpack.packb and
    json.dumps would all recurse out on them)."""

    def __init__(self, depth: int) -> None:
        self.depth = depth

    def __repr__(self) -> str:
        return f"Deep({self.depth})"


# Deep nesting (what made the old server recurse out: 500 and a 184 KB traceback per frame).
DEEP = st.integers(1, 2000).map(Deep)
MSGPACK = st.one_of(
    st.recursive(
        SCALARS | st.binary(max_size=64),
        lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
        max_leaves=12,
    ),
    DEEP,
)
# JSON has no NaN/inf and no bytes; its strings may hold lone surrogates (json.dumps escapes them).
JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=40),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4),
    max_leaves=12,
)
FRAME_PATHS = [
    ("type",),
    ("id",),
    ("observation",),
    ("observation", "images"),
    ("observation", "images", "scene"),
    ("observation", "images", "scene", "dtype"),
    ("observation", "images", "scene", "shape"),
    ("observation", "images", "scene", "bytes"),
    ("observation", "state"),
    ("observation", "state", "shape"),
    ("observation", "instruction"),
    ("observation", "speech"),
    ("observation", "depth"),
    ("observation", "segmentation"),
]


MARKER = "deep-nesting-goes-here"


def _mark(obj, found: list):
    """``obj`` with its Deep value (if any) replaced by MARKER; the Deep is appended to ``found``."""
    if isinstance(obj, Deep):
        found.append(obj)
        return MARKER
    if isinstance(obj, dict):
        return {k: _mark(v, found) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_mark(v, found) for v in obj]
    return obj


def pack_frame(obj) -> bytes:
    """msgpack of ``obj``; a Deep value is nested by hand (msgpack.packb itself stops at 512 levels)."""
    found: list[Deep] = []
    frame = msgpack.packb(_mark(obj, found), use_bin_type=True)
    for deep in found:
        frame = frame.replace(msgpack.packb(MARKER), b"\x91" * deep.depth + b"\x00", 1)
    return frame


def dump_json(obj) -> str:
    """JSON of ``obj``; a Deep value is nested by hand (json.dumps stops near 1000 levels)."""
    found: list[Deep] = []
    text = json.dumps(_mark(obj, found))
    for deep in found:
        text = text.replace(json.dumps(MARKER), "[" * deep.depth + "0" + "]" * deep.depth, 1)
    return text


def _replace(tree: dict, path: tuple, value) -> dict:
    node = tree
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return tree


def _check_reply(reply: dict, names: tuple, policy) -> None:
    if reply["type"] == "error":
        assert 400 <= reply["status"] < 500, reply
        assert any(n in reply["error"] for n in names), (names, reply["error"])
    elif reply["type"] == "action":
        a = np.asarray(reply["action"])
        assert np.isfinite(a).all() and (a >= policy.action_low).all() and (a <= policy.action_high).all()
    elif reply["type"] == "action_chunk":
        a = np.asarray(reply["actions"])
        assert np.isfinite(a).all() and (a >= policy.action_low).all() and (a <= policy.action_high).all()


@FUZZ
@given(
    path=st.sampled_from(FRAME_PATHS) | st.tuples(st.just("observation"), KEYS) | st.tuples(KEYS),
    value=MSGPACK,
    kind=st.sampled_from(["select_action", "predict_action_chunk"]),
)
@example(path=("id",), value=Deep(800), kind="select_action")  # the 500 (490 deep and more)
@example(path=("id",), value=msgpack.Timestamp(1, 0), kind="select_action")
def test_control_frames_with_any_field_replaced(ws, policy, path, value, kind):
    frame = to_wire({"type": kind, "observation": observation()})
    ws.send(pack_frame(_replace(frame, path, value)))
    reply = unpackb(ws.recv(timeout=60))
    # Past msgpack's own stack of 1024 levels the frame cannot be read at all: only "frame" can be named.
    beyond_msgpack = isinstance(value, Deep) and value.depth >= 900
    _check_reply(reply, (path[-1], "frame nests deeper") if beyond_msgpack else (path[-1],), policy)
    ws.send(packb({"type": "reset"}))  # a fresh episode (and state length) for the next example
    assert unpackb(ws.recv(timeout=60))["type"] == "reset"


@FUZZ
@given(frame=st.binary(max_size=256) | MSGPACK.map(pack_frame))
def test_arbitrary_frames(ws, policy, frame):
    ws.send(frame)
    reply = unpackb(ws.recv(timeout=60))
    if reply["type"] == "error":
        assert 400 <= reply["status"] < 500, reply
        assert any(w in reply["error"] for w in ("frame", "msgpack", "type", "fields", "observation")), reply


BODY_PATHS = [
    ("observation",),
    ("observation", "images"),
    ("observation", "images", "scene"),
    ("observation", "images", "scene", "dtype"),
    ("observation", "images", "scene", "shape"),
    ("observation", "images", "scene", "bytes"),
    ("observation", "state"),
    ("observation", "state", "shape"),
    ("observation", "instruction"),
    ("observation", "speech"),
    ("observation", "depth"),
]
ENDPOINT_FIELDS = {
    "/v1/action_chunk": {},
    "/v1/caption": {},
    "/v1/answer": {"question": "what is on the table"},
    "/v1/boxes": {"name": "red cube"},
    "/v1/text": {"prompt": "describe it", "listen": False},
}


@FUZZ
@given(
    endpoint=st.sampled_from(sorted(ENDPOINT_FIELDS)),
    path=st.sampled_from(BODY_PATHS)
    | st.sampled_from([("question",), ("name",), ("prompt",), ("listen",)])
    | st.tuples(KEYS),
    value=JSON,
)
@example(endpoint="/v1/action_chunk", path=("observation", "instruction"), value="\ud800")  # the 500
@example(
    endpoint="/v1/action_chunk", path=("observation", "images", "scene", "shape"), value=["16", "16", "3"]
)
@example(endpoint="/v1/text", path=("listen",), value="yes")
@example(endpoint="/v1/caption", path=("observation", "instruction"), value=Deep(1500))
def test_http_bodies_with_any_field_replaced(http, policy, endpoint, path, value):
    body = {"observation": observation_to_json(observation()), **ENDPOINT_FIELDS[endpoint]}
    body = _replace(body, path, value)
    r = http.post(endpoint, content=dump_json(body), headers={"content-type": "application/json"})
    assert r.status_code < 500, (endpoint, path, r.status_code, r.text)
    if r.status_code >= 400:
        assert path[-1] in r.json()["detail"], (endpoint, path, r.json()["detail"])
    elif endpoint == "/v1/action_chunk":
        out = r.json()["actions"]
        assert out["shape"] == [policy.chunk_size, policy.action_dim]


@settings(FUZZ, max_examples=60)
@given(content=st.binary(max_size=512))
def test_arbitrary_http_bodies(http, content):
    r = http.post("/v1/caption", content=content, headers={"content-type": "application/json"})
    assert 400 <= r.status_code < 500, (r.status_code, r.text)
    assert "body" in r.json()["detail"], r.text
