"""Step by step through held-out episodes of a trained policy: the hand, the command, the last
waypoint reached and how the episode stands (``info["stage"]``). What the README's traces are made with.

    MUJOCO_GL=egl python scripts/trace_episode.py --checkpoint runs/demo/train/checkpoints/step-0002600 \
        --task pick_place --seeds 10001 10003 [--every 3] [--max-steps 150]

A failed episode in `uio2 eval`'s report says how it ended ("held over the destination", ...); this
says how it got there: where the policy aimed at each step and whether its gripper turned.
"""

from __future__ import annotations

import argparse
import os

import numpy as np


def trace(policy, task: str, seed: int, every: int, max_steps: int, image_size: int) -> bool:
    from agent.evaluate import make_env

    env = make_env("tabletop", task, image_size, policy.control)
    try:
        obs, _ = env.reset(seed=seed)
        policy.reset()
        print(f"== {task}, seed {seed}: {obs.get('instruction')!r}")
        scene = env.unwrapped.scene
        for t in range(max_steps):
            hand = scene.grasp_pos()
            command = policy.select_action(obs)
            obs, _, terminated, truncated, info = env.step(command)
            done = bool(info.get("is_success")) or terminated or truncated
            if t % every == 0 or done:
                reached = policy.reached_waypoint
                print(
                    f"t{t:4d}  hand {np.round(hand, 3)}  command {np.round(command, 3)}  "
                    f"reached {None if reached is None else np.round(reached, 3)}  {info.get('stage')}"
                )
            if done:
                break
        success = bool(info.get("is_success"))
        print(f"-> {'success' if success else 'failure'} after {t + 1} steps")
        return success
    finally:
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--task", required=True, help="a task of our tabletop suite, e.g. pick_place")
    parser.add_argument("--seeds", type=int, nargs="+", default=[10_000])
    parser.add_argument("--every", type=int, default=3, help="print every this many steps")
    parser.add_argument("--max-steps", type=int, default=200)
    parser.add_argument("--image-size", type=int, default=64)
    args = parser.parse_args()
    if args.every < 1 or args.max_steps < 1:
        parser.error(f"--every and --max-steps must be >= 1, got {args.every} and {args.max_steps}")
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from agent.policy import Policy

    torch.set_num_threads(1)
    policy = Policy.from_pretrained(args.checkpoint)
    for seed in args.seeds:
        trace(policy, args.task, seed, args.every, args.max_steps, args.image_size)


if __name__ == "__main__":
    main()
