"""Every HTTP endpoint of a real uvicorn server on loopback, and 4xx (never a crash) for bad inputs."""

import base64
import json

import httpx
import numpy as np
import pytest

from agent.client import observation_to_json
from agent.server import ServerConfig, create_app
from agent.serving.launch import BackgroundServer
from agent.serving.media import read_png, read_wav

LIMIT = 1024 * 1024


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def url(policy):
    with BackgroundServer(create_app(policy, ServerConfig(max_request_bytes=LIMIT))) as url:
        yield url


@pytest.fixture(scope="module")
def http(url):
    with httpx.Client(base_url=url, timeout=60) as c:
        yield c


def observation(policy, seed=0, size=96):
    rng = np.random.default_rng(seed)
    cams = ("scene", "wrist")  # what our suite sends
    obs = {
        "images": {c: rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for c in cams},
        "state": rng.uniform(-1, 1, 8).astype(np.float32),
        "instruction": "push the red cube to the left",
    }
    return obs


def body(policy, **extra):
    return {"observation": observation_to_json(observation(policy)), **extra}


def test_health_and_metadata(http, policy):
    assert http.get("/health").json() == {"status": "ok"}
    meta = http.get("/v1/metadata").json()
    assert meta["action_dim"] == policy.action_dim and meta["chunk_size"] == policy.chunk_size
    assert meta["limits"]["max_request_bytes"] == LIMIT
    assert np.allclose(meta["action_low"], policy.action_low)
    assert "cameras" in meta["observation"]
    assert meta["control"] == policy.config.control == "velocity"  # the test checkpoint's, from policy.json


def test_openapi_describes_every_endpoint(http):
    paths = http.get("/openapi.json").json()["paths"]
    for p in [
        "/v1/action_chunk",
        "/v1/answer",
        "/v1/caption",
        "/v1/boxes",
        "/v1/text",
        "/v1/image",
        "/v1/speech",
        "/v1/metadata",
    ]:
        assert p in paths, p
    assert "image/png" in paths["/v1/image"]["post"]["responses"]["200"]["content"]


def test_action_chunk_matches_the_local_policy(http, policy):
    out = http.post("/v1/action_chunk", json=body(policy)).json()["actions"]
    chunk = np.frombuffer(base64.b64decode(out["bytes"]), dtype=out["dtype"]).reshape(out["shape"])
    assert chunk.shape == (policy.chunk_size, policy.action_dim)
    local = policy.new_session() if hasattr(policy, "new_session") else policy
    local.reset()
    np.testing.assert_allclose(chunk, local.predict_action_chunk(observation(policy)), atol=1e-6)


def test_text_and_box_endpoints(http, policy):
    obs = observation(policy)
    answer = http.post("/v1/answer", json=body(policy, question="what colour is the cube?"))
    assert answer.status_code == 200 and answer.json()["text"] == policy.answer(
        obs, "what colour is the cube?"
    )
    caption = http.post("/v1/caption", json=body(policy))
    assert caption.status_code == 200 and caption.json()["text"] == policy.caption(obs)
    text = http.post("/v1/text", json={"prompt": "describe the task", **body(policy)})
    assert text.status_code == 200 and text.json()["text"] == policy.generate(
        obs, "text", "describe the task"
    )
    spoken = {**obs, "speech": (0.1 * np.sin(np.linspace(0, 3000, 16000))).astype(np.float32)}
    said = {
        "prompt": "What does the speaker say?",
        "observation": observation_to_json(spoken),
        "listen": True,
    }
    heard = http.post("/v1/text", json=said)
    assert heard.status_code == 200 and heard.json()["text"] == policy.generate(
        spoken, "text", "What does the speaker say?", listen=True
    )
    box = http.post("/v1/boxes", json=body(policy, name="red cube")).json()["box"]
    # An untrained model may decode no box at all; either way the server must match the local policy.
    expected = policy.locate(obs, "red cube")
    assert len(box) == len(expected) and len(box) in (0, 4) and np.allclose(box, expected)


def test_image_and_speech_need_the_checkpoints_tokenizers(http, policy):
    assert policy.processor.image_tokenizer is None  # the tiny checkpoint has no VQ-GANs
    r = http.post("/v1/image", json={"prompt": "a red cube", **body(policy)})
    assert r.status_code == 501 and "no image VQ-GAN tokenizer" in r.json()["detail"]
    r = http.post("/v1/speech", json={"prompt": "pick up the cube", **body(policy)})
    assert r.status_code == 501 and "cannot generate audio" in r.json()["detail"]


