"""Scripted-expert success rate: 100 seeded episodes per task of the suite (target >= 95% each).

    MUJOCO_GL=egl python benchmarks/expert_success.py [--episodes 100] [--metaworld 0] [--fetch 0]

Seeds 10000.. (not those used while writing the experts). Renders one 32 px camera (the experts are
privileged; images do not affect them). ``--metaworld N`` / ``--fetch N`` add N episodes per MT10 / Fetch
task. Prints a table and writes benchmarks/results/expert_success.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])

import gymnasium as gym  # noqa: E402
import numpy as np  # noqa: E402

import envs  # noqa: E402
from envs.experts import get_expert  # noqa: E402
from envs.rollout import record_episode  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SEED0 = 10_000


def evaluate(env_id: str, episodes: int, **kwargs) -> dict:
    env = gym.make(env_id, image_size=32, **kwargs)
    expert = get_expert(env)
    start = time.perf_counter()
    eps = [record_episode(env, expert, seed=SEED0 + i, annotate=False) for i in range(episodes)]
    env.close()
    ok = [e.success for e in eps]
    return {
        "env": env_id,
        "episodes": episodes,
        "success_rate": float(np.mean(ok)),
        "mean_length": float(np.mean([len(e) for e in eps])),
        "failed_seeds": [SEED0 + i for i, s in enumerate(ok) if not s],
        "seconds": round(time.perf_counter() - start, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--metaworld", type=int, default=0, help="episodes per MT10 task (0: skip)")
    parser.add_argument("--fetch", type=int, default=0, help="episodes per Fetch task (0: skip)")
    args = parser.parse_args()
    rows = [evaluate(env_id, args.episodes, cameras=("scene",)) for env_id in envs.SUITE]
    if args.metaworld:
        from envs.metaworld_env import MT10_TASKS

        rows += [evaluate(f"uio2/MetaWorld-{t}", args.metaworld, cameras=("corner",)) for t in MT10_TASKS]
    if args.fetch:
        rows += [evaluate(f"uio2/Fetch{t}-v0", args.fetch) for t in ("Reach", "Push", "PickAndPlace")]
    for r in rows:
        print(
            f"{r['env']:36s} {r['success_rate']:6.1%} of {r['episodes']:3d}  mean length {r['mean_length']:6.1f}"
            f"  ({r['seconds']:.0f} s)",
            flush=True,
        )
    suite = [r for r in rows if r["env"] in envs.SUITE]
    result = {
        "benchmark": "expert_success",
        "seed0": SEED0,
        "rows": rows,
        "suite_min_success": min(r["success_rate"] for r in suite),
        "suite_meets_target": all(r["success_rate"] >= 0.95 for r in suite),
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "expert_success.json").write_text(json.dumps(result, indent=2))
    print(f"suite: lowest success {result['suite_min_success']:.1%} (target >= 95% per task)")


if __name__ == "__main__":
    main()
