"""``uio2 demo``: the whole path in one command, sized for a 2-core CPU (under 30 minutes).

1. collect scripted-expert demonstrations of every task of our tabletop suite into a
   LeRobotDataset v3 folder (the format ``uio2 finetune`` reads);
2. train the tiny model on them: action prediction plus the multimodal task mixture
   (captions, questions, boxes, speech, ...);
3. evaluate on held-out seeds, once reading the instruction and once hearing it;
4. print the success table and write videos and a JSON + Markdown report.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from training.config import load_config

SUITE_TASKS = ["reach", "push", "pick_place", "stack", "drawer", "button"]


@dataclass
class DemoConfig:
    out: str = "runs/demo"
    env: str = "tabletop"  # or "metaworld" (tasks then are Meta-World names, e.g. MT10's)
    tasks: list[str] = field(default_factory=lambda: list(SUITE_TASKS))
    episodes_per_task: int = 250  # expert demonstrations per task (cheap: 2-6 episodes/s per worker)
    # DART: the expert's moves are executed with this much Gaussian noise (action units) and
    # recorded clean, so the demonstrations show how to recover from being off the path.
    action_noise: float = 0.3  # keeps the experts >= 92% successful (12 seeds per task)
    image_size: int = 64
    # The experts' actions as absolute waypoints (UIO-2's poses on VIMA-Bench): about twice as fast to
    # learn as per-step velocities for a reference CNN, and written in the scene camera they are
    # what the pointer readout points at (configs/demo_train.yaml). "velocity" for the old demo.
    control: str = "waypoint"
    train_config: str = "configs/demo_train.yaml"
    train_overrides: list[str] = field(default_factory=list)
    eval_episodes: int = 20  # held-out episodes per task, for each instruction mode (the measure)
    eval_num_envs: int = 5
    eval_max_steps: int | None = None
    videos: int = 1  # per task and mode
    eval_workers: int = 2  # instruction modes evaluated at once, one process each (as collect_workers)
    collect_workers: int = 2  # tasks collected at once, one process each
    seed: int = 0
    # Intra-op threads for training: the tiny model's ops are too small to share between cores,
    # and a second thread fighting the renderer or the data pipeline costs far more than it gives
    # (measured: 0.2 s a step with 1 thread, 3-9 s with 2, on a busy 2-core machine).
    threads: int = 1
    # Training processes: data-parallel (DDP over gloo), one thread each, the global batch split
    # between them. One thread cannot use the second core (see ``threads``), a second process can:
    # about 1.5x the examples a second (batch 32 at 1.80-1.94 steps/s, batch 16 at 2.47 alone).
    train_processes: int = 2


QUICK = [  # a smoke run of every stage in a couple of minutes (used by the tests)
    "episodes_per_task=1",
    "eval_episodes=1",
    "eval_num_envs=1",
    "eval_max_steps=5",
    "train_overrides=[trainer.max_steps=3, trainer.batch_size=4, trainer.checkpoint_every_n_steps=3,"
    " trainer.log_every_n_steps=1, logger.name=csv]",
]


def resolve_config(path: str) -> Path:
    """A config path as given, or relative to this repository's root (so the demo runs from anywhere)."""
    p = Path(path)
    if p.exists() or p.is_absolute():
        return p
    return Path(__file__).resolve().parents[1] / p


COLLECT_STAMP = "demo_collect.json"  # the collection settings a dataset folder was made with


def _collect_task(cfg: DemoConfig, i: int, task: str, folder: Path) -> None:
    from envs.collect import add_arguments, run

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--env", task if cfg.env == "tabletop" else f"{cfg.env}:{task}", "--episodes", str(cfg.episodes_per_task),
         "--out", str(folder), "--seed", str(cfg.seed + 1000 * i), "--image-size", str(cfg.image_size),
         "--action-noise", str(cfg.action_noise), "--control", cfg.control]
    )  # fmt: skip
    if run(args) != 0:
        raise RuntimeError(f"collecting {task} failed: the expert could not finish enough episodes")


def task_folders(cfg: DemoConfig, dataset: Path) -> list[Path]:
    """One LeRobotDataset folder per task (training pools them), so tasks can be collected in parallel."""
    return [dataset / task for task in cfg.tasks]


