"""``uio2 bridge``: drive a ROS 2 robot through rosbridge with a policy checkpoint.

    uio2 bridge --rosbridge ws://127.0.0.1:9090 --checkpoint runs/tiny --config configs/bridge.yaml \\
        safety.max_age=0.3 rate_hz=15

Runs until SIGINT/SIGTERM (or ``--duration`` seconds), then publishes the stop command and
disconnects. Exit code 0 on a clean stop, 1 when the first connection fails, 3 after a
configuration error found on the first messages (logged once, saying what to change; see
bridges/bridge.py): the robot's last command is then the stop command.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import signal
import threading
import time


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rosbridge", default=None, help="ws://HOST:PORT of rosbridge (overrides the config)"
    )
    parser.add_argument("--checkpoint", required=True, help="policy checkpoint folder")
    parser.add_argument("--config", default=None, help="bridge YAML (see configs/bridge.yaml)")
    parser.add_argument("--device", default="cpu", help="torch device for the policy")
    parser.add_argument(
        "--policy-class",
        default="agent.policy:Policy",
        help="module:Class with from_pretrained(path, device) and the agent.Policy methods",
    )
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    parser.add_argument(
        "--connect-timeout", type=float, default=30.0, help="s to wait for rosbridge at start"
    )
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("overrides", nargs="*", help="config overrides, key.path=value")


def load_policy(spec: str, checkpoint: str, device: str):
    module_name, _, cls_name = spec.partition(":")
    cls = getattr(importlib.import_module(module_name), cls_name or "Policy")
    return cls.from_pretrained(checkpoint, device=device)


def run(args: argparse.Namespace) -> int:
    from .bridge import CONFIG_FAULT_EXIT, PolicyBridge, terminate_reactor
    from .config import load_bridge_config

    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    overrides = list(args.overrides)
    if args.rosbridge:
        overrides.append(f"rosbridge={args.rosbridge}")
    cfg = load_bridge_config(args.config, overrides)
    policy = load_policy(args.policy_class, args.checkpoint, args.device)
    bridge = PolicyBridge(policy, cfg)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    log = logging.getLogger("uio2.bridge")
    try:
        try:
            bridge.connect(timeout=args.connect_timeout)
        except Exception as e:
            log.error("cannot connect to rosbridge at %s: %s", cfg.rosbridge, e)
            return 1
        bridge.start()
        log.info("bridge running at %.1f Hz; commands on %s", cfg.rate_hz, [c.topic for c in cfg.commands])
        end = None if args.duration is None else time.monotonic() + args.duration
        while not done.wait(0.2):
            if bridge.fault is not None:
                log.error("stopping: configuration error (see above)")
                return CONFIG_FAULT_EXIT
            if end is not None and time.monotonic() >= end:
                break
        return 0
    finally:
        bridge.shutdown()
        log.info("stopped: %s", bridge.stats)
        terminate_reactor()
