"""The fast proxy for acting: train the demo's model on waypoint demonstrations for a few minutes and
measure, on held-out layouts, how far its first waypoint lands from the expert's and how often it
succeeds in closed loop. Variants run one after the other on the same data and steps.

    python benchmarks/waypoint_proxy.py --dataset runs/demo/dataset --steps 1200 \
        --variant camera "" --variant native "data.action_frame=native model.overrides.pointer_readout=false"

Each ``--variant NAME OVERRIDES`` trains configs/demo_train.yaml with those overrides (space
separated ``key=value``). Writes benchmarks/results/waypoint_proxy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
TASKS = ["reach", "push", "pick_place", "stack", "drawer", "button"]


def first_waypoint_errors(policy, tasks: list[str], seeds: list[int], image_size: int) -> dict:
    """Per task: mean xy / z distance (cm) of the policy's first waypoint from the expert's, and
    how often the gripper command agrees, on held-out reset frames."""
    from envs.experts import get_expert
    from envs.tabletop import TabletopEnv

    out = {}
    for task in tasks:
        env = TabletopEnv(task, image_size=image_size, cameras=(policy.config.camera,), control="waypoint")
        expert = get_expert(env)
        xy, z, grip = [], [], []
        for seed in seeds:
            obs, _ = env.reset(seed=seed)
            expert.reset()
            want = expert.act(obs)
            policy.reset()
            got = policy.predict_action_chunk(obs)[0]
            xy.append(100 * float(np.linalg.norm(got[:2] - want[:2])))
            z.append(100 * abs(float(got[2] - want[2])))
            grip.append(bool(np.sign(got[3]) == np.sign(want[3])))
        env.close()
        out[task] = {"xy_cm": float(np.mean(xy)), "z_cm": float(np.mean(z)), "gripper": float(np.mean(grip))}
    return out


def pointing_error(policy, frames: int, image_size: int) -> dict:
    """Does the trained model point? Mean pixel error and share within 3 px of its "Point to the ..."
    answers on the pointing proxy's held-out frames (benchmarks/pointing_proxy.py, location-forced)."""
    import pointing_proxy as pp

    from model.tokenizers.locations import LocationTokenizer

    pool, _ = pp.frames(frames, pp.HELD_OUT_SEED, image_size, pp.CACHE)
    examples = pp.pointing_examples(pool, LocationTokenizer(policy.model.config.location_bins))
    err = pp.errors_px(pp.forced_points(policy.model, policy.processor, examples), pp.points_of(examples))
    return {"mean_px": float(err.mean()), "within_3px": float((err < 3).mean())}


def run_variant(name: str, overrides: list[str], args) -> dict:
    from agent.demo import resolve_config
    from agent.evaluate import EvalConfig, evaluate
    from agent.policy import Policy
    from training.config import load_config
    from training.configuration import TrainConfig
    from training.trainer import train

    folders = json.dumps([str(Path(args.dataset) / t) for t in args.tasks])
    out = Path(args.work) / name
    base = [
        f"out_dir={out / 'train'}",
        f"data.dataset={folders}",
        f"trainer.max_steps={args.steps}",
        f"trainer.checkpoint_every_n_steps={args.steps}",
        # One process here: the demo's batch of 32 is split between two (DemoConfig.train_processes);
        # 16 is what this proxy's figures were measured with.
        "trainer.batch_size=16",
        "logger.name=csv",
    ]
    cfg = load_config(TrainConfig, resolve_config("configs/demo_train.yaml"), base + overrides)
    t0 = time.perf_counter()
    checkpoint = train(cfg)
    seconds = time.perf_counter() - t0
    limits = {}
    if cfg.data.control == "waypoint":
        from envs.scene import WORKSPACE_HIGH, WORKSPACE_LOW

        limits = {
            "action_low": [*WORKSPACE_LOW.tolist(), -1.0],
            "action_high": [*WORKSPACE_HIGH.tolist(), 1.0],
        }
    policy = Policy.from_pretrained(checkpoint, **limits)
    seeds = list(range(10_000, 10_000 + args.probe))
    errors = first_waypoint_errors(policy, args.tasks, seeds, args.image_size)
    pointing = pointing_error(policy, args.pointing_frames, args.image_size)
    report = evaluate(
        policy,
        EvalConfig(
            env="tabletop", tasks=args.tasks, episodes=args.episodes, image_size=args.image_size,
            num_envs=min(5, args.episodes), videos=0, out=str(out / "eval"),
        ),
    )  # fmt: skip
    success = {r["task"]: r["success_rate"] for r in report["tasks"]}
    return {
        "overrides": overrides,
        "train_seconds": seconds,
        "first_waypoint": errors,
        "pointing": pointing,
        "success": success,
        "mean_success": float(np.mean(list(success.values()))),
        "mean_xy_cm": float(np.mean([e["xy_cm"] for e in errors.values()])),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--dataset", required=True, help="a folder of per-task waypoint datasets (runs/demo/dataset)"
    )
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--steps", type=int, default=1200)
    parser.add_argument("--variant", nargs=2, action="append", metavar=("NAME", "OVERRIDES"), required=True)
    parser.add_argument(
        "--probe", type=int, default=20, help="held-out reset frames per task for the waypoint error"
    )
    parser.add_argument("--episodes", type=int, default=10, help="closed-loop episodes per task")
    parser.add_argument(
        "--pointing-frames", type=int, default=300, help="held-out frames of the pointing proxy to point at"
    )
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--work", default="runs/waypoint_proxy")
    parser.add_argument("--out", default=str(RESULTS / "waypoint_proxy.json"))
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("WANDB_MODE", "offline")
    results = {}
    for name, overrides in args.variant:
        results[name] = run_variant(name, shlex.split(overrides), args)
        r = results[name]
        print(
            f"{name}: points {r['pointing']['mean_px']:.1f} px off ({100 * r['pointing']['within_3px']:.0f}% within 3 px); "
            f"first waypoint {r['mean_xy_cm']:.1f} cm off in xy; success {100 * r['mean_success']:.0f}% "
            f"({', '.join(f'{t} {100 * s:.0f}%' for t, s in r['success'].items())}); {r['train_seconds'] / 60:.1f} min",
            flush=True,
        )
        # After every variant: a run stopped part-way keeps what it measured.
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps({"arguments": vars(args), "results": results}, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
