"""Sample outputs during training: what the model writes for a few fixed prompts, one per task family.

Every ``every_n_steps`` steps (rank 0) each fixed example is decoded in its target
modality; text and actions go to ``out_dir/samples.jsonl`` whatever the logger, and
with wandb also as media: a table of prompt / target / prediction, the input
images, generated images and audio, decoded action chunks.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from model.example import AUDIO_SAMPLE_RATE, Example
from training.mixture import TaskMixture

log = logging.getLogger(__name__)
SAMPLES = "samples.jsonl"
HELD_OUT = 10**9  # example indices far past any training step: prompts the model has not trained on


def fixed_examples(mixture: TaskMixture, per_family: int = 1, max_draws: int = 400) -> list[Example]:
    """One example of each family the mixture can make (drawn past the training indices)."""
    found: dict[str, list[Example]] = {}
    for i in range(max_draws):
        ex = mixture.example(HELD_OUT + i)
        bucket = found.setdefault(ex.meta["task"], [])
        if len(bucket) < per_family:
            bucket.append(ex)
        if len(found) == len(mixture.names) and all(len(b) >= per_family for b in found.values()):
            break
    return [ex for name in mixture.names for ex in found.get(name, [])]


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.round(4).tolist() if value.ndim <= 2 and value.size <= 256 else f"array{value.shape}"
    return value


class SampleLogger(L.Callback):
    def __init__(self, out_dir: str | Path, examples: list[Example], processor, every_n_steps: int):
        self.path = Path(out_dir) / SAMPLES
        self.examples = examples
        self.processor = processor
        self.every = max(1, every_n_steps)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        step = trainer.global_step
        if step == 0 or step % self.every or not trainer.is_global_zero or not self.examples:
            return
        if type(trainer.strategy).__name__.startswith("FSDP"):
            return  # parameters are sharded across ranks: rank 0 alone cannot run the model
        try:
            records = self.generate(pl_module.model)
        except Exception as e:  # a sample must never stop a training run
            log.warning("step %d: sample generation failed (%s: %s)", step, type(e).__name__, e)
            return
        with self.path.open("a") as f:
            for r in records:
                f.write(
                    json.dumps({"step": step, **{k: _jsonable(v) for k, v in r.items() if k != "media"}})
                    + "\n"
                )
        for lg in trainer.loggers:
            if type(lg).__name__ == "WandbLogger":
                log_wandb(lg, records, step)

    @torch.no_grad()
    def generate(self, model) -> list[dict[str, Any]]:
        records = []
        by_target: dict[str, list[Example]] = {}
        for ex in self.examples:
            by_target.setdefault(ex.target, []).append(ex)
        for target, exs in by_target.items():
            outputs = model.generate_from_examples(self.processor, exs, target)
            for ex, out in zip(exs, outputs):
                records.append(
                    {
                        "task": ex.meta["task"],
                        "target": target,
                        "prompt": ex.text or "",
                        "expected": ex.target_value,
                        "prediction": out,
                        "media": ex,
                    }
                )
        return records


def log_wandb(logger, records: list[dict[str, Any]], step: int) -> None:
    import wandb

    table = wandb.Table(columns=["task", "prompt", "expected", "prediction", "input"])
    media: dict[str, Any] = {}
    for r in records:
        ex: Example = r["media"]
        image = wandb.Image(ex.image) if ex.image is not None else None
        expected, pred = r["expected"], r["prediction"]
        if r["target"] == "image":
            media[f"samples/{r['task']}"] = [
                wandb.Image(pred, caption="generated"),
                wandb.Image(expected, caption="target"),
            ]
            expected, pred = "(image)", "(image)"
        elif r["target"] == "audio":
            media[f"samples/{r['task']}"] = wandb.Audio(np.asarray(pred), sample_rate=AUDIO_SAMPLE_RATE)
            expected, pred = "(audio)", "(audio)"
        elif r["target"] == "action":
            expected, pred = (
                np.array2string(np.asarray(expected), precision=2),
                np.array2string(np.asarray(pred), precision=2),
            )
        table.add_data(r["task"], r["prompt"], str(expected), str(pred), image)
    logger.experiment.log({"samples/table": table, **media, "trainer/global_step": step})
