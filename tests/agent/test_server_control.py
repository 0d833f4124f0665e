"""The websocket control endpoint: sessions, reset, batching across clients, and errors that never kill it."""

import concurrent.futures
import time

import msgpack
import numpy as np
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agent.client import PolicyClient, RequestRejected, ServerError
from agent.server import ServerConfig, create_app
from agent.serving.codec import packb, unpackb
from agent.serving.launch import BackgroundServer

LIMIT = 512 * 1024


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def server(policy):
    app = create_app(policy, ServerConfig(max_request_bytes=LIMIT, max_batch=8, max_wait_ms=5))
    s = BackgroundServer(app)
    s.start()
    yield s
    s.stop()


def observation(policy, seed=0):
    rng = np.random.default_rng(seed)
    cams = ("scene", "wrist")  # what our suite sends
    return {
        "images": {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in cams},
        "state": rng.uniform(-1, 1, 8).astype(np.float32),
        "instruction": "open the drawer",
    }


def _first_image(obs, image):
    first = sorted(obs["images"])[0]
    return {**obs, "images": {**obs["images"], first: image}}


def raw(server):
    ws = connect(
        server.url.replace("http", "ws") + "/v1/control", max_size=None, compression=None, legacy=True
    )
    hello = unpackb(ws.recv(timeout=30))
    assert hello["type"] == "metadata"
    return ws


def ask(ws, frame):
    ws.send(frame)
    return unpackb(ws.recv(timeout=60))


def test_metadata_on_connect_and_on_request(server, policy):
    with PolicyClient(server.url) as client:
        assert client.action_dim == policy.action_dim and client.chunk_size == policy.chunk_size
        np.testing.assert_array_equal(client.action_high, policy.action_high)
    with raw(server) as ws:
        reply = ask(ws, packb({"type": "metadata", "id": 7}))
        assert reply["type"] == "metadata" and reply["id"] == 7 and reply["sessions"] >= 1


def test_sessions_are_independent_and_reset_restarts_an_episode(server, policy):
    """Two clients interleaved get what two separate local policies would give."""
    local = [policy.new_session() if hasattr(policy, "new_session") else None for _ in range(2)]
    if local[0] is None:
        pytest.skip("policy has no new_session(); covered by the single-client equality test")
    seq = [[observation(policy, 10 * k + t) for t in range(6)] for k in range(2)]
    with PolicyClient(server.url) as a, PolicyClient(server.url) as b:
        clients = [a, b]
        for t in range(6):
            for k in range(2):
                np.testing.assert_allclose(
                    clients[k].select_action(seq[k][t]), local[k].select_action(seq[k][t]), atol=1e-6
                )
        a.reset()
        local[0].reset()
        np.testing.assert_allclose(a.select_action(seq[1][0]), local[0].select_action(seq[1][0]), atol=1e-6)


def test_concurrent_clients_are_batched(server, policy):
    before = dict(server.server.config.app.state.runtime.batcher.stats.to_dict())
    clients = [PolicyClient(server.url) for _ in range(6)]
    try:
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            chunks = list(
                pool.map(
                    lambda c: [c.predict_action_chunk(observation(policy, 1)) for _ in range(4)], clients
                )
            )
    finally:
        for c in clients:
            c.close()
    after = server.server.config.app.state.runtime.batcher.stats.to_dict()
    assert after["requests"] - before["requests"] == 24
    assert after["batches"] - before["batches"] < 24  # some requests shared a call
    for per_client in chunks:
        for chunk in per_client:
            assert chunk.shape == (policy.chunk_size, policy.action_dim) and np.isfinite(chunk).all()


@pytest.mark.parametrize(
    "frame, status, message",
    [
        (b"\xc1\xff garbage", 400, "not valid msgpack"),
        (msgpack.packb([1, 2, 3]), 400, "must be a msgpack map"),
        (msgpack.packb(msgpack.ExtType(3, b"x")), 400, "extension types"),
        (packb({"type": "fly"}), 400, "unknown type 'fly'"),
        (packb({"type": "reset", "temperature": 1.0}), 422, "unknown fields ['temperature']"),
        (packb({"type": "select_action"}), 422, "observation must be a dict"),
        (
            msgpack.packb(
                {
                    "type": "select_action",
                    "observation": {"images": {"scene": {"dtype": "float32", "shape": [2], "bytes": b"\0"}}},
                }
            ),
            400,
            "has 1 bytes, expected 8",
        ),
        (
            lambda obs: _first_image(obs, np.zeros((4, 4), np.uint8)),
            422,
            "must be HxWx3 uint8, got (4, 4) uint8",
        ),
        (lambda obs: _first_image(obs, np.zeros((4, 4, 3), np.float32)), 422, "got (4, 4, 3) float32"),
        (lambda obs: {**obs, "depth_map": obs["state"]}, 422, "unknown fields ['depth_map']"),
        (
            lambda obs: {**obs, "state": obs["state"][None]},
            422,
            "observation.state must be (S,) float32, got (1,",
        ),
    ],
)
def test_bad_frames_get_an_error_reply_and_the_session_lives_on(server, policy, frame, status, message):
    if callable(frame):
        frame = packb({"type": "predict_action_chunk", "observation": frame(observation(policy))})
    with raw(server) as ws:
        reply = ask(ws, frame)
        assert reply["type"] == "error" and reply["status"] == status, reply
        assert message in reply["error"]
        ok = ask(ws, packb({"type": "select_action", "observation": observation(policy)}))
        assert ok["type"] == "action" and ok["action"].shape == (policy.action_dim,)


def test_text_frames_are_refused(server):
    with raw(server) as ws:
        ws.send('{"type": "reset"}')
        reply = unpackb(ws.recv(timeout=30))
        assert reply["status"] == 400 and "text frame" in reply["error"]


def test_oversized_frames_close_the_connection_not_the_server(server, policy):
    with raw(server) as ws:
        ws.send(b"\x00" * (LIMIT + 1))
        with pytest.raises(ConnectionClosed) as e:
            ws.recv(timeout=30)
        assert e.value.rcvd is not None and e.value.rcvd.code == 1009  # message too big
    with PolicyClient(server.url) as client:
        assert client.select_action(observation(policy)).shape == (policy.action_dim,)


def test_client_raises_request_rejected_naming_the_value(server, policy):
    with PolicyClient(server.url) as client:
        bad = observation(policy)
        bad["state"] = bad["state"].astype(np.float64)
        with pytest.raises(
            RequestRejected, match=r"observation.state must be \(S,\) float32, got \(\d+,\) float64"
        ):
            client.select_action(bad)


def test_session_limit_and_idle_timeout_free_the_server(policy):
    app = create_app(policy, ServerConfig(max_sessions=1, idle_timeout_s=0.5))
    with BackgroundServer(app) as url:
        ws_url = url.replace("http", "ws") + "/v1/control"
        with PolicyClient(url) as first:
            with pytest.raises(ServerError, match=r"503.*1013: too many sessions \(limit 1\)"):
                PolicyClient(url)
            time.sleep(1.0)  # first stays silent past the idle timeout: the server closes its session
            with pytest.raises(ConnectionClosed) as e:
                first.reset()
            assert e.value.rcvd is not None and e.value.rcvd.code == 1001
        with connect(ws_url, legacy=True) as ws:  # the slot is free again
            assert unpackb(ws.recv(timeout=30))["type"] == "metadata"