def collect(cfg: DemoConfig, dataset: Path) -> dict:
    """Record ``episodes_per_task`` successful expert episodes of each task (seeds below the eval seeds).

    Tasks are collected ``collect_workers`` at a time, each in its own process and dataset folder
    (simulation and rendering are single-threaded, so a second core doubles the rate). A folder a
    finished earlier run collected with the same settings is reused as it is (re-running the demo
    skips this stage); a folder made otherwise is left alone, with an error that says so.
    """
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    settings = {
        "env": cfg.env, "tasks": list(cfg.tasks), "episodes_per_task": cfg.episodes_per_task,
        "image_size": cfg.image_size, "action_noise": cfg.action_noise, "seed": cfg.seed,
        "control": cfg.control,
    }  # fmt: skip
    stamp = dataset / COLLECT_STAMP
    if stamp.exists() and json.loads(stamp.read_text()) == settings:
        print(f"reusing the demonstrations collected earlier in {dataset}", flush=True)
        return {"seconds": 0.0, "dataset": str(dataset), "reused": True}
    if dataset.exists():
        raise FileExistsError(
            f"{dataset} holds demonstrations collected with other settings than {settings} (or an "
            "interrupted collection); delete it or choose another out= for this demo"
        )
    t0 = time.perf_counter()
    folders = task_folders(cfg, dataset)
    workers = max(1, min(cfg.collect_workers, len(cfg.tasks)))
    # spawn: each worker starts its own renderer (a forked EGL context is not safe to reuse).
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        jobs = [pool.submit(_collect_task, cfg, i, t, f) for i, (t, f) in enumerate(zip(cfg.tasks, folders))]
        for job in jobs:
            job.result()  # re-raises a worker's error here
    stamp.write_text(json.dumps(settings, indent=2))
    return {"seconds": time.perf_counter() - t0, "dataset": str(dataset), "reused": False}


def train(cfg: DemoConfig, dataset: Path) -> tuple[Path, dict]:
    from agent.policy import PolicyConfig
    from training.configuration import TrainConfig
    from training.trainer import train as run_training

    folders = json.dumps([str(f) for f in task_folders(cfg, dataset)])  # a YAML flow list, any path
    overrides = [
        f"out_dir={Path(cfg.out) / 'train'}",
        f"data.dataset={folders}",
        f"data.control={cfg.control}",
    ]
    if cfg.control == "velocity":
        overrides.append("data.action_frame=native")
    overrides += cfg.train_overrides
    train_cfg = load_config(TrainConfig, resolve_config(cfg.train_config), overrides)
    if cfg.train_processes < 1 or train_cfg.trainer.batch_size % cfg.train_processes:
        raise ValueError(
            f"train_processes={cfg.train_processes} must be >= 1 and divide the training batch "
            f"(trainer.batch_size={train_cfg.trainer.batch_size}): each process takes an equal share"
        )
    t0 = time.perf_counter()
    if cfg.train_processes > 1:
        checkpoint = _train_processes(train_cfg, cfg.train_processes)
    else:
        checkpoint = run_training(train_cfg)
    seconds = time.perf_counter() - t0
    # The robot's limits travel with the checkpoint, so every user of it clips the same way.
    low, high = [-1.0] * 4, [1.0] * 4
    if cfg.control == "waypoint":  # the arm's workspace (table frame, m) and the gripper
        from envs.scene import WORKSPACE_HIGH, WORKSPACE_LOW

        low, high = [*WORKSPACE_LOW.tolist(), -1.0], [*WORKSPACE_HIGH.tolist(), 1.0]
    replace(PolicyConfig.load(checkpoint), action_low=low, action_high=high).save(checkpoint)
    return checkpoint, {
        "seconds": seconds,
        "checkpoint": str(checkpoint),
        "steps": train_cfg.trainer.max_steps,
        "batch_size": train_cfg.trainer.batch_size,
        "processes": cfg.train_processes,
    }


