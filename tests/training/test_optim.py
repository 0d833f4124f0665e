"""Optimiser and schedule: Adafactor by default, AdamW on request, linear warmup then 1/sqrt decay."""

from __future__ import annotations

import math

import pytest
import torch

from training.configuration import OptimConfig, ScheduleConfig
from training.optim import build_optimizer, build_scheduler, lr_factor


def test_warmup_then_rsqrt():
    cfg = ScheduleConfig(name="rsqrt", warmup_steps=10)
    factors = [lr_factor(s, cfg) for s in range(40)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)  # peak at the end of warmup
    assert all(a < b for a, b in zip(factors[:9], factors[1:10]))
    assert factors[39] == pytest.approx(math.sqrt(10 / 40))
    assert all(a > b for a, b in zip(factors[10:], factors[11:]))
    assert lr_factor(100, ScheduleConfig(name="constant", warmup_steps=10)) == 1.0


def test_scheduler_drives_the_optimiser_lr():
    p = torch.nn.Parameter(torch.ones(4, 4))
    opt = build_optimizer([("w", p)], OptimConfig(lr=0.5))
    sched = build_scheduler(opt, ScheduleConfig(warmup_steps=4))
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        p.grad = torch.ones_like(p)
        opt.step()
        sched.step()
    assert lrs == pytest.approx([0.125, 0.25, 0.375, 0.5, 0.5 * math.sqrt(4 / 5), 0.5 * math.sqrt(4 / 6)])


def test_optimisers_and_decay_groups():
    model = torch.nn.Linear(3, 2)
    opt = build_optimizer(model.named_parameters(), OptimConfig(name="adafactor", weight_decay=0.1))
    assert isinstance(opt, torch.optim.Adafactor)
    decay = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert decay == {id(model.weight)}  # no decay on the bias
    assert isinstance(build_optimizer(model.named_parameters(), OptimConfig(name="adamw")), torch.optim.AdamW)
    for p in model.parameters():
        p.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model.named_parameters(), OptimConfig())
