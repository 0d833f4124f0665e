"""`uio2 train --config configs/tiny.yaml [key.path=value ...]`: train the model, or a VQ-GAN tokenizer.

The config decides: a YAML with a top-level ``kind: image|audio`` is a VQ-GAN config
(training/vqgan.py), anything else a TrainConfig (training/configuration.py). A run
resumes from the newest checkpoint in its out_dir.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

import yaml

from training.config import ConfigError, load_config


def _user_errors() -> tuple[type[Exception], ...]:
    from training.episodes import DatasetError
    from training.trainer import CheckpointExistsError

    return (ConfigError, DatasetError, CheckpointExistsError)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--config", required=True, help="YAML config (configs/tiny.yaml, configs/base.yaml, ...)"
    )
    parser.add_argument(
        "overrides", nargs="*", metavar="key.path=value", help="config overrides, e.g. trainer.max_steps=100"
    )
    parser.add_argument("--out-dir", help="where checkpoints and logs go (overrides out_dir)")
    parser.add_argument(
        "--no-resume", action="store_true", help="refuse to start if out_dir already holds checkpoints"
    )


def config_kind(path: str | Path) -> str:
    """ "vqgan" for a VQ-GAN tokenizer config, "model" for a TrainConfig."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {str(p)!r} does not exist")
    data = yaml.safe_load(p.read_text()) or {}
    return "vqgan" if isinstance(data, dict) and data.get("kind") in ("image", "audio") else "model"


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    overrides = list(args.overrides)
    if config_kind(args.config) == "vqgan":
        from training.vqgan import run_config

        if args.out_dir:
            overrides.append(f"out_dir={args.out_dir}")
        run_config(args.config, overrides)
        return 0

    from training.configuration import TrainConfig
    from training.trainer import train

    if args.out_dir:
        overrides.append(f"out_dir={args.out_dir}")
    if args.no_resume:
        overrides.append("resume=false")
    try:
        final = train(load_config(TrainConfig, args.config, overrides))
    except _user_errors() as e:  # bad config or data: say what and where, no traceback
        print(f"uio2 train: error: {e}", file=sys.stderr)
        return 2
    if os.environ.get("LOCAL_RANK", "0") == "0":  # DDP: every rank returns; one prints
        print(f"checkpoint: {final}")
    return 0
