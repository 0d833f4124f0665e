"""Policy speed on this machine: actions/s with and without chunking, and inference calls/s.

    python benchmarks/policy_speed.py [--checkpoint CKPT] [--seconds 10]

Without a checkpoint an untrained tiny one is built (speed does not depend on the weights).
Both settings run side by side in one process, so their ratio is meaningful on a noisy machine.
Writes benchmarks/results/policy_speed.json.
"""

from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from agent.checkpoints import build_untrained_checkpoint
from agent.policy import Policy

RESULTS = Path(__file__).parent / "results"


def observation(rng: np.random.Generator, size: int) -> dict:
    return {
        "images": {"scene": rng.integers(0, 255, (size, size, 3), dtype=np.uint8)},
        "state": rng.normal(size=8).astype(np.float32),
        "instruction": "put the red cube in the blue tray",
    }


def rate(fn, seconds: float) -> tuple[float, int]:
    fn()  # warm-up
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn()
        n += 1
    return n / (time.perf_counter() - t0), n


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint")
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--image-size", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ckpt = args.checkpoint or build_untrained_checkpoint(
            tmp, ["put the red cube in the blue tray"] * 8, -np.ones(4), np.ones(4)
        )
        rng = np.random.default_rng(0)
        obs = [observation(rng, args.image_size) for _ in range(16)]
        results = {}
        for name, overrides in [("no_chunking", {"n_action_steps": 1}), ("chunking", {})]:
            policy = Policy.from_pretrained(ckpt, **overrides)
            counter = iter(range(10**9))
            actions_per_s, n = rate(
                lambda p=policy, c=counter: p.select_action(obs[next(c) % len(obs)]), args.seconds
            )
            results[name] = {
                "actions_per_s": actions_per_s,
                "actions": n,
                "n_action_steps": policy._queue.n_action_steps,
            }
        policy = Policy.from_pretrained(ckpt)
        calls_per_s, n = rate(lambda: policy.predict_action_chunk(obs[0]), args.seconds)
        results["inference_calls_per_s"] = calls_per_s
        results["chunk_size"] = policy.chunk_size
        results["policy_threads"] = policy.config.threads  # intra-op threads inside each model call
        results["chunking_speedup"] = (
            results["chunking"]["actions_per_s"] / results["no_chunking"]["actions_per_s"]
        )
    results["machine"] = {"cpu": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                          "device": "cpu"}  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "policy_speed.json").write_text(json.dumps(results, indent=2))
    print(
        f"actions/s without chunking {results['no_chunking']['actions_per_s']:.1f}, with chunking (K="
        f"{results['chunk_size']}) {results['chunking']['actions_per_s']:.1f} "
        f"({results['chunking_speedup']:.2f}x); inference calls/s {calls_per_s:.1f}"
    )


if __name__ == "__main__":
    main()
