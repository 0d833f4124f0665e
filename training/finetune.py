"""`uio2 finetune --checkpoint CKPT --dataset PATH`: adapt a trained model to your own demonstrations.

PATH is a LeRobotDataset v3.0 folder (ours, or one the lerobot library wrote: ``--camera`` picks
the camera, frames are resized to the model's image size, the instruction comes from its tasks) or a
robomimic/LIBERO HDF5 file. The run starts
from CKPT's weights and tokenizers, recomputes action statistics from the new data
(``--keep-stats`` reuses the checkpoint's, after checking their dimension), can
freeze the input encoders (``--freeze-encoders``, as UIO-2 froze its ViT), and
writes to its own out_dir: CKPT itself is never written to.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path

from training.checkpoint import TRAIN_CONFIG
from training.config import load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint folder (save_pretrained format)")
    parser.add_argument("--dataset", required=True, help="LeRobotDataset v3 folder or robomimic/LIBERO .hdf5")
    parser.add_argument(
        "--config", help="TrainConfig YAML (default: the checkpoint's train_config.yaml, else the defaults)"
    )
    parser.add_argument(
        "--out-dir", help="where the fine-tuned checkpoints go (default runs/finetune-<dataset>)"
    )
    parser.add_argument(
        "--camera",
        help="the camera the model sees: a name (top) or lerobot key (observation.images.top); "
        "default: the checkpoint's, else the dataset's first",
    )
    parser.add_argument("--max-steps", type=int, help="optimiser steps (overrides trainer.max_steps)")
    parser.add_argument("--freeze-encoders", action="store_true", help="keep ViT, AST and resamplers fixed")
    parser.add_argument(
        "--keep-stats",
        action="store_true",
        help="reuse the checkpoint's action statistics instead of recomputing them from the dataset",
    )
    parser.add_argument("overrides", nargs="*", metavar="key.path=value", help="config overrides")


def finetune_config(args: argparse.Namespace):
    from training.configuration import TrainConfig

    ckpt = Path(args.checkpoint)
    if not (ckpt / "config.json").is_file():
        raise FileNotFoundError(f"{ckpt} is not a checkpoint folder (no config.json)")
    config = args.config or (ckpt / TRAIN_CONFIG if (ckpt / TRAIN_CONFIG).is_file() else None)
    out = args.out_dir or f"runs/finetune-{Path(args.dataset).stem}"
    overrides = [
        f"init_from={ckpt}",
        f"data.dataset={args.dataset}",
        f"out_dir={out}",
        f"data.recompute_stats={'false' if args.keep_stats else 'true'}",
        f"trainer.freeze_encoders={'true' if args.freeze_encoders else 'false'}",
    ]
    image_size = json.loads((ckpt / "config.json").read_text()).get("image_size")
    if image_size:  # dataset frames are resized to what the model sees as they are read
        overrides.append(f"data.image_size={image_size}")
    if getattr(args, "camera", None):
        overrides.append(f"data.camera={args.camera.removeprefix('observation.images.')}")
    if args.max_steps is not None:
        overrides.append(f"trainer.max_steps={args.max_steps}")
    return load_config(TrainConfig, config, overrides + list(args.overrides))


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from training.config import ConfigError
    from training.episodes import DatasetError
    from training.trainer import CheckpointExistsError, train

    try:
        final = train(finetune_config(args))
    except (ConfigError, DatasetError, CheckpointExistsError, FileNotFoundError) as e:
        print(f"uio2 finetune: error: {e}", file=sys.stderr)  # what and where, no traceback
        return 2
    if os.environ.get("LOCAL_RANK", "0") == "0":
        print(f"checkpoint: {final}")
    return 0
