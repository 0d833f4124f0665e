"""Load benchmark of ``uio2 serve``: N concurrent control clients on loopback, batching on vs off.

    python benchmarks/server_load.py --checkpoint CKPT [--clients 8] [--seconds 10]

The server runs in its own process (so its memory can be read from /proc); each client is a thread
with its own websocket session asking for action chunks in a closed loop. Reports throughput
(chunks/s), p50/p95 latency, errors (target 0) and the server's RSS after warm-up vs at the end
(target: no growth), for ``--max-batch N`` and for ``--max-batch 1`` (batching off), and their ratio.
Bounded: at most 32 clients and 60 s per setting. Writes benchmarks/results/server_load.json.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx  # noqa: E402
import numpy as np  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MAX_CLIENTS, MAX_SECONDS = 32, 60.0


def load_policy(policy_class: str, checkpoint: str):
    module, _, name = policy_class.partition(":")
    return getattr(importlib.import_module(module), name).from_pretrained(checkpoint)


def serve(args: argparse.Namespace) -> None:
    """The server process: the same app and uvicorn settings as ``uio2 serve``."""
    import uvicorn

    from agent.server import ServerConfig, create_app
    from agent.serving_launch import uvicorn_config

    policy = load_policy(args.policy_class, args.checkpoint)
    config = ServerConfig(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_sessions=MAX_CLIENTS + 4
    )
    uvicorn.Server(uvicorn_config(create_app(policy, config), port=args.port, log_level="warning")).run()


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def observation(meta: dict, rng: np.random.Generator) -> dict:
    cams = meta["observation"]["cameras"] or ["scene", "wrist"]
    dim = meta["observation"]["state_dim"] or 8
    return {
        "images": {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in cams},
        "state": rng.uniform(-1, 1, dim).astype(np.float32),
        "instruction": "push the red cube to the left",
    }


def client_loop(url: str, seconds: float, seed: int, latencies: list, errors: list, start: threading.Barrier):
    from agent.client import PolicyClient

    try:
        client = PolicyClient(url)
    except Exception as e:  # counted, not raised: the benchmark reports every failure
        errors.append(f"connect: {e!r}")
        start.wait()
        return
    rng = np.random.default_rng(seed)
    obs = [observation(client.metadata, rng) for _ in range(4)]
    start.wait()
    deadline = time.monotonic() + seconds
    i = 0
    with client:
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            try:
                chunk = client.predict_action_chunk(obs[i % len(obs)])
                if not np.isfinite(chunk).all():
                    raise ValueError("non-finite chunk")
                latencies.append(time.perf_counter() - t0)
            except Exception as e:
                errors.append(repr(e))
            i += 1


def run_setting(args: argparse.Namespace, max_batch: int) -> dict:
    port = free_port()
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        "--port",
        str(port),
        "--max-batch",
        str(max_batch),
        "--max-wait-ms",
        str(args.max_wait_ms),
        "--checkpoint",
        args.checkpoint,
        "--policy-class",
        args.policy_class,
    ]
    proc = subprocess.Popen(cmd)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"server did not start (exit code {proc.poll()})")
            time.sleep(0.2)
        # Warm-up: one short pass so lazy allocations are not counted as growth.
        warm: list = []
        client_loop(url, 1.0, 999, warm, [], threading.Barrier(1))
        rss_start = rss_mib(proc.pid)
        latencies: list[float] = []
        errors: list[str] = []
        barrier = threading.Barrier(args.clients + 1)
        threads = [
            threading.Thread(target=client_loop, args=(url, args.seconds, i, latencies, errors, barrier))
            for i in range(args.clients)
        ]
        for t in threads:
            t.start()
        barrier.wait()
        t0 = time.perf_counter()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
        rss_end = rss_mib(proc.pid)
        stats = httpx.get(f"{url}/v1/metadata", timeout=10).json()["batching"]
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    lat = np.array(latencies) * 1000
    return {
        "max_batch": max_batch,
        "requests": len(latencies),
        "throughput_chunks_per_s": round(len(latencies) / wall, 2),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if len(lat) else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if len(lat) else None,
        "errors": len(errors),
        "error_examples": errors[:3],
        "rss_mib_start": round(rss_start, 1),
        "rss_mib_end": round(rss_end, 1),
        "server_batching": stats,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--policy-class", default="agent.policy:Policy", help="module:Class with from_pretrained")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0, help="per setting")
    p.add_argument("--max-batch", type=int, default=8, help="the batching-on setting")
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--out", default=str(RESULTS / "server_load.json"))
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    if not (1 <= args.clients <= MAX_CLIENTS and 0 < args.seconds <= MAX_SECONDS):
        p.error(f"--clients must be in [1, {MAX_CLIENTS}] and --seconds in (0, {MAX_SECONDS}]")
    on = run_setting(args, args.max_batch)
    off = run_setting(args, 1)
    result = {
        "command": " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])]),
        "clients": args.clients,
        "seconds_per_setting": args.seconds,
        "policy_class": args.policy_class,
        "checkpoint": str(args.checkpoint),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "batching_on": on,
        "batching_off": off,
        "throughput_ratio_on_vs_off": round(
            on["throughput_chunks_per_s"] / max(off["throughput_chunks_per_s"], 1e-9), 3
        ),
        "errors_total": on["errors"] + off["errors"],
        "rss_growth_mib": {
            "on": round(on["rss_mib_end"] - on["rss_mib_start"], 1),
            "off": round(off["rss_mib_end"] - off["rss_mib_start"], 1),
        },
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))
    return 0 if result["errors_total"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
