"""Same seed, same data: same loss curve; resume from a checkpoint continues it (DESIGN.md invariant)."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

from model.modeling import UnifiedIO
from model.processor import Processor
from training.checkpoint import LAST, TRAINER_STATE
from training.loggers import read_losses
from training.trainer import train


class Crash(L.Callback):
    """Dies at the start of a given step, as a killed job would (after the step-3 checkpoint)."""

    def __init__(self, at_step: int):
        self.at_step = at_step

    def on_train_batch_start(self, trainer, *args):
        if trainer.global_step == self.at_step:
            raise RuntimeError("simulated crash")


@pytest.mark.slow
def test_resume_continues_the_same_loss_curve(tmp_path, rollouts, make_config):
    overrides = ("trainer.max_steps=6", "trainer.checkpoint_every_n_steps=3")
    full = train(make_config(tmp_path / "full", *overrides), rollouts)

    crashed = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train(make_config(crashed, *overrides), rollouts, extra_callbacks=[Crash(at_step=4)])
    assert (crashed / "checkpoints" / LAST).read_text() == "step-0000003"
    assert len(read_losses(crashed)) == 4  # step 4 ran before the crash; resume must drop it
    resumed = train(make_config(crashed, *overrides), rollouts)

    a, b = read_losses(tmp_path / "full"), read_losses(crashed)
    assert [r["step"] for r in b] == [1, 2, 3, 4, 5, 6]
    assert [r["batch"] for r in a] == [r["batch"] for r in b]
    np.testing.assert_allclose([r["loss"] for r in b], [r["loss"] for r in a], rtol=1e-6)
    np.testing.assert_allclose([r["lr"] for r in b], [r["lr"] for r in a], rtol=1e-9)

    # The final checkpoints hold the same weights, in the model's own format, loadable for inference.
    wa, wb = UnifiedIO.from_pretrained(full).state_dict(), UnifiedIO.from_pretrained(resumed).state_dict()
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-5
    proc = Processor.from_pretrained(resumed)
    assert proc.action_tokenizer is not None and proc.action_tokenizer.stats.dim == 4
    assert (resumed / TRAINER_STATE).is_file()
    assert torch.load(resumed / TRAINER_STATE, weights_only=True)["global_step"] == 6
