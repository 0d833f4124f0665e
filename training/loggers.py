"""Experiment logging: wandb through Lightning's WandbLogger (offline unless asked), CSV as the fallback,
and ``losses.jsonl``, the loss curve that survives resumes (one line per optimiser step).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
from pathlib import Path

import lightning as L
from lightning.pytorch.loggers import CSVLogger, Logger

from training.configuration import LoggerConfig

log = logging.getLogger(__name__)
LOSSES = "losses.jsonl"
WANDB_ID = "wandb_run_id"


def build_loggers(cfg: LoggerConfig, out_dir: str | Path) -> list[Logger]:
    """[WandbLogger] (resuming the run recorded in out_dir), or [CSVLogger] if wandb is off or fails."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.name == "none":
        return []
    if cfg.name == "wandb":
        try:
            return [_wandb(cfg, out)]
        except Exception as e:  # no wandb, no login for online mode, a broken install: keep training
            log.warning("wandb logger unavailable (%s: %s); logging to CSV in %s", type(e).__name__, e, out)
    return [CSVLogger(save_dir=str(out), name="csv")]


def _wandb(cfg: LoggerConfig, out: Path) -> Logger:
    from lightning.pytorch.loggers import WandbLogger

    id_file = out / WANDB_ID
    run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
    offline = cfg.offline or os.environ.get("WANDB_MODE") == "offline"
    logger = WandbLogger(
        project=cfg.project,
        name=cfg.run_name or out.name,
        save_dir=str(out),
        offline=offline,
        id=run_id,
        resume="allow",
    )
    _ = logger.experiment  # start the run now, so a failure falls back to CSV instead of crashing later
    id_file.write_text(run_id)
    return logger


class LossHistory(L.Callback):
    """Appends {"step", "batch", "loss", "lr"} per optimiser step to out_dir/losses.jsonl (rank 0).

    On resume, lines past the restored step (written after the last checkpoint by the
    killed run) are dropped, so the file is the curve of one uninterrupted run.
    """

    def __init__(self, out_dir: str | Path):
        self.path = Path(out_dir) / LOSSES

    def on_train_start(self, trainer, pl_module):
        if not trainer.is_global_zero or not self.path.is_file():
            return
        keep = [
            line
            for line in self.path.read_text().splitlines()
            if line.strip() and json.loads(line)["step"] <= trainer.global_step
        ]
        self.path.write_text("".join(f"{line}\n" for line in keep))

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        record = getattr(pl_module, "last_record", None)
        if not trainer.is_global_zero or record is None or record["step"] != trainer.global_step:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_losses(out_dir: str | Path) -> list[dict]:
    path = Path(out_dir) / LOSSES
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
