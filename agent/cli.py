"""The ``uio2`` command: one entry point, a subcommand per job.

Each subcommand lives in its own module, which defines ``add_arguments(parser)``
and ``run(args) -> int | None``. Modules are imported only when their command
runs, so ``uio2 --help`` stays fast and a broken optional stack (ROS, say) does
not take the other commands down with it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

# name -> (module, one-line help, longer description)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "collect": (
        "envs.collect",
        "record scripted-expert demonstrations into a LeRobotDataset v3 folder",
        "Roll out the scripted expert of each task and write whole episodes (parquet + mp4, meta/) atomically.",
    ),
    "train": (
        "training.train",
        "train a model (or a VQ-GAN tokenizer) from a YAML config",
        "Train from scratch on the simulator's multimodal task mixture; resumes from the last checkpoint.",
    ),
    "finetune": (
        "training.finetune",
        "fine-tune a checkpoint on a LeRobotDataset v3 folder or robomimic/LIBERO HDF5 file",
        "Adapt a trained checkpoint to your own demonstrations; optionally freeze encoders and recompute action statistics.",
    ),
    "eval": (
        "agent.evaluate",
        "evaluate a policy checkpoint in a Gymnasium/MuJoCo benchmark",
        "Vectorised rollouts; success per task with 95% confidence intervals; mp4 videos and a JSON + Markdown report.",
    ),
    "generate": (
        "agent.generate",
        "generate text, boxes, an image or speech from a checkpoint",
        "Run one prompt through the model and write the output as text, JSON, PNG or WAV.",
    ),
    "serve": (
        "agent.server",
        "serve actions (websocket) and every other modality (HTTP) from a checkpoint",
        "An inference server for closed-loop control and for answers, captions, boxes, images and speech.",
    ),
    "bridge": (
        "bridges.run",
        "drive a ROS 2 robot through rosbridge (roslibpy) with a policy checkpoint",
        "Subscribe to cameras, state, instruction and audio; publish safe, clipped commands at a fixed rate.",
    ),
    "demo": (
        "agent.demo",
        "the end-to-end demo: collect, train the tiny model, evaluate with text and speech",
        "Collects expert demonstrations in our tabletop suite, trains the tiny config, evaluates on held-out seeds.",
    ),
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="uio2",
        description="A Unified-IO 2-style model for embodied agents: one transformer reads text, images, "
        "audio and robot state and writes text, images, audio, boxes and robot actions.",
        epilog="Run `uio2 COMMAND --help` for a command's options. Start with `uio2 demo`.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module, help_, description) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=description)
        p.set_defaults(_module=module)
        # Options are added lazily (below) so that `uio2 --help` imports nothing heavy.
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    parser = build_parser()
    if not argv or argv[0] not in COMMANDS:
        args = parser.parse_args(argv)  # prints help or a usage error and exits
    name = argv[0]
    module_name, help_, description = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as e:
        if e.name == module_name or module_name.startswith(f"{e.name}."):
            print(
                f"uio2 {name}: not available in this installation ({module_name} is missing)", file=sys.stderr
            )
            return 2
        raise
    sub = argparse.ArgumentParser(prog=f"uio2 {name}", description=description)
    module.add_arguments(sub)
    args = sub.parse_args(argv[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
