"""Load benchmark of ``uio2 serve``: N concurrent control clients on loopback, batching on vs off.

    python benchmarks/server_load.py [--checkpoint CKPT] [--clients 8] [--seconds 10]

Without --checkpoint it builds an untrained tiny checkpoint (agent/checkpoints.py): the tiny model's
compute, so the figures measure the serving stack plus the smallest model, not a trained one.

The server runs in its own process (so its memory can be read from /proc); each client is a thread
with its own websocket session asking for action chunks in a closed loop. Reports throughput
(chunks/s), p50/p95 latency, errors (target 0) and the server's RSS after warm-up vs at the end
(target: no growth), for ``--max-batch N`` and for ``--max-batch 1`` (batching off), and their ratio.
Then one robot at a fixed control period (``--step-ms``) on the batching server: how long
``select_action`` blocks per step with plain chunks (sync) vs asynchronous chunking (next chunk asked
for at half a chunk left, as LeRobot does by default). Bounded: at most 32 clients and 60 s per setting.
Writes benchmarks/results/server_load.json.
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
    from agent.serving.launch import uvicorn_config

    policy = load_policy(args.policy_class, args.checkpoint)
    config = ServerConfig(
        max_batch=args.max_batch, max_wait_ms=args.max_wait_ms, max_sessions=MAX_CLIENTS + 4
    )
    uvicorn.Server(uvicorn_config(create_app(policy, config), port=args.port, log_level="warning")).run()


def untrained_tiny_checkpoint() -> Path:
    import tempfile

    from agent.checkpoints import build_untrained_checkpoint

    texts = [
        "push the red cube to the left",
        "open the drawer",
        "press the blue button",
        "Describe the image.",
    ] * 8
    low, high = -np.ones(4, np.float32), np.ones(4, np.float32)
    return build_untrained_checkpoint(tempfile.mkdtemp(prefix="uio2-serve-bench-"), texts, low, high)


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
    """What our tabletop suite sends: two 96x96 cameras, an (8,) state, an instruction."""
    cams = sorted({"scene", "wrist", *meta["observation"]["cameras"]})
    return {
        "images": {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in cams},
        "state": rng.uniform(-1, 1, 8).astype(np.float32),
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


def load(url: str, clients: int, seconds: float, seed: int) -> tuple[list[float], list[str], float]:
    """``clients`` threads in closed loop for ``seconds``: (latencies s, errors, wall s)."""
    latencies: list[float] = []
    errors: list[str] = []
    barrier = threading.Barrier(clients + 1)
    threads = [
        threading.Thread(target=client_loop, args=(url, seconds, seed + i, latencies, errors, barrier))
        for i in range(clients)
    ]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    for t in threads:
        t.join()
    return latencies, errors, time.perf_counter() - t0


def control_loop(url: str, steps: int, step_s: float, async_threshold: int | None) -> dict:
    """One robot at a fixed control period: how long select_action blocks per step, sync vs async chunks."""
    from agent.client import PolicyClient

    with PolicyClient(url, async_threshold=async_threshold) as client:
        obs = observation(client.metadata, np.random.default_rng(7))
        client.reset()
        waits = []
        for _ in range(steps):
            t0 = time.perf_counter()
            client.select_action(obs)
            waits.append(time.perf_counter() - t0)
            time.sleep(step_s)  # the robot executing the action
    w = np.array(waits) * 1000
    return {
        "async_threshold": async_threshold,
        "steps": steps,
        "step_period_ms": step_s * 1000,
        "select_action_ms_p50": round(float(np.percentile(w, 50)), 2),
        "select_action_ms_p95": round(float(np.percentile(w, 95)), 2),
        "select_action_ms_max": round(float(w.max()), 2),
        "steps_blocked_over_20ms": int((w > 20).sum()),
    }


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
        # Warm-up at full concurrency, so batch-shaped allocations are not counted as growth.
        load(url, args.clients, min(2.0, args.seconds), seed=1000)
        rss = [rss_mib(proc.pid)]
        sampling = threading.Event()

        def sample() -> None:
            while not sampling.wait(0.5):
                rss.append(rss_mib(proc.pid))

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        latencies, errors, wall = load(url, args.clients, args.seconds, seed=0)
        sampling.set()
        sampler.join()
        rss.append(rss_mib(proc.pid))
        stats = httpx.get(f"{url}/v1/metadata", timeout=10).json()["batching"]
        control = None
        if args.control_steps and max_batch > 1:
            chunk = httpx.get(f"{url}/v1/metadata", timeout=10).json()["chunk_size"]
            control = {
                mode: control_loop(url, args.control_steps, args.step_ms / 1000, threshold)
                for mode, threshold in (("sync", None), ("async", chunk // 2))
            }
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
        "rss_mib_start": round(rss[0], 1),
        "rss_mib_max": round(max(rss), 1),
        "rss_mib_end": round(rss[-1], 1),
        "server_batching": stats,
        **({"control_loop": control} if control else {}),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--checkpoint", default=None, help="default: an untrained tiny checkpoint, built in a temp dir"
    )
    p.add_argument("--policy-class", default="agent.policy:Policy", help="module:Class with from_pretrained")
    p.add_argument("--clients", type=int, default=8)
    p.add_argument("--seconds", type=float, default=10.0, help="per setting")
    p.add_argument("--max-batch", type=int, default=8, help="the batching-on setting")
    p.add_argument("--max-wait-ms", type=float, default=2.0)
    p.add_argument("--control-steps", type=int, default=60, help="single-robot loop, sync vs async (0: skip)")
    p.add_argument("--step-ms", type=float, default=50.0, help="control period of that loop")
    p.add_argument("--out", default=str(RESULTS / "server_load.json"))
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    if not (1 <= args.clients <= MAX_CLIENTS and 0 < args.seconds <= MAX_SECONDS):
        p.error(f"--clients must be in [1, {MAX_CLIENTS}] and --seconds in (0, {MAX_SECONDS}]")
    if args.checkpoint is None:
        args.checkpoint = str(untrained_tiny_checkpoint())
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
