"""Checkpoints: the model's save_pretrained files plus the trainer state, written atomically.

    out_dir/checkpoints/step-0000100/   model.safetensors, config.json, vocabulary, tokenizer,
                                        action_stats.json  (UnifiedIO.from_pretrained reads these)
                                        trainer_state.ckpt (optimiser, schedule, loops, data position)
                                        train_config.yaml
                                        policy.json (how the model was fed: camera, history, state)
    out_dir/checkpoints/LAST            the name of the newest complete checkpoint

A checkpoint is built in a hidden temporary folder and renamed into place only when
complete, so a run killed (or failing) mid-save never leaves a half checkpoint and
never damages one that exists: an older folder of the same name is swapped out only
after the new one is whole.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import lightning as L

from training.config import save_config

log = logging.getLogger(__name__)
TRAINER_STATE = "trainer_state.ckpt"
TRAIN_CONFIG = "train_config.yaml"
LAST = "LAST"
POLICY_FILE = "policy.json"  # agent.policy.PolicyConfig's file: a policy feeds the model as training did


def policy_defaults(cfg) -> dict:
    """The PolicyConfig fields a training run fixes: which camera, how much history, which state
    features, and how a spoken instruction reaches the action: a run that never acted on a clip but
    learned to write one down ("transcribe"; configs/demo_train.yaml) acts on its own transcript."""
    from training.mixture import mixture_weights

    weights = mixture_weights(cfg.data.mixture, cfg.data.speech_prob)
    heard = weights.get("action_speech", 0.0) > 0 or weights.get("asr", 0.0) <= 0
    return {
        "camera": cfg.data.camera,
        "history": cfg.data.history,
        "state_dims": cfg.data.state_dims,
        "control": cfg.data.control,
        "previous_action": cfg.data.previous_action,
        "previous_action_depth": cfg.data.previous_action_depth,
        "speech_input": "direct" if heard else "transcribe",
    }


def step_dir(root: Path, step: int) -> Path:
    return root / f"step-{step:07d}"


def latest_checkpoint(root: str | Path) -> Path | None:
    """The newest complete checkpoint under ``root`` (via LAST, else the highest step), or None."""
    root = Path(root)
    last = root / LAST
    if last.is_file():
        cand = root / last.read_text().strip()
        if (cand / TRAINER_STATE).is_file():
            return cand
    steps = sorted(p for p in root.glob("step-*") if (p / TRAINER_STATE).is_file())
    return steps[-1] if steps else None


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def _publish(tmp: Path, final: Path) -> None:
    """Rename a complete ``tmp`` folder to ``final``; an existing ``final`` is removed only afterwards."""
    old = None
    if final.exists():
        old = final.with_name(f".{final.name}.old.{os.getpid()}")
        os.replace(final, old)
    os.replace(tmp, final)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def full_parameters(trainer):
    """Under FSDP, whole (unsharded) parameters on rank 0 while save_pretrained runs; else nothing to do."""
    wrapped = getattr(trainer.strategy, "model", None)
    if type(wrapped).__name__ != "FullyShardedDataParallel":
        return contextlib.nullcontext()
    from torch.distributed.fsdp import FullyShardedDataParallel

    return FullyShardedDataParallel.summon_full_params(wrapped, writeback=False, rank0_only=True)


class PretrainedCheckpoint(L.Callback):
    """Every ``every_n_steps`` optimiser steps and at the end: save_pretrained + trainer state, atomically."""

    def __init__(self, root: str | Path, save_pretrained: Callable[[Path], None], cfg, every_n_steps: int):
        self.root = Path(root)
        self.save_pretrained = save_pretrained
        self.cfg = cfg
        self.every = max(1, every_n_steps)
        self._last_saved = -1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step > 0 and step % self.every == 0 and step != self._last_saved:
            self.save(trainer)

    def on_train_end(self, trainer, pl_module):
        if trainer.global_step != self._last_saved:
            self.save(trainer)

    def save(self, trainer: L.Trainer) -> Path:
        step = trainer.global_step
        final = step_dir(self.root, step)
        tmp = self.root / f".tmp-{final.name}"
        if trainer.is_global_zero:
            self.root.mkdir(parents=True, exist_ok=True)
            if tmp.exists():  # left by a run killed mid-save
                shutil.rmtree(tmp)
            tmp.mkdir()
        trainer.strategy.barrier("checkpoint-mkdir")
        # Every rank takes part (FSDP gathers shards); Lightning writes the file on rank 0 only.
        trainer.save_checkpoint(tmp / TRAINER_STATE)
        averaged = getattr(trainer.lightning_module, "averaged_weights", contextlib.nullcontext)
        with full_parameters(trainer), averaged():  # the trainer state above keeps the raw weights
            if trainer.is_global_zero:
                self.save_pretrained(tmp)
                if self.cfg is not None:
                    save_config(self.cfg, tmp / TRAIN_CONFIG)
                    (tmp / POLICY_FILE).write_text(json.dumps(policy_defaults(self.cfg), indent=2))
                _publish(tmp, final)
                _write_atomic(self.root / LAST, final.name)
                log.info("checkpoint written: %s", final)
        trainer.strategy.barrier("checkpoint-published")
        self._last_saved = step
        return final
