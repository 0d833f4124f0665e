"""Non-finite losses are skipped (no optimiser step, weights untouched) and counted; a diverged run stops."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from training.loggers import read_losses
from training.module import NonFiniteLossError
from training.trainer import fit, prepare


class Poison(L.Callback):
    """Turns the image inputs of chosen batches into NaN, as a corrupt frame would."""

    def __init__(self, batches: set[int]):
        self.batches = batches
        self.before: list[torch.Tensor] | None = None
        self.unchanged: dict[int, bool] = {}

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch["batch_index"] in self.batches:
            batch["image"][:] = float("nan")
            self.before = [p.detach().clone() for p in pl_module.parameters()]

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if batch["batch_index"] in self.batches:
            after = list(pl_module.parameters())
            self.unchanged[batch["batch_index"]] = all(torch.equal(a, b) for a, b in zip(self.before, after))


@pytest.mark.slow
def test_nonfinite_loss_is_skipped_and_counted(tmp_path, rollouts, make_config):
    poison = Poison({1})
    run = prepare(make_config(tmp_path, "trainer.max_steps=3"), rollouts, extra_callbacks=[poison])
    fit(run)
    records = read_losses(tmp_path)
    assert [r["batch"] for r in records] == [0, 2, 3]  # batch 1 skipped; still 3 optimiser steps
    assert run.module.nonfinite_skipped == 1
    assert run.trainer.global_step == 3
    assert all(torch.isfinite(p).all() for p in run.model.parameters())
    assert poison.unchanged == {1: True}  # the skipped batch changed no weight
    metrics = (tmp_path / "csv" / "version_0" / "metrics.csv").read_text()
    assert "train/nonfinite_skipped" in metrics


@pytest.mark.slow
def test_a_diverged_run_stops_with_a_clear_error(tmp_path, rollouts, make_config):
    cfg = make_config(tmp_path, "trainer.max_steps=5", "trainer.max_consecutive_nonfinite=2")
    with pytest.raises(NonFiniteLossError, match="2 consecutive non-finite loss"):
        fit(prepare(cfg, rollouts, extra_callbacks=[Poison({0, 1, 2, 3, 4})]))
