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


def lr_factor(step: int, cfg: ScheduleConfig) -> float:
    """Multiplier of the base lr after ``step`` optimiser steps: (s+1)/W up to W, then sqrt(W/(s+1))."""
    w = max(1, cfg.warmup_steps)
    s = step + 1
    if s <= w:
        return s / w
    if cfg.name == "constant":
        return 1.0
    if cfg.name == "rsqrt":
        return math.sqrt(w / s)
    raise ValueError(f"schedule.name must be 'rsqrt' or 'constant', got {cfg.name!r}")


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: ScheduleConfig):
    """A per-step LambdaLR; its state (last_epoch = steps taken) travels in the trainer checkpoint."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(step, cfg))
