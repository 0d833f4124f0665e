"""Token checks, loopback by default, and the refusal to expose the server without a token."""

import os
import subprocess
import sys

import httpx
import numpy as np
import pytest
from websockets.exceptions import InvalidStatus

from agent.client import PolicyClient
from agent.server import ServerConfig, create_app
from agent.serving.launch import BackgroundServer
from agent.serving.security import InsecureBindError, TokenError, check_bind, is_loopback, read_token

TOKEN = "s3cret-token-0123456789"


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def url(policy):
    with BackgroundServer(create_app(policy, ServerConfig(token=TOKEN))) as url:
        yield url


def test_http_needs_the_token_except_health(url):
    assert httpx.get(f"{url}/health").status_code == 200
    r = httpx.get(f"{url}/v1/metadata")
    assert r.status_code == 401 and "Authorization: Bearer" in r.json()["detail"]
    assert httpx.get(f"{url}/v1/metadata", headers={"Authorization": "Bearer wrong"}).status_code == 401
    auth = {"Authorization": f"Bearer {TOKEN}"}
    paths = httpx.get(f"{url}/openapi.json", headers=auth).json()["paths"]
    for path, methods in paths.items():
        for method in methods:
            if path != "/health":  # 401 before the body is even parsed: no body, a bad one, garbage
                json_type = {"content-type": "application/json"}
                for body in (
                    {"json": {}},
                    {"json": {"observation": 3}},
                    {"content": b"\x00{not json", "headers": json_type},
                    {"content": b'{"a":' * 5000, "headers": json_type},
                ):
                    r = httpx.request(method, f"{url}{path}", **body)
                    assert r.status_code == 401, (method, path, body, r.text)
    assert httpx.get(f"{url}/v1/metadata", headers=auth).status_code == 200


def test_docs_and_openapi_need_the_token(url):
    for path in ("/docs", "/openapi.json", "/redoc", "/docs/oauth2-redirect", "/no-such-page"):
        assert httpx.get(f"{url}{path}").status_code == 401, path
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert httpx.get(f"{url}/openapi.json", headers=auth).json()["info"]["title"] == "uio2 serve"
    assert httpx.get(f"{url}/docs", headers=auth).status_code == 200


def test_websocket_needs_the_token(url, policy):
    for token in (None, "wrong-token-wrong-token"):
        with pytest.raises(InvalidStatus) as e:
            PolicyClient(url, token=token)
        assert e.value.response.status_code == 403
    with PolicyClient(url, token=TOKEN) as client:
        assert client.action_dim == policy.action_dim


def test_http_client_sends_the_token(url, policy):
    with PolicyClient(url, token=TOKEN) as client:
        assert client.metadata["auth"] is True
        obs = {"images": {"scene": np.zeros((8, 8, 3), np.uint8)}, "instruction": "open the drawer"}
        assert isinstance(client.caption(obs), str)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_loopback_needs_no_token(host):
    assert is_loopback(host)
    check_bind(host, None)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.5", "robot.local"])
def test_other_interfaces_need_a_long_token(host):
    assert not is_loopback(host)
    with pytest.raises(InsecureBindError, match=f"refusing to bind '{host}' without a token"):
        check_bind(host, None)
    with pytest.raises(InsecureBindError, match="at least 16 bytes, got 5"):
        check_bind(host, "short")
    check_bind(host, TOKEN)


def test_token_is_read_from_a_file_or_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("UIO2_SERVE_TOKEN", raising=False)
    assert read_token(None) is None
    monkeypatch.setenv("UIO2_SERVE_TOKEN", TOKEN)
    assert read_token(None) == TOKEN
    f = tmp_path / "token"
    f.write_text("from-file-token-abcdef\nignored\n")
    assert read_token(str(f)) == "from-file-token-abcdef"


@pytest.mark.parametrize("content", ["", "\n", "   \n", "abc\n", "15-bytes-token!"])
def test_an_empty_or_short_token_is_refused_naming_where_it_came_from(tmp_path, monkeypatch, content):
    f = tmp_path / "token"
    f.write_text(content)
    with pytest.raises(TokenError, match=f"the token file '{f}' (is empty|holds a token of)"):
        read_token(str(f))
    monkeypatch.setenv("UIO2_SERVE_TOKEN", content)
    if content.strip():
        with pytest.raises(TokenError, match="UIO2_SERVE_TOKEN holds a token of"):
            read_token(None)
    with pytest.raises(ValueError, match="at least 16 bytes"):
        ServerConfig(token=content.strip() or "x")


@pytest.mark.parametrize("content", ["", "abc\n"])
def test_uio2_serve_refuses_an_empty_or_short_token_file(tmp_path, content):
    """Even on loopback: a server told to use a token never starts with authentication off."""
    f = tmp_path / "token"
    f.write_text(content)
    env = {k: v for k, v in os.environ.items() if k != "UIO2_SERVE_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "serve", "--checkpoint", str(tmp_path), "--token-file", str(f)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert f"the token file '{f}'" in proc.stderr and "16 bytes" in proc.stderr


def test_uio2_serve_refuses_a_public_interface_without_a_token(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "UIO2_SERVE_TOKEN"}
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "serve", "--checkpoint", str(tmp_path), "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "refusing to bind '0.0.0.0' without a token" in proc.stderr
