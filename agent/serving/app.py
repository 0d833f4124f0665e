"""The app of ``uio2 serve``: actions over a websocket, every other modality over HTTP, from one checkpoint.

Closed-loop control (openpi-style websocket + msgpack), at ``/v1/control``. Every frame is a msgpack map;
numpy arrays travel as ``{dtype, shape, bytes}`` (agent/serving/codec.py). On connect the server sends
``{"type": "metadata", ...}``; then, per request frame (an optional ``id`` is echoed back):

    {"type": "reset"}                                          -> {"type": "reset"}
    {"type": "select_action", "observation": OBS}              -> {"type": "action", "action": (D,)}
    {"type": "predict_action_chunk", "observation": OBS}       -> {"type": "action_chunk", "actions": (K, D)}
    {"type": "metadata"}                                       -> {"type": "metadata", ...}
    anything wrong                                             -> {"type": "error", "status": 4xx, "error": "..."}

Each connection is a session with its own episode state (history, action queue); ``reset`` starts a new
episode; the state length of its first observation is held until then. Action-chunk requests from all sessions are batched (agent/serving/batching.py).

HTTP (JSON bodies, arrays base64; the OpenAPI page is at /docs): POST /v1/action_chunk (stateless),
/v1/answer, /v1/caption, /v1/boxes, /v1/text, /v1/image (PNG), /v1/speech (WAV); GET /v1/metadata,
/health (the only endpoint open without the token).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from contextlib import asynccontextmanager
from typing import Any

import numpy as np
from fastapi import FastAPI, HTTPException, Request, WebSocket, WebSocketDisconnect
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response

from agent.serving.batching import Overloaded
from agent.serving.codec import WireError, packb, unpackb
from agent.serving.config import ServerConfig
from agent.serving.media import png_bytes, wav_bytes
from agent.serving.runtime import PolicyRuntime, generation_targets, observation_spec
from agent.serving.schemas import (
    ActionChunkOut,
    AnswerRequest,
    ArrayOut,
    BoxesRequest,
    BoxOut,
    GenerateRequest,
    ObservationError,
    ObservationRequest,
    ObservationSpec,
    TextOut,
    validate_observation,
)
from agent.serving.security import BodySizeLimit, TokenAuth

PROTOCOL = "uio2-serve/1"
WS_FIELDS = frozenset({"type", "id", "observation"})
log = logging.getLogger("uio2.serve")


class SafeJSONResponse(JSONResponse):
    """JSON with non-ASCII escaped: an error that quotes a lone surrogate must not fail to encode (500)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, allow_nan=False, separators=(",", ":")).encode()


