"""``uio2 serve``: the command line of the inference server (the app is agent/serving/app.py).

Checks the token and the interface before loading anything, then runs the app under uvicorn with the
limits of agent/serving/launch.py. ``create_app`` and ``ServerConfig`` are re-exported here.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from dataclasses import asdict
from typing import Any

from agent.serving.app import PROTOCOL, create_app
from agent.serving.config import ServerConfig
from agent.serving.launch import uvicorn_config
from agent.serving.security import InsecureBindError, TokenError, check_bind, read_token

__all__ = ["PROTOCOL", "ServerConfig", "add_arguments", "create_app", "run"]
log = logging.getLogger("uio2.serve")


def add_arguments(parser: Any) -> None:
    d = ServerConfig()
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder (save_pretrained)")
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind; non-loopback needs a token")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--device", default="cpu", help="torch device of the model, e.g. cuda")
    parser.add_argument(
        "--token-file",
        default=None,
        help="file whose first line is the bearer token, at least 16 bytes (else $UIO2_SERVE_TOKEN); "
        "required off loopback",
    )
    parser.add_argument(
        "--max-request-bytes",
        type=int,
        default=d.max_request_bytes,
        help="largest HTTP body / websocket frame",
    )
    parser.add_argument("--max-sessions", type=int, default=d.max_sessions, help="concurrent control clients")
    parser.add_argument(
        "--max-batch", type=int, default=d.max_batch, help="requests batched into one model call (1: off)"
    )
    parser.add_argument(
        "--max-wait-ms",
        type=float,
        default=d.max_wait_ms,
        help="how long an idle model waits to fill a batch",
    )
    parser.add_argument(
        "--idle-timeout-s",
        type=float,
        default=d.idle_timeout_s,
        help="close control sessions silent this long",
    )
    parser.add_argument(
        "--header-timeout-s", type=float, default=d.header_timeout_s, help="time to send request headers"
    )
    parser.add_argument(
        "--body-timeout-s", type=float, default=d.body_timeout_s, help="time to send a request body"
    )
    parser.add_argument(
        "--max-connections-per-client",
        type=int,
        default=d.max_connections_per_client,
        help="open connections one address may hold (HTTP and websocket)",
    )
    parser.add_argument("--log-level", default="info")


def run(args: Any) -> int:
    try:
        token = read_token(args.token_file)
        check_bind(args.host, token)  # before loading anything: fail fast
    except (TokenError, InsecureBindError) as e:
        print(f"uio2 serve: {e}", file=sys.stderr)
        return 2
    from agent.policy import Policy

    policy = Policy.from_pretrained(args.checkpoint, device=args.device)
    config = ServerConfig(
        token=token,
        max_request_bytes=args.max_request_bytes,
        max_sessions=args.max_sessions,
        max_batch=args.max_batch,
        max_wait_ms=args.max_wait_ms,
        idle_timeout_s=args.idle_timeout_s,
        header_timeout_s=args.header_timeout_s,
        body_timeout_s=args.body_timeout_s,
        max_connections_per_client=args.max_connections_per_client,
    )
    log.info("serving %s with %s", args.checkpoint, asdict(config) | {"token": bool(token)})
    import uvicorn

    server = uvicorn.Server(uvicorn_config(create_app(policy, config), args.host, args.port, args.log_level))
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn shuts down cleanly on Ctrl-C, then re-raises it
        server.run()
    return 0
