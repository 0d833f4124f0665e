"""``uio2 collect``: record scripted-expert episodes into a LeRobotDataset v3 folder.

    uio2 collect --env uio2/Tabletop-v0 --episodes 100 --out data/tabletop
    uio2 collect --env push --episodes 50 --out data/push          # a suite task by name
    uio2 collect --env push --control waypoint --out data/push_wp  # actions = absolute waypoints
    uio2 collect --env metaworld:pick-place-v3 --episodes 20 --out data/mw

Episode k is reset with seed ``--seed + k``; failed episodes are dropped unless ``--keep-failures``.
Re-running on an existing folder appends after its last whole episode (seeds continue after the
largest recorded one). Progress is shown with a tqdm bar.
"""

from __future__ import annotations

import argparse
import os
import sys

from tqdm import tqdm


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--env",
        default="uio2/Tabletop-v0",
        help="env id (uio2/Push-v0), suite task (push), or benchmark:task (metaworld:reach-v3, fetch:Reach)",
    )
    parser.add_argument("--episodes", type=int, default=10, help="number of episodes to write")
    parser.add_argument("--out", required=True, help="dataset folder (created or appended to)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--image-size", type=int, default=96, help="camera image height = width (pixels)")
    parser.add_argument("--max-steps", type=int, default=None, help="cap on steps per episode")
    parser.add_argument("--no-video", action="store_true", help="store frames as PNG in parquet, not mp4")
    parser.add_argument("--no-annotations", action="store_true", help="do not store per-frame annotations")
    parser.add_argument("--depth", action="store_true", help="also record depth maps (tabletop only)")
    parser.add_argument(
        "--segmentation", action="store_true", help="also record segmentation maps (tabletop only)"
    )
    parser.add_argument(
        "--action-noise",
        type=float,
        default=0.0,
        help="DART: execute the expert's action plus Gaussian noise of this std, record the clean action",
    )
    parser.add_argument(
        "--control",
        choices=("velocity", "waypoint"),
        default="velocity",
        help="tabletop action: per-step velocity, or the absolute grasp-point waypoint (x, y, z, gripper); "
        "the other is recorded beside it as a 'waypoint' / 'velocity' feature",
    )
    parser.add_argument("--keep-failures", action="store_true", help="also write episodes the expert failed")
    parser.add_argument(
        "--max-attempts",
        type=int,
        default=None,
        help="give up after this many episodes (default: 3 x --episodes)",
    )


def make_env(name: str, image_size: int = 96, **kwargs):
    """An env from an id, a suite task name, or 'benchmark:task'."""
    import envs
    from envs.tasks import TASKS

    if ":" in name:
        bench, task = name.split(":", 1)
        return envs.make_benchmark(bench, task, image_size=image_size, **kwargs)
    if name in TASKS:
        return envs.make_benchmark("tabletop", name, image_size=image_size, **kwargs)
    return envs.make(name, image_size=image_size, **kwargs)


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {args.episodes}")
    from envs.dataset import LeRobotDatasetWriter
    from envs.experts import get_expert
    from envs.rollout import record_episode

    kwargs = {k: True for k in ("depth", "segmentation") if getattr(args, k, False)}
    control = getattr(args, "control", "velocity")
    if control != "velocity":  # only our suite has a waypoint mode; other envs name the bad keyword
        kwargs["control"] = control
    env = make_env(args.env, args.image_size, **kwargs)
    u = env.unwrapped
    writer = LeRobotDatasetWriter(
        args.out,
        fps=int(env.metadata.get("render_fps", 50)),
        robot_type=getattr(u, "robot_type", "uio2_tabletop"),
        use_videos=not args.no_video,
        state_names=getattr(u, "state_names", None),
        action_names=getattr(u, "action_names", None),
    )
    seeds = [r["seed"] for r in writer.episodes]
    seed = max(seeds) + 1 if seeds else args.seed
    expert = get_expert(env)
    written = failures = attempts = 0
    max_attempts = args.max_attempts or 3 * args.episodes
    try:
        with tqdm(total=args.episodes, desc=f"collect {args.env}", unit="ep", file=sys.stderr) as bar:
            while written < args.episodes and attempts < max_attempts:
                ep = record_episode(
                    env,
                    expert,
                    seed=seed,
                    max_steps=args.max_steps,
                    annotate=not args.no_annotations,
                    action_noise=getattr(args, "action_noise", 0.0),
                )
                seed += 1
                attempts += 1
                if ep.success or args.keep_failures:
                    writer.add_episode(ep)
                    written += 1
                    bar.update(1)
                if not ep.success:
                    failures += 1
                bar.set_postfix(success=f"{(attempts - failures) / attempts:.2f}")
    finally:
        env.close()
    print(
        f"wrote {written} episodes ({len(writer.episodes)} in total) to {args.out}; "
        f"expert success {attempts - failures}/{attempts}"
    )
    return 0 if written == args.episodes else 1
