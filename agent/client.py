"""A client for ``uio2 serve`` that looks like the local agent.Policy.

    policy = PolicyClient("http://robot-server:8000", token=...)
    policy.reset()
    action = policy.select_action(observation)            # (D,) float32, as the local Policy
    chunk = policy.predict_action_chunk(observation)      # (K, D) float32
    text = policy.answer(observation, "what colour is the cube?")

Control runs over the websocket (one server-side session per client, so the server keeps this
episode's history). By default ``select_action`` is the server's own ``select_action`` and gives the
same actions as the local policy. With ``async_threshold=N`` the client runs chunks itself: when N or
fewer actions are left it sends the current observation for the next chunk in the background, keeps
executing, and merges the overlap (agent/serving/chunks.py), hiding the network and model latency.
In that mode the server sees only the observations chunks are asked for, so a policy with image
history gets frames a few steps apart (as LeRobot's async inference does).
"""

from __future__ import annotations

import base64
import concurrent.futures
import contextlib
import threading
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from agent.serving.chunks import ChunkMerger
from agent.serving.codec import packb, unpackb
from agent.serving.media import read_png, read_wav


class ServerError(RuntimeError):
    """The server answered with an error; ``status`` is its HTTP-style code."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"server error {status}: {message}")
        self.status = status


class RequestRejected(ServerError, ValueError):
    """A 4xx answer: the request (usually the observation) was invalid; the message names the value."""


def _raise_for(status: int, message: str) -> None:
    cls = RequestRejected if 400 <= status < 500 else ServerError
    raise cls(status, message)


def _json_array(array: np.ndarray) -> dict[str, Any]:
    array = np.ascontiguousarray(array)
    return {
        "dtype": array.dtype.name,
        "shape": list(array.shape),
        "bytes": base64.b64encode(array.tobytes()).decode(),
    }


def observation_to_json(obs: dict[str, Any]) -> dict[str, Any]:
    """The JSON body form of an observation: arrays as ``{dtype, shape, bytes: base64}``."""
    out: dict[str, Any] = {}
    for key, value in obs.items():
        if isinstance(value, dict):
            out[key] = {k: _json_array(v) for k, v in value.items()}
        elif isinstance(value, np.ndarray):
            out[key] = _json_array(value)
        else:
            out[key] = value
    return out


def _urls(url: str) -> tuple[str, str]:
    """(http base URL, websocket control URL) from either form."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    secure = parts.scheme in ("https", "wss")
    http = urlunsplit(("https" if secure else "http", parts.netloc, "", "", ""))
    ws = urlunsplit(("wss" if secure else "ws", parts.netloc, "/v1/control", "", ""))
    return http, ws