def _train_processes(train_cfg, processes: int) -> Path:
    """``uio2 train`` under DDP in ``processes`` CPU processes; returns the final checkpoint.

    Child commands, started together as torchrun would (LOCAL_RANK, MASTER_ADDR / MASTER_PORT):
    left to itself Lightning starts the other ranks from ``trainer.fit``, by running the launching
    command again, so each would load the demonstrations after the one before (1-2 min
    each), and this command would collect them anew."""
    import subprocess
    import sys

    from lightning.fabric.plugins.environments.lightning import find_free_network_port

    from training.checkpoint import latest_checkpoint
    from training.config import save_config

    train_cfg = replace(
        train_cfg,
        trainer=replace(train_cfg.trainer, devices=processes, strategy="ddp", accelerator="cpu"),
    )
    out = Path(train_cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    config = out / "train_config.yaml"
    save_config(train_cfg, config)
    env = {
        **os.environ,
        "OMP_NUM_THREADS": str(train_cfg.trainer.num_threads or 1),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(find_free_network_port()),
        "WORLD_SIZE": str(processes),
        "NODE_RANK": "0",
    }
    cmd = [sys.executable, "-m", "agent.cli", "train", "--config", str(config)]
    ranks = [subprocess.Popen(cmd, env={**env, "LOCAL_RANK": str(r)}) for r in range(processes)]
    codes = supervise(ranks)
    if any(codes):
        raise RuntimeError(f"training failed (exit codes {codes} of the ranks): {' '.join(cmd)}")
    final = latest_checkpoint(out / "checkpoints")
    if final is None:
        raise RuntimeError(f"training finished without a checkpoint under {out / 'checkpoints'}")
    return final


def supervise(ranks: list, poll_s: float = 1.0) -> list[int]:
    """Wait for every process; once one fails, stop the others. Returns their exit codes.

    Without it a rank that fails leaves its peers waiting in their next all-reduce forever."""
    try:
        while True:
            codes = [p.poll() for p in ranks]  # every rank each time: any() would stop at the first
            if all(c is not None for c in codes) or any(c not in (None, 0) for c in codes):
                break
            time.sleep(poll_s)
    finally:
        for p in ranks:
            if p.poll() is None:
                p.terminate()
    return [p.wait() for p in ranks]


def _evaluate_mode(cfg: DemoConfig, checkpoint: Path, mode: str) -> dict:
    import torch

    from agent.evaluate import EvalConfig
    from agent.evaluate import evaluate as run_eval
    from agent.policy import Policy

    torch.set_num_threads(cfg.threads)  # a spawned worker starts with torch's default, all cores
    eval_cfg = EvalConfig(
        env=cfg.env, tasks=list(cfg.tasks), episodes=cfg.eval_episodes, num_envs=cfg.eval_num_envs,
        instruction=mode, videos=cfg.videos, image_size=cfg.image_size, max_steps=cfg.eval_max_steps,
        out=str(Path(cfg.out) / f"eval_{mode}"),
    )  # fmt: skip
    return run_eval(Policy.from_pretrained(checkpoint), eval_cfg)


def evaluate(cfg: DemoConfig, checkpoint: Path) -> dict:
    """Text and speech, ``eval_workers`` at a time in their own processes: an episode is one
    single-threaded policy step after another, so a second core halves the stage (about 2 min)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    modes = ("text", "speech")
    if cfg.eval_workers <= 1:
        return {mode: _evaluate_mode(cfg, checkpoint, mode) for mode in modes}
    # spawn: each worker starts its own renderer (a forked EGL context is not safe to reuse).
    with ProcessPoolExecutor(min(cfg.eval_workers, len(modes)), mp_context=get_context("spawn")) as pool:
        jobs = {mode: pool.submit(_evaluate_mode, cfg, checkpoint, mode) for mode in modes}
        return {mode: job.result() for mode, job in jobs.items()}


def success_table(reports: dict) -> str:
    text, speech = reports["text"], reports["speech"]
    lines = ["| task | text | speech |", "| --- | ---: | ---: |"]
    for t, s in zip(text["tasks"], speech["tasks"]):
        lines.append(
            f"| {t['task']} | {100 * t['success_rate']:.0f}% ({t['successes']}/{t['episodes']}) "
            f"| {100 * s['success_rate']:.0f}% ({s['successes']}/{s['episodes']}) |"
        )
    lines.append(
        f"| **mean** | **{100 * text['mean_success_rate']:.0f}%** | **{100 * speech['mean_success_rate']:.0f}%** |"
    )
    return "\n".join(lines) + "\n"


def demo(cfg: DemoConfig) -> dict:
    import torch

    torch.set_num_threads(cfg.threads)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    print(
        f"[demo 1/3] collecting {cfg.episodes_per_task} expert episodes x {len(cfg.tasks)} tasks", flush=True
    )
    dataset = out / "dataset"
    collected = collect(cfg, dataset)
    print(f"[demo 2/3] training the tiny model ({cfg.train_config})", flush=True)
    checkpoint, trained = train(cfg, dataset)
    print(
        f"[demo 3/3] evaluating {cfg.eval_episodes} held-out episodes per task, text and speech", flush=True
    )
    reports = evaluate(cfg, checkpoint)
    table = success_table(reports)
    summary = {
        "config": asdict(cfg),
        "collect": collected,
        "train": trained,
        "success": {m: r["mean_success_rate"] for m, r in reports.items()},
        "per_task": {m: {t["task"]: t["success_rate"] for t in r["tasks"]} for m, r in reports.items()},
        "minutes": (time.perf_counter() - t0) / 60,
    }
    (out / "report.json").write_text(json.dumps(summary, indent=2))
    (out / "report.md").write_text(
        f"# uio2 demo\n\nTrained {trained['steps']} steps in {trained['seconds'] / 60:.1f} min; "
        f"whole demo {summary['minutes']:.1f} min.\n\n{table}\nVideos: `{out}/eval_text/videos`, "
        f"`{out}/eval_speech/videos`. Checkpoint: `{checkpoint}`.\n"
    )
    print("\n" + table)
    print(f"report: {out / 'report.md'}  videos: {out}/eval_*/videos  checkpoint: {checkpoint}")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", default=None, help="a YAML file with DemoConfig fields")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run of every stage (minutes, not a result)"
    )
    parser.add_argument(
        "overrides", nargs="*", help="DemoConfig overrides, e.g. out=runs/d2 episodes_per_task=10"
    )


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("WANDB_MODE", "offline")
    overrides = (QUICK if args.quick else []) + list(args.overrides)
    demo(load_config(DemoConfig, args.config, overrides))
    return 0
