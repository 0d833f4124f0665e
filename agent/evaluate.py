"""``uio2 eval``: closed-loop rollouts of a policy in a MuJoCo benchmark, with a report.

Episodes run in lockstep over ``num_envs`` environments so that one batched model
call serves every environment that needs a new chunk. Each task reports its success
rate with a 95% Wilson interval; the first episodes of each task are saved as mp4
with the instruction written on the frames; the report is JSON and Markdown.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from tqdm.auto import tqdm

INSTRUCTION_MODES = ("text", "speech")


@dataclass
class EvalConfig:
    env: str = "tabletop"  # "tabletop", "metaworld", "fetch" or a registered env id
    tasks: list[str] = field(default_factory=list)  # empty: every task of the benchmark
    episodes: int = 10  # per task
    seed: int = 10_000  # first held-out seed (training data uses seeds below this)
    num_envs: int = 4
    instruction: str = "text"  # "text", or "speech": the policy hears the instruction instead of reading it
    videos: int = 1  # episodes recorded per task
    image_size: int = 96
    max_steps: int | None = None  # default: the environment's own limit
    out: str = "runs/eval"


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval for a success rate: honest at 0% and 100% and for small n."""
    if n == 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


def benchmark_tasks(env: str) -> list[str]:
    """Every task of a benchmark, by the names make_benchmark takes."""
    import envs

    key = env.lower()
    if key == "tabletop":
        from envs.tasks import TASKS

        return list(TASKS)
    if key in ("metaworld", "mt10", "mt50"):
        from envs.metaworld_env import METAWORLD_TASKS, MT10_TASKS

        return list(MT10_TASKS if key == "mt10" else METAWORLD_TASKS)
    if key == "fetch":
        return ["Reach", "Push", "PickAndPlace"]
    envs.register_all()
    return [env]  # a single registered env id


def make_env(env: str, task: str, image_size: int, control: str = "velocity"):
    """The benchmark's env; ``control`` other than velocity (our suite's waypoint mode) goes to the env,
    which names the keyword if it has no such mode."""
    from envs import make_benchmark

    kwargs = {"image_size": image_size, **({"control": control} if control != "velocity" else {})}
    key = env.lower()
    if key in ("mt10", "mt50"):
        key = "metaworld"
    if key in ("tabletop", "metaworld", "fetch"):
        return make_benchmark(key, task, **kwargs)
    return make_benchmark(task, None, **kwargs)


