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


def test_decay_fraction_cools_the_lr_down_to_zero_over_the_last_steps():
    cfg = ScheduleConfig(name="constant", warmup_steps=10, decay_fraction=0.2)
    factors = [lr_factor(s, cfg, total_steps=100) for s in range(100)]
    assert factors[9] == factors[80] == 1.0  # warmed up and stable until the cooldown
    assert factors[90] == pytest.approx(0.5) and factors[99] == pytest.approx(0.05)
    assert all(a > b for a, b in zip(factors[80:], factors[81:]))
    # rsqrt decays under the cooldown too; bad settings name the value.
    assert lr_factor(
        95, ScheduleConfig(name="rsqrt", warmup_steps=4, decay_fraction=0.1), 100
    ) == pytest.approx(math.sqrt(4 / 96) * 0.5)
    with pytest.raises(ValueError, match="decay_fraction must be in"):
        lr_factor(0, ScheduleConfig(decay_fraction=1.5), 100)
    with pytest.raises(ValueError, match="total steps"):
        build_scheduler(
            torch.optim.SGD([torch.nn.Parameter(torch.ones(1))], lr=0.1), ScheduleConfig(decay_fraction=0.2)
        )
