"""Optimiser and learning-rate schedule: Adafactor with linear warmup then 1/sqrt decay (UIO-2), AdamW option.

torch.optim.Adafactor keeps factored second moments (rows + columns per matrix), so
its state is O(rows + cols) instead of AdamW's 2x parameters: what lets UIO-2's
XXL fit. It has no first moment (beta1); UIO-2 used 0.9, which costs a full copy of
the parameters. Pick ``adamw`` for that behaviour.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch

from training.configuration import OptimConfig, ScheduleConfig


def build_optimizer(named_params: Iterable[tuple[str, torch.nn.Parameter]], cfg: OptimConfig):
    """The optimiser over trainable parameters; biases and norms get no weight decay."""
    decay, no_decay = [], []
    for name, p in named_params:
        if not p.requires_grad:
            continue
        (no_decay if p.ndim < 2 or name.endswith(".bias") else decay).append(p)
    if not decay and not no_decay:
        raise ValueError("no trainable parameters: every parameter has requires_grad=False")
    groups = [
        {"params": decay, "weight_decay": cfg.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    groups = [g for g in groups if g["params"]]
    if cfg.name == "adafactor":
        return torch.optim.Adafactor(groups, lr=cfg.lr, beta2_decay=cfg.beta2_decay)
    if cfg.name == "adamw":
        if len(cfg.betas) != 2:
            raise ValueError(f"optim.betas must be [beta1, beta2], got {cfg.betas}")
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas))
    raise ValueError(f"optim.name must be 'adafactor' or 'adamw', got {cfg.name!r}")


def lr_factor(step: int, cfg: ScheduleConfig, total_steps: int | None = None) -> float:
    """Multiplier of the base lr after ``step`` optimiser steps: (s+1)/W up to W, then sqrt(W/(s+1))
    ("rsqrt") or 1 ("constant"); over the last ``decay_fraction`` of ``total_steps`` that value falls
    linearly to 0."""
    if not 0.0 <= cfg.decay_fraction <= 1.0:
        raise ValueError(f"schedule.decay_fraction must be in [0, 1], got {cfg.decay_fraction}")
    if cfg.decay_fraction > 0 and not total_steps:
        raise ValueError("schedule.decay_fraction > 0 needs the run's total steps (trainer.max_steps)")
    w = max(1, cfg.warmup_steps)
    s = step + 1
    if s <= w:
        return s / w
    if cfg.name == "constant":
        f = 1.0
    elif cfg.name == "rsqrt":
        f = math.sqrt(w / s)
    else:
        raise ValueError(f"schedule.name must be 'rsqrt' or 'constant', got {cfg.name!r}")
    if cfg.decay_fraction > 0:
        decay = max(1, round(cfg.decay_fraction * total_steps))
        f *= min(1.0, max(0.0, (total_steps - step) / decay))
    return f


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, total_steps: int | None = None):
    """A per-step LambdaLR; its state (last_epoch = steps taken) travels in the trainer checkpoint."""
    lr_factor(0, cfg, total_steps)  # a bad setting fails here, not at the first step
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg, total_steps))
