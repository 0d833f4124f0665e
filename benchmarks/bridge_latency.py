"""Camera -> command latency through a real rosbridge, and the achieved vs the configured control rate.

    python benchmarks/bridge_latency.py [--checkpoint DIR] [--seconds 6] [--rates 10 30] [--sizes 96 224]

Starts the Rust rosbridge on 127.0.0.1 (random port and ROS_DOMAIN_ID), runs ``PolicyBridge``
with ``sync: true`` and a JointTrajectory command stamped with the camera frame it answers, and a
roslibpy client that publishes frames + state at the control rate and records when each stamped
command comes back. Latency = command received - frame sent (both on this process's clock), so it
includes the wait for the next control tick (up to one period), decoding, inference and two
websocket hops. Two policies: the tiny checkpoint (untrained; builds one when --checkpoint is not
given) and a constant policy that measures the bridge alone. Writes benchmarks/results/bridge_latency.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import tempfile
import time
from pathlib import Path

import numpy as np

from bridges import ros_env
from bridges.bridge import PolicyBridge, terminate_reactor
from bridges.config import load_bridge_config
from bridges.convert import image_to_msg

RESULTS = Path(__file__).resolve().parent / "results" / "bridge_latency.json"


class ConstantPolicy:
    """Zero-cost policy: what is left is the bridge (decode, loop, safety, encode) and the transport."""

    action_dim, chunk_size = 4, 1
    action_low, action_high = -np.ones(4, np.float32), np.ones(4, np.float32)
    cameras, state_dim = ("scene",), 8

    def reset(self):
        pass

    def select_action(self, obs):
        return np.full(4, 0.1, np.float32)


def tiny_policy(checkpoint: str | None):
    from agent.policy import Policy

    if checkpoint is None:
        from agent.checkpoints import build_untrained_checkpoint

        texts = ["reach the red cube", "push the blue ball to the left", "open the drawer"] * 8
        checkpoint = build_untrained_checkpoint(
            tempfile.mkdtemp(prefix="uio2-bench-"), texts, -np.ones(4, np.float32), np.ones(4, np.float32)
        )
    return Policy.from_pretrained(checkpoint)


def measure(policy, url: str, size: int, rate: float, seconds: float) -> dict:
    import roslibpy

    cams = f"[{{name: scene, topic: /bench/camera/image_raw, height: {size}, width: {size}}}]"
    cfg = load_bridge_config(
        None,
        [
            f"rosbridge={url}",
            f"rate_hz={rate}",
            "sync=true",
            f"cameras={cams}",
            "state={topic: /bench/state, type: sensor_msgs/JointState}",
            "instruction.topic=/bench/instruction",
            "commands=[{topic: /bench/command, type: trajectory_msgs/JointTrajectory, dims: [0, 1, 2, 3], "
            "joint_names: [a, b, c, d]}]",
            "safety.max_age=5",
            "safety.command_timeout=30",
            "safety.estop_topic=/bench/estop",
        ],
    )
    bridge = PolicyBridge(policy, cfg)
    host, port = url.removeprefix("ws://").split(":")
    client = roslibpy.Ros(host, int(port))
    client.run(timeout=10)
    received: dict[tuple[int, int], float] = {}
    cmd = roslibpy.Topic(client, "/bench/command", "trajectory_msgs/JointTrajectory")
    cmd.subscribe(
        lambda m: received.setdefault(
            (m["header"]["stamp"]["sec"], m["header"]["stamp"]["nanosec"]), time.monotonic()
        )
    )
    cam = roslibpy.Topic(client, "/bench/camera/image_raw", "sensor_msgs/Image")
    state = roslibpy.Topic(client, "/bench/state", "sensor_msgs/JointState")
    instr = roslibpy.Topic(client, "/bench/instruction", "std_msgs/String")
    for t in (cam, state, instr):
        t.advertise()
    bridge.connect()
    bridge.start()
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    sent: dict[tuple[int, int], float] = {}
    time.sleep(1.0)  # discovery
    period = 1.0 / rate
    t_end = time.monotonic() + seconds
    k = 0
    next_send = time.monotonic()
    while time.monotonic() < t_end:
        k += 1
        stamp = (k, 0)
        msg = image_to_msg(image, stamp)
        js = {"header": msg["header"], "name": [f"j{i}" for i in range(8)], "position": [0.0] * 8,
              "velocity": [], "effort": []}  # fmt: skip
        if k % 10 == 1:
            instr.publish(roslibpy.Message({"data": "reach the red cube"}))
        sent[stamp] = time.monotonic()
        cam.publish(roslibpy.Message(msg))
        state.publish(roslibpy.Message(js))
        next_send += period
        time.sleep(max(0.0, next_send - time.monotonic()))
    time.sleep(min(5.0, 3 * period + 1.0))
    ticks = [t for t in bridge.tick_times if t <= t_end]
    achieved = (len(ticks) - 1) / (ticks[-1] - ticks[0]) if len(ticks) > 1 else 0.0
    stats = dict(bridge.stats)
    inside = np.array(bridge.input_to_command) * 1e3
    bridge.shutdown()
    for t in (cam, state, instr):
        t.unadvertise()
    cmd.unsubscribe()
    client.close()
    lat = np.array([received[s] - sent[s] for s in sent if s in received]) * 1e3
    out = {
        "image_size": size,
        "configured_rate_hz": rate,
        "achieved_tick_rate_hz": round(achieved, 2),
        "frames_sent": len(sent),
        "commands_for_frames": int(lat.size),
        "command_rate_hz": round(lat.size / seconds, 2),
        "latency_ms_p50": round(float(np.percentile(lat, 50)), 2) if lat.size else None,
        "latency_ms_p95": round(float(np.percentile(lat, 95)), 2) if lat.size else None,
        "latency_ms_max": round(float(lat.max()), 2) if lat.size else None,
        "in_bridge_ms_p50": round(float(np.percentile(inside, 50)), 2) if inside.size else None,
        "in_bridge_ms_p95": round(float(np.percentile(inside, 95)), 2) if inside.size else None,
        "bridge_stats": stats,
    }
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--seconds", type=float, default=6.0)
    p.add_argument(
        "--rates", type=float, nargs="+", default=[10.0, 30.0], help="configured control rates (Hz)"
    )
    p.add_argument("--sizes", type=int, nargs="+", default=[96, 224])
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args(argv)
    env = ros_env.ros_environment(domain_id=random.SystemRandom().randint(1, 100))
    port = ros_env.free_port()
    server = ros_env.start_rosbridge(port, env=env)
    url = f"ws://127.0.0.1:{port}"
    runs = []
    try:
        policies = {
            "constant (bridge only)": ConstantPolicy(),
            "tiny checkpoint (untrained)": tiny_policy(args.checkpoint),
        }
        for name, policy in policies.items():
            for rate in args.rates:
                for size in args.sizes:
                    r = measure(policy, url, size, rate, args.seconds)
                    r["policy"] = name
                    runs.append(r)
                    print(json.dumps({k: v for k, v in r.items() if k != "bridge_stats"}), flush=True)
    finally:
        ros_env.stop_process(server)
        terminate_reactor()
    result = {
        "what": "camera -> command latency through rosbridge (Rust 0.1.6) + roslibpy, sync mode, loopback",
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "load_avg": os.getloadavg()},
        "seconds_per_run": args.seconds,
        "runs": runs,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