def overlay(frame: np.ndarray, text: str, scale: int = 4) -> np.ndarray:
    """The frame enlarged ``scale`` times with the instruction written along its bottom edge."""
    big = cv2.resize(frame, None, fx=scale, fy=scale, interpolation=cv2.INTER_NEAREST)
    h, w = big.shape[:2]
    cv2.rectangle(big, (0, h - 22), (w, h), (0, 0, 0), thickness=-1)
    cv2.putText(big, text[:60], (4, h - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (255, 255, 255), 1, cv2.LINE_AA)
    return big


def _policy_view(obs: dict, mode: str) -> dict:
    """What the policy gets: in speech mode the instruction text is withheld."""
    if mode == "speech":
        if obs.get("speech") is None:
            raise ValueError("instruction mode 'speech' needs environments that provide obs['speech']")
        return {**obs, "instruction": ""}
    return obs


def run_task(policy, cfg: EvalConfig, task: str, video_dir: Path | None, bar=None) -> dict[str, Any]:
    """Roll out ``cfg.episodes`` seeded episodes of one task; returns per-episode outcomes."""
    if cfg.instruction not in INSTRUCTION_MODES:
        raise ValueError(f"instruction must be one of {INSTRUCTION_MODES}, got {cfg.instruction!r}")
    batched = hasattr(policy, "select_action_batch") and hasattr(policy, "new_session")
    num_envs = max(1, min(cfg.num_envs if batched else 1, cfg.episodes))
    # What the policy's commands mean travels in its checkpoint (policy.json "control").
    control = getattr(policy, "control", "velocity")  # Policy and PolicyClient both say it
    envs_ = [make_env(cfg.env, task, cfg.image_size, control) for _ in range(num_envs)]
    episodes: list[dict[str, Any]] = []
    try:
        for start in range(0, cfg.episodes, num_envs):
            seeds = list(range(cfg.seed + start, cfg.seed + min(start + num_envs, cfg.episodes)))
            active = envs_[: len(seeds)]
            obs = [e.reset(seed=s)[0] for e, s in zip(active, seeds)]
            limit = cfg.max_steps or active[0].spec.max_episode_steps or 200
            sessions = [policy.new_session() for _ in active] if batched else [policy]
            if not batched:
                policy.reset()
            record = [video_dir is not None and start + i < cfg.videos for i in range(len(active))]
            frames: list[list[np.ndarray]] = [[] for _ in active]
            done = [False] * len(active)
            success = [False] * len(active)
            stage: list[str | None] = [None] * len(active)  # how it ended, where the env says (info["stage"])
            steps = [0] * len(active)
            instruction = [o.get("instruction", "") for o in obs]
            for _ in range(limit):
                live = [i for i in range(len(active)) if not done[i]]
                if not live:
                    break
                views = [_policy_view(obs[i], cfg.instruction) for i in live]
                if batched:
                    actions = policy.select_action_batch(views, [sessions[i] for i in live])
                else:
                    actions = [policy.select_action(views[0])]
                for i, action in zip(live, actions):
                    if record[i]:
                        frames[i].append(overlay(next(iter(obs[i]["images"].values())), instruction[i]))
                    obs[i], _, terminated, truncated, info = active[i].step(action)
                    steps[i] += 1
                    success[i] = success[i] or bool(info.get("is_success", False))
                    stage[i] = info.get("stage", stage[i])
                    done[i] = success[i] or terminated or truncated
            for i, seed in enumerate(seeds):
                video = None
                if record[i] and frames[i]:
                    from envs.video import write_video

                    video = video_dir / f"{task}_seed{seed}_{'success' if success[i] else 'fail'}.mp4"
                    write_video(video, np.stack(frames[i]), fps=20)
                episodes.append(
                    dict(
                        seed=seed,
                        success=success[i],
                        steps=steps[i],
                        stage=stage[i],
                        instruction=instruction[i],
                        video=str(video) if video else None,
                    )
                )
                if bar is not None:
                    bar.update(1)
    finally:
        for e in envs_:
            e.close()
    n_success = sum(e["success"] for e in episodes)
    lo, hi = wilson_interval(n_success, len(episodes))
    return dict(
        task=task,
        episodes=len(episodes),
        successes=n_success,
        success_rate=n_success / max(1, len(episodes)),
        ci95=[lo, hi],
        mean_steps=float(np.mean([e["steps"] for e in episodes])) if episodes else 0.0,
        failures=dict(Counter(e["stage"] for e in episodes if not e["success"] and e["stage"]).most_common()),
        rollouts=episodes,
    )


def evaluate(policy, cfg: EvalConfig) -> dict[str, Any]:
    """Every task of ``cfg``; writes report.json, report.md and videos under ``cfg.out``."""
    tasks = cfg.tasks or benchmark_tasks(cfg.env)
    out = Path(cfg.out)
    video_dir = out / "videos" if cfg.videos > 0 else None
    if video_dir is not None:
        video_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    results = []
    with tqdm(total=len(tasks) * cfg.episodes, desc=f"eval {cfg.env} ({cfg.instruction})", unit="ep") as bar:
        for task in tasks:
            results.append(run_task(policy, cfg, task, video_dir, bar))
    total = sum(r["episodes"] for r in results)
    successes = sum(r["successes"] for r in results)
    report = dict(
        config=asdict(cfg),
        tasks=results,
        mean_success_rate=float(np.mean([r["success_rate"] for r in results])) if results else 0.0,
        overall=dict(episodes=total, successes=successes, ci95=list(wilson_interval(successes, total))),
        seconds=time.perf_counter() - t0,
    )
    write_report(report, out)
    return report


def markdown_table(report: dict[str, Any]) -> str:
    cfg = report["config"]
    lines = [
        f"## {cfg['env']} — instruction as {cfg['instruction']}",
        "",
        "| task | episodes | success | 95% CI | mean steps | failed episodes ended |",
        "| --- | ---: | ---: | --- | ---: | --- |",
    ]
    for r in report["tasks"]:
        lo, hi = r["ci95"]
        ended = ", ".join(f"{stage} {n}" for stage, n in r.get("failures", {}).items())
        lines.append(
            f"| {r['task']} | {r['episodes']} | {100 * r['success_rate']:.0f}% | {100 * lo:.0f}–{100 * hi:.0f}% "
            f"| {r['mean_steps']:.0f} | {ended} |"
        )
    lo, hi = report["overall"]["ci95"]
    lines.append(
        f"| **mean** | {report['overall']['episodes']} | **{100 * report['mean_success_rate']:.0f}%** "
        f"| {100 * lo:.0f}–{100 * hi:.0f}% | | |"
    )
    return "\n".join(lines) + "\n"


def write_report(report: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=2))
    (out / "report.md").write_text(markdown_table(report))