class PolicyClient:
    """The agent.Policy interface, served remotely (see the module docstring)."""

    def __init__(
        self,
        url: str,
        token: str | None = None,
        *,
        async_threshold: int | None = None,
        ensemble_coeff: float = 0.01,
        timeout: float = 60.0,
        max_frame_bytes: int = 16 * 1024 * 1024,
    ) -> None:
        self.http_url, self.ws_url = _urls(url)
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.http_url, headers=headers, timeout=timeout)
        self._ws = connect(
            self.ws_url,
            additional_headers=headers,
            max_size=max_frame_bytes,
            compression=None,
            open_timeout=timeout,
            legacy=True,  # a long-lived connection closed by close(), not a with-block
        )
        self._timeout = timeout
        self._lock = threading.Lock()  # one request/reply at a time on the socket
        self._next_id = 0
        try:
            hello = unpackb(self._ws.recv(timeout=timeout))
        except ConnectionClosed as e:
            code, reason = (e.rcvd.code, e.rcvd.reason) if e.rcvd is not None else (None, "")
            raise ServerError(
                503 if code == 1013 else 502, f"connection closed on connect ({code}: {reason})"
            ) from e
        if hello.get("type") != "metadata":
            raise ServerError(502, f"expected a metadata frame on connect, got {hello.get('type')!r}")
        self.metadata: dict[str, Any] = hello
        self.action_dim = int(hello["action_dim"])
        self.chunk_size = int(hello["chunk_size"])
        self.action_low = np.asarray(hello["action_low"], dtype=np.float32)
        self.action_high = np.asarray(hello["action_high"], dtype=np.float32)
        self.control = str(hello.get("control", "velocity"))  # what an action means (policy.json)
        if async_threshold is not None and not 0 <= async_threshold < self.chunk_size:
            raise ValueError(f"async_threshold must be in [0, {self.chunk_size}), got {async_threshold}")
        self.async_threshold = async_threshold
        self._merger = ChunkMerger(ensemble_coeff)
        self._background = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="uio2-client"
        )
        self._pending: tuple[concurrent.futures.Future, int] | None = None  # (chunk future, its start step)

    # --- websocket: control ---

    def _request(self, message: dict[str, Any]) -> dict[str, Any]:
        with self._lock:
            self._next_id += 1
            message = {**message, "id": self._next_id}
            self._ws.send(packb(message))
            reply = unpackb(self._ws.recv(timeout=self._timeout))
        if reply.get("type") == "error":
            _raise_for(int(reply.get("status", 500)), str(reply.get("error")))
        if reply.get("id") != message["id"]:
            raise ServerError(502, f"reply id {reply.get('id')} does not match request id {message['id']}")
        return reply

    def reset(self) -> None:
        """Start a new episode: clears the server-side session and any queued or pending actions."""
        if self._pending is not None:
            self._pending[0].cancel()
            # A chunk for the old episode: not needed, whatever happened to it.
            with contextlib.suppress(Exception):
                self._pending[0].result(timeout=self._timeout)
            self._pending = None
        self._merger.reset()
        self._request({"type": "reset"})

    def predict_action_chunk(self, observation: dict[str, Any]) -> np.ndarray:
        """(K, D) float32 from the server (batched with other clients there)."""
        reply = self._request({"type": "predict_action_chunk", "observation": observation})
        return np.asarray(reply["actions"], dtype=np.float32)

    def select_action(self, observation: dict[str, Any]) -> np.ndarray:
        """(D,) float32 action for this step, finite and within [action_low, action_high]."""
        if self.async_threshold is None:
            action = np.asarray(
                self._request({"type": "select_action", "observation": observation})["action"]
            )
        else:
            action = self._select_action_async(observation)
        if action.shape != (self.action_dim,) or not np.isfinite(action).all():
            raise ServerError(502, f"server sent an invalid action {action!r}")
        return np.clip(action, self.action_low, self.action_high).astype(np.float32)

    def _select_action_async(self, observation: dict[str, Any]) -> np.ndarray:
        step = self._merger.step
        self._collect(block=False)
        if not len(self._merger):
            self._collect(block=True)  # the chunk asked for earlier may still cover this step
        if not len(self._merger):
            self._merger.add(self.predict_action_chunk(observation), step)
        action = self._merger.pop()
        if len(self._merger) <= self.async_threshold and self._pending is None:
            # Ask now, from this step's observation; the chunk's first action is for this step.
            future = self._background.submit(self.predict_action_chunk, observation)
            self._pending = (future, step)
        return action

    def _collect(self, block: bool) -> None:
        if self._pending is None:
            return
        future, start = self._pending
        if not block and not future.done():
            return
        self._pending = None
        self._merger.add(future.result(timeout=self._timeout), start)

    # --- HTTP: the other modalities ---

    def _post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        response = self._http.post(path, json=body)
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            _raise_for(response.status_code, str(detail))
        return response

    def health(self) -> dict[str, Any]:
        return self._http.get("/health").json()

    def answer(self, observation: dict[str, Any], question: str) -> str:
        body = {"observation": observation_to_json(observation), "question": question}
        return self._post("/v1/answer", body).json()["text"]

    def caption(self, observation: dict[str, Any]) -> str:
        return self._post("/v1/caption", {"observation": observation_to_json(observation)}).json()["text"]

    def locate(self, observation: dict[str, Any], name: str) -> list[float]:
        body = {"observation": observation_to_json(observation), "name": name}
        return self._post("/v1/boxes", body).json()["box"]

    def generate(self, observation: dict[str, Any], target: str, prompt: str, listen: bool = False) -> Any:
        """text -> str, boxes -> [x1, y1, x2, y2], image -> (H, W, 3) uint8, audio -> (N,) float32 at 16 kHz.

        ``listen``: the model also hears ``observation["speech"]`` (Policy.generate's ``listen``)."""
        if target == "boxes":
            return self.locate(observation, prompt)
        body = {"prompt": prompt, "observation": observation_to_json(observation), "listen": listen}
        if target == "text":
            return self._post("/v1/text", body).json()["text"]
        if target == "image":
            return read_png(self._post("/v1/image", body).content)
        if target == "audio":
            return read_wav(self._post("/v1/speech", body).content)[0]
        raise ValueError(f"target must be one of text, boxes, image, audio; got {target!r}")

    def close(self) -> None:
        self._background.shutdown(wait=False, cancel_futures=True)
        self._ws.close()
        self._http.close()

    def __enter__(self) -> PolicyClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
