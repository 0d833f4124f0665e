"""Environment steps per second with one 96x96 camera: fast render mode (no shadows, no MSAA) vs default.

    MUJOCO_GL=egl python benchmarks/env_speed.py [--steps 500] [--size 96]

Prints a table and writes benchmarks/results/env_speed.json. Target: >= 100 steps/s in fast mode.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import numpy as np  # noqa: E402

from envs.tabletop import TabletopEnv  # noqa: E402

RESULTS = Path(__file__).parent / "results"


def steps_per_second(task: str | None, fast: bool, size: int, steps: int, cameras=("scene",)) -> float:
    env = TabletopEnv(task, image_size=size, cameras=cameras, fast_render=fast)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    env.step(np.zeros(4, np.float32))  # first render creates the GL context: not part of the rate
    start, done = time.perf_counter(), 0
    while done < steps:
        _, _, terminated, truncated, _ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        done += 1
        if terminated or truncated:
            env.reset()
    rate = done / (time.perf_counter() - start)
    env.close()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--size", type=int, default=96)
    args = parser.parse_args()
    rows = []
    for label, cams in (("scene", ("scene",)), ("scene+wrist", ("scene", "wrist"))):
        for fast in (True, False):
            rate = steps_per_second(None, fast, args.size, args.steps, cams)
            rows.append(
                {"cameras": label, "render": "fast" if fast else "default", "steps_per_s": round(rate, 1)}
            )
            print(
                f"{label:12s} {args.size}x{args.size} {'fast' if fast else 'default':8s} {rate:8.1f} steps/s",
                flush=True,
            )
    fast1 = next(r["steps_per_s"] for r in rows if r["cameras"] == "scene" and r["render"] == "fast")
    result = {
        "benchmark": "env_speed",
        "env": "uio2/Tabletop-v0 (random actions, 20 ms physics per step)",
        "image_size": args.size,
        "steps": args.steps,
        "rows": rows,
        "target_steps_per_s": 100,
        "meets_target": fast1 >= 100,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "gl": os.environ["MUJOCO_GL"]},
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "env_speed.json").write_text(json.dumps(result, indent=2))
    print(
        f"fast, one camera: {fast1:.1f} steps/s (target >= 100): {'OK' if fast1 >= 100 else 'BELOW TARGET'}"
    )


if __name__ == "__main__":
    main()