# -- uio2 eval -----------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", help="a checkpoint directory (from uio2 train / demo)")
    parser.add_argument("--remote", help="evaluate a policy served by `uio2 serve` at this ws:// URL instead")
    parser.add_argument("--token", help="access token for --remote")
    parser.add_argument(
        "--env", default="tabletop", help="tabletop, metaworld (MT50), mt10, fetch, or an env id"
    )
    parser.add_argument("--tasks", nargs="*", default=[], help="task names (default: every task)")
    parser.add_argument("--episodes", type=int, default=10, help="episodes per task")
    parser.add_argument("--seed", type=int, default=10_000, help="first seed (held out from training)")
    parser.add_argument("--num-envs", type=int, default=4, help="environments stepped in lockstep")
    parser.add_argument("--instruction", choices=INSTRUCTION_MODES, default="text")
    parser.add_argument("--videos", type=int, default=1, help="episodes per task saved as mp4")
    parser.add_argument("--image-size", type=int, default=96)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument(
        "--n-action-steps", type=int, default=None, help="receding horizon (default: whole chunk)"
    )
    parser.add_argument("--temporal-ensemble", action="store_true", help="ACT temporal ensembling")
    parser.add_argument(
        "--switch-radius",
        type=float,
        default=None,
        help="waypoint policies: a command counts as reached when the next leaves it this near (m)",
    )
    parser.add_argument(
        "--speech-input",
        choices=("direct", "transcribe"),
        default=None,
        help="a spoken instruction: the clip as the action's input, or the model's own transcript of it",
    )
    parser.add_argument("--out", default="runs/eval")


def run(args: argparse.Namespace) -> int:
    if not args.checkpoint and not args.remote:
        raise SystemExit("uio2 eval: give --checkpoint DIR or --remote ws://HOST:PORT/...")
    cfg = EvalConfig(
        env=args.env,
        tasks=list(args.tasks),
        episodes=args.episodes,
        seed=args.seed,
        num_envs=args.num_envs,
        instruction=args.instruction,
        videos=args.videos,
        image_size=args.image_size,
        max_steps=args.max_steps,
        out=args.out,
    )
    overrides = {"temporal_ensemble": args.temporal_ensemble}
    if args.n_action_steps is not None:
        overrides["n_action_steps"] = args.n_action_steps
    if args.switch_radius is not None:
        overrides["switch_radius"] = args.switch_radius
    if args.speech_input is not None:
        overrides["speech_input"] = args.speech_input
    if args.remote:
        from agent.client import PolicyClient

        policy = PolicyClient(args.remote, token=args.token)
    else:
        from agent.policy import Policy

        policy = Policy.from_pretrained(args.checkpoint, **overrides)
    report = evaluate(policy, cfg)
    print(markdown_table(report))
    print(f"report: {Path(cfg.out) / 'report.json'}")
    return 0