def test_image_is_png_and_speech_is_wav(http, policy):
    """With (untrained) VQ-GAN tokenizers attached, the same endpoints return a PNG and a WAV."""
    from model.audio_vqgan import AudioVQGAN, audio_config
    from model.vqgan import ImageVQGAN, VQGANConfig

    cfg = policy.model.config
    policy.processor.image_tokenizer = ImageVQGAN(
        VQGANConfig.preset("test", codebook_size=cfg.image_codebook_size)
    )
    policy.processor.audio_tokenizer = AudioVQGAN(audio_config("test", codebook_size=cfg.audio_codebook_size))
    try:
        assert {"image", "audio"} <= set(http.get("/v1/metadata").json()["generation_targets"])
        r = http.post("/v1/image", json={"prompt": "a red cube", **body(policy)})
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", r.text
        image = read_png(r.content)
        assert (
            image.ndim == 3
            and image.shape[-1] == 3
            and image.shape[0] == 8 * int(cfg.image_target_tokens**0.5)
        )
        r = http.post("/v1/speech", json={"prompt": "pick up the cube", **body(policy)})
        assert r.status_code == 200 and r.headers["content-type"] == "audio/wav", r.text
        wave, rate = read_wav(r.content)
        assert rate == 16_000 and wave.ndim == 1 and len(wave) > 0 and np.abs(wave).max() <= 1.0
    finally:
        policy.processor.image_tokenizer = policy.processor.audio_tokenizer = None


def _with(policy, path, value):
    """A valid JSON body with observation[path...] replaced by value (None deletes it)."""
    b = body(policy)
    node = b["observation"]
    for key in path[:-1]:
        node = node[key]
    if value is None:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return b


def _arr(a):
    return observation_to_json({"x": a})["x"]


@pytest.mark.parametrize(
    "path, value, message",
    [
        (["images", "scene"], _arr(np.zeros((64, 64), np.uint8)), "must be HxWx3 uint8, got (64, 64) uint8"),
        (["images", "scene"], _arr(np.zeros((8, 8, 3), np.float32)), "got (8, 8, 3) float32"),
        (["images", "scene"], _arr(np.zeros((600, 8, 3), np.uint8)), "at most 512 pixels a side"),
        (["state"], _arr(np.zeros((2, 3), np.float32)), "observation.state must be (S,) float32"),
        (["state"], _arr(np.full(3, np.nan, np.float32)), "must be finite"),
        (["speech"], _arr(np.full(10, 3.0, np.float32)), "within [-1, 1]"),
        (["state"], {"dtype": "float32", "shape": [7], "bytes": "AAAA"}, "has 3 bytes, expected 28"),
        (["state"], {"dtype": "object", "shape": [1], "bytes": "AAAAAAAAAAA="}, "dtype must be one of"),
        (["state"], {"dtype": "float32", "shape": [1], "bytes": "not base64!"}, "not valid base64"),
        (["instruction"], 42, "instruction"),
        (["images"], {}, "non-empty dict"),
        (["bogus"], 1, "bogus"),
    ],
)
def test_bad_observations_get_422_naming_the_value(http, policy, path, value, message):
    r = http.post("/v1/action_chunk", json=_with(policy, path, value))
    assert r.status_code == 422, r.text
    assert message in r.json()["detail"]


def test_unknown_fields_missing_fields_and_garbage_get_4xx(http, policy):
    r = http.post("/v1/caption", json=body(policy, temperature=0.7))
    assert r.status_code == 422 and "temperature" in r.json()["detail"]
    r = http.post("/v1/answer", json=body(policy))
    assert r.status_code == 422 and "question" in r.json()["detail"]
    r = http.post("/v1/caption", content=b"\x00\xff garbage", headers={"content-type": "application/json"})
    assert r.status_code == 422
    r = http.post("/v1/caption", content=b"[1, 2]", headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert http.get("/health").status_code == 200  # still alive


def test_huge_bodies_get_413(http, policy):
    huge = json.dumps({"observation": {"instruction": "x" * (2 * LIMIT)}}).encode()
    r = http.post("/v1/caption", content=huge, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "exceeds the limit" in r.json()["detail"]

    def chunked():  # no Content-Length: the limit must hold while streaming too
        for _ in range(4):
            yield b" " * (LIMIT // 2)

    r = http.post("/v1/caption", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413
    assert http.get("/health").status_code == 200