def create_app(
    policy: Any, config: ServerConfig | None = None, spec: ObservationSpec | None = None
) -> FastAPI:
    """The FastAPI app serving ``policy`` (anything with the agent.Policy interface)."""
    config = config or ServerConfig()
    spec = spec or observation_spec(policy)
    runtime = PolicyRuntime(policy, config.max_batch, config.max_wait_ms, config.max_pending)
    state = {"sessions": 0}

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        runtime.start()
        yield
        await runtime.stop()

    app = FastAPI(
        title="uio2 serve",
        version=PROTOCOL,
        description=__doc__,
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,
    )
    app.add_middleware(BodySizeLimit, max_bytes=config.max_request_bytes, timeout_s=config.body_timeout_s)
    app.add_middleware(TokenAuth, token=config.token)  # added last: runs first, before any body is read
    app.state.runtime = runtime
    app.state.config = config  # agent.serving.launch reads the limits that uvicorn enforces

    def metadata() -> dict[str, Any]:
        return {
            "protocol": PROTOCOL,
            "action_dim": int(policy.action_dim),
            "chunk_size": int(policy.chunk_size),
            # What an action means: per-step deltas, or absolute waypoints the controller moves toward.
            "control": str(getattr(policy, "control", "velocity")),
            "action_low": np.asarray(policy.action_low, dtype=np.float32).tolist(),
            "action_high": np.asarray(policy.action_high, dtype=np.float32).tolist(),
            "observation": spec.to_dict(),
            "generation_targets": generation_targets(policy),
            "limits": {
                "max_request_bytes": config.max_request_bytes,
                "max_sessions": config.max_sessions,
                "header_timeout_s": config.header_timeout_s,
                "body_timeout_s": config.body_timeout_s,
                "max_connections_per_client": config.max_connections_per_client,
            },
            "batching": {
                "max_batch": config.max_batch,
                "max_wait_ms": config.max_wait_ms,
                "batched_policy_call": runtime.batched,
                **runtime.batcher.stats.to_dict(),
            },
            "sessions": state["sessions"],
            "auth": config.token is not None,
        }

    @app.exception_handler(ObservationError)
    async def _bad_observation(request: Request, e: ObservationError) -> JSONResponse:
        return SafeJSONResponse({"detail": str(e)}, status_code=422)

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, e: HTTPException) -> JSONResponse:
        return SafeJSONResponse({"detail": e.detail}, status_code=e.status_code, headers=e.headers)

    @app.exception_handler(Overloaded)
    async def _overloaded(request: Request, e: Overloaded) -> JSONResponse:
        return SafeJSONResponse(
            {"detail": f"server busy: {e}"}, status_code=503, headers={"Retry-After": "1"}
        )

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, e: RequestValidationError) -> JSONResponse:
        # One readable line naming each bad field; the offending input is not echoed (it may be megabytes).
        errors = [{"loc": list(err.get("loc", ())), "msg": err.get("msg", "")} for err in e.errors()]
        text = "; ".join(f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}" for err in errors)
        return SafeJSONResponse({"detail": text, "errors": errors}, status_code=422)

    async def model_call(fn: Any, *args: Any) -> Any:
        try:
            return await runtime.call(fn, *args)
        except ValueError as e:  # the policy refused this input
            raise HTTPException(422, detail=str(e)) from None

    @app.get("/health", summary="liveness (no token needed)")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/metadata", summary="action dim, chunk size, limits, cameras expected")
    async def get_metadata() -> dict[str, Any]:
        return metadata()

    @app.post("/v1/action_chunk", response_model=ActionChunkOut, summary="stateless chunk")
    async def action_chunk(body: ObservationRequest) -> ActionChunkOut:
        obs = body.observation.to_observation(spec)
        try:
            chunk = await runtime.act("chunk", None, obs)
        except ValueError as e:
            raise HTTPException(422, detail=str(e)) from None
        return ActionChunkOut(actions=ArrayOut.from_numpy(chunk))

    @app.post("/v1/answer", response_model=TextOut, summary="answer a question")
    async def answer(body: AnswerRequest) -> TextOut:
        obs = body.observation.to_observation(spec)
        return TextOut(text=str(await model_call(policy.answer, obs, body.question)))

    @app.post("/v1/caption", response_model=TextOut, summary="describe the scene")
    async def caption(body: ObservationRequest) -> TextOut:
        obs = body.observation.to_observation(spec)
        return TextOut(text=str(await model_call(policy.caption, obs)))

    @app.post("/v1/boxes", response_model=BoxOut, summary="locate an object")
    async def boxes(body: BoxesRequest) -> BoxOut:
        obs = body.observation.to_observation(spec)
        box = await model_call(policy.locate, obs, body.name)
        return BoxOut(box=[float(v) for v in box])

    @app.post("/v1/text", response_model=TextOut, summary="generate text from a prompt")
    async def text(body: GenerateRequest) -> TextOut:
        obs = body.observation.to_observation(spec)
        return TextOut(text=str(await model_call(policy.generate, obs, "text", body.prompt, body.listen)))

    media = {"image": ("image/png", png_bytes), "audio": ("audio/wav", wav_bytes)}

    async def generate(body: GenerateRequest, target: str) -> Response:
        obs = body.observation.to_observation(spec)  # a bad input is 422 on every endpoint, even here
        if target not in generation_targets(policy):
            what = "image" if target == "image" else "audio"
            raise HTTPException(
                501, detail=f"this checkpoint cannot generate {target}: it has no {what} VQ-GAN tokenizer"
            )
        out = await model_call(policy.generate, obs, target, body.prompt, body.listen)
        media_type, encode = media[target]
        return Response(encode(np.asarray(out)), media_type=media_type)

    @app.post(
        "/v1/image",
        response_class=Response,
        responses={200: {"content": {"image/png": {}}, "description": "a PNG image"}},
        summary="generate an image",
    )
    async def image(body: GenerateRequest) -> Response:
        return await generate(body, "image")

    @app.post(
        "/v1/speech",
        response_class=Response,
        responses={200: {"content": {"audio/wav": {}}, "description": "16 kHz mono 16-bit WAV"}},
        summary="generate speech",
    )
    async def speech(body: GenerateRequest) -> Response:
        return await generate(body, "audio")

    @app.websocket("/v1/control")
    async def control(websocket: WebSocket) -> None:
        # The token was checked by TokenAuth before this runs (a close before accept: HTTP 403).
        if state["sessions"] >= config.max_sessions:
            # Accept, then close with "try again later", so the client can read why.
            await websocket.accept()
            await websocket.close(code=1013, reason=f"too many sessions (limit {config.max_sessions})")
            return
        state["sessions"] += 1
        try:
            await websocket.accept()
            session = await runtime.new_session()
            episode: dict[str, Any] = {}  # the state size of its first observation, held until reset
            await websocket.send_bytes(packb({"type": "metadata", **metadata()}))
            while True:
                try:
                    message = await asyncio.wait_for(websocket.receive(), config.idle_timeout_s)
                except TimeoutError:
                    await websocket.close(code=1001, reason=f"idle for {config.idle_timeout_s:g} s")
                    break
                if message["type"] == "websocket.disconnect":
                    break
                reply = await _control_step(message, session, episode)
                await websocket.send_bytes(packb(reply))
        except WebSocketDisconnect:
            pass
        finally:
            state["sessions"] -= 1

    async def _control_step(message: dict, session: Any, episode: dict) -> dict[str, Any]:
        start = time.perf_counter()
        request_id = None
        try:
            frame = message.get("bytes")
            if frame is None:
                raise WireError("frames must be binary msgpack, got a text frame")
            if len(frame) > config.max_request_bytes:
                return _ws_error(
                    413, f"frame of {len(frame)} bytes exceeds the limit of {config.max_request_bytes}"
                )
            msg = unpackb(frame)
            if not isinstance(msg, dict):
                raise WireError(f"a frame must be a msgpack map, got {type(msg).__name__}")
            request_id = msg.get("id") if isinstance(msg.get("id"), int | str) else None
            unknown = sorted(set(msg) - WS_FIELDS)
            if unknown:
                return _ws_error(
                    422, f"unknown fields {unknown}, expected some of {sorted(WS_FIELDS)}", request_id
                )
            kind = msg.get("type")
            if kind == "reset":
                await runtime.call(session.reset)
                episode.clear()
                reply: dict[str, Any] = {"type": "reset"}
            elif kind == "metadata":
                reply = {"type": "metadata", **metadata()}
            elif kind in ("select_action", "predict_action_chunk"):
                obs = validate_observation(msg.get("observation"), spec)
                _hold_state_size(episode, obs)
                if kind == "select_action":
                    reply = {"type": "action", "action": await runtime.act("select", session, obs)}
                else:
                    reply = {"type": "action_chunk", "actions": await runtime.act("chunk", session, obs)}
            else:
                kinds = ["reset", "select_action", "predict_action_chunk", "metadata"]
                return _ws_error(400, f"unknown type {kind!r}, expected one of {kinds}", request_id)
        except WireError as e:
            return _ws_error(400, str(e), request_id)
        except ObservationError as e:
            return _ws_error(422, str(e), request_id)
        except Overloaded as e:
            return _ws_error(503, f"server busy: {e}", request_id)
        except ValueError as e:
            return _ws_error(422, str(e), request_id)
        except Exception:
            log.exception("control request failed")
            return _ws_error(500, "internal error (see the server log)", request_id)
        if request_id is not None:
            reply["id"] = request_id
        reply["server_ms"] = round(1000 * (time.perf_counter() - start), 3)
        return reply

    return app


def _hold_state_size(episode: dict, obs: dict) -> None:
    """Every step of an episode sends the same state length, also while queued actions are served."""
    state = obs.get("state")
    size = None if state is None else int(state.shape[0])
    if "state_size" not in episode:
        episode["state_size"] = size
    elif size != episode["state_size"]:
        held = episode["state_size"]
        got = "no state" if size is None else f"{size} values"
        had = "no state" if held is None else f"{held} values"
        raise ObservationError(
            f"observation.state has {got}, but this episode's first observation had {had} "
            "(send a reset to start an episode with another state)"
        )


def _ws_error(status: int, text: str, request_id: Any = None) -> dict[str, Any]:
    reply: dict[str, Any] = {"type": "error", "status": status, "error": text}
    if request_id is not None:
        reply["id"] = request_id
    return reply
