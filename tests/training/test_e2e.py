"""A tiny end-to-end training on CPU, bf16 autocast, from live expert rollouts: the loss falls well below its start."""

from __future__ import annotations

import numpy as np
import pytest

from training.loggers import read_losses
from training.trainer import train


@pytest.mark.slow
def test_tiny_training_loss_falls(tmp_path, rollouts, make_config):
    cfg = make_config(
        tmp_path,
        "trainer.max_steps=40",
        "trainer.batch_size=8",
        "trainer.precision=bf16-mixed",
        "logger.name=wandb",  # offline (tests/conftest.py): the default logger's path is exercised too
        "logger.log_media_every_n_steps=40",
    )
    final = train(cfg, rollouts)
    losses = np.array([r["loss"] for r in read_losses(tmp_path)])
    assert len(losses) == 40 and np.isfinite(losses).all()
    start, end = losses[:3].mean(), losses[-5:].mean()
    assert end < 0.65 * start, f"loss went from {start:.2f} to {end:.2f}"
    assert (final / "model.safetensors").is_file()
    assert list((tmp_path / "wandb").glob("offline-run-*")), "wandb (offline) should have recorded the run"
    samples = (tmp_path / "samples.jsonl").read_text().splitlines()
    assert samples, "sample outputs should be written at step 40"
