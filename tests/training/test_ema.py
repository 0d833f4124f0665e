"""The weight average (training/ema.py): what checkpoints export, and a resumed run keeps it."""

from __future__ import annotations

import math

import pytest
import torch

from model.modeling import UnifiedIO
from tests.training.test_resume import Crash
from training.checkpoint import LAST, TRAINER_STATE
from training.ema import WeightEMA
from training.trainer import train


def test_average_follows_the_weights_with_a_ramped_decay_and_swaps_back():
    model = torch.nn.Linear(3, 2)
    ema = WeightEMA(model, decay=0.9)
    ema.update()  # the first update: the average starts as the weights
    start = [p.detach().clone() for p in model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    ema.update()  # second update: decay min(0.9, 3 / 12)
    d = 3 / 12
    with ema.averaged():
        for p, s in zip(model.parameters(), start):
            torch.testing.assert_close(p, d * s + (1 - d) * (s + 1))
    for p, s in zip(model.parameters(), start):  # the raw weights are back
        torch.testing.assert_close(p, s + 1)
    ema.updates = 1000
    assert ema.current_decay() == 0.9


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.5, math.nan])
def test_a_decay_outside_0_1_is_refused_with_its_value(decay):
    with pytest.raises(ValueError, match="ema_decay"):
        WeightEMA(torch.nn.Linear(2, 2), decay)


@pytest.mark.slow
def test_checkpoint_exports_the_average_and_resume_continues_it(tmp_path, rollouts, make_config):
    overrides = ("trainer.max_steps=6", "trainer.checkpoint_every_n_steps=3", "optim.ema_decay=0.5")
    full = train(make_config(tmp_path / "full", *overrides), rollouts)
    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_config(crashed, *overrides), rollouts, extra_callbacks=[Crash(at_step=4)])
    assert (crashed / "checkpoints" / LAST).read_text() == "step-0000003"
    resumed = train(make_config(crashed, *overrides), rollouts)

    exported = UnifiedIO.from_pretrained(full).state_dict()
    state = torch.load(full / TRAINER_STATE, weights_only=True)
    raw = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    shadow = state["uio2"]["ema"]["shadow"]
    assert state["uio2"]["ema"]["updates"] == 6
    # The exported weights are the average, not the weights the optimiser left...
    names = [n for n, p in UnifiedIO.from_pretrained(full).named_parameters() if p.requires_grad]
    assert len(names) == len(shadow)
    assert max(float((exported[n] - s).abs().max()) for n, s in zip(names, shadow)) < 1e-6
    assert max(float((exported[n] - raw[n]).abs().max()) for n in names) > 1e-4
    # ... and a run resumed from step 3 ends with the same average.
    again = UnifiedIO.from_pretrained(resumed).state_dict()
    assert max(float((again[k] - exported[k]).abs().max()) for k in exported) < 1e-5
