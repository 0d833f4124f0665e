"""``uio2 serve`` as a user runs it: a subprocess on loopback with a token file, then stopped."""

import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import numpy as np

from agent.client import PolicyClient

TOKEN = "cli-token-0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_uio2_serve_starts_serves_with_a_token_and_stops(tiny_checkpoint, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    port = _free_port()
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "serve",
        "--checkpoint",
        str(tiny_checkpoint),
        "--port",
        str(port),
        "--token-file",
        str(token_file),
        "--log-level",
        "warning",
    ]
    env = {k: v for k, v in os.environ.items() if k != "UIO2_SERVE_TOKEN"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.stdout.read()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "uio2 serve did not come up in 90 s"
            time.sleep(0.2)
        assert httpx.get(f"{url}/v1/metadata").status_code == 401
        with PolicyClient(url, token=TOKEN) as client:
            assert client.metadata["auth"] is True
            obs = {
                "images": {"scene": np.zeros((96, 96, 3), np.uint8)},
                "instruction": "press the blue button",
            }
            action = client.select_action(obs)
            assert action.shape == (client.action_dim,) and np.isfinite(action).all()
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, proc.stdout.read()
