"""The LightningModule: one optimiser step per batch, non-finite losses skipped and counted, rich logs.

Manual optimisation, because a skipped step must be skipped on every rank at once
(a rank that returns no loss while the others all-reduce gradients hangs DDP), and
because we want the gradient norm the clip measured, not a second pass over the grads.

The loss is normalised by the number of target tokens of the *global* batch
(summed over ranks), so N-process DDP computes the same gradient as one process on
the same global batch; the plain per-rank mean would weight ranks with few tokens up.
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections import defaultdict
from typing import Any

import lightning as L
import torch

from training.configuration import TrainConfig
from training.ema import WeightEMA
from training.optim import build_optimizer, build_scheduler

log = logging.getLogger(__name__)


class NonFiniteLossError(RuntimeError):
    """Too many consecutive non-finite losses: the run diverged (a bad batch is skipped, not this)."""


def unpack_output(out: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """The model's forward returns (loss, info) or a dict with "loss"; accept both."""
    if isinstance(out, tuple) and len(out) == 2:
        return out[0], dict(out[1] or {})
    if isinstance(out, dict) and "loss" in out:
        return out["loss"], out
    raise TypeError(f"model.forward(batch) must return (loss, info) or a dict with 'loss', got {type(out)}")


class UIO2Module(L.LightningModule):
    """Wraps ``UnifiedIO``: ``forward(batch) -> (loss, info)``; owns the optimiser, schedule and logs."""

    def __init__(self, model: torch.nn.Module, cfg: TrainConfig):
        super().__init__()
        self.model = model
        self.cfg = cfg
        self.automatic_optimization = False
        # Counters that travel in the trainer checkpoint (on_save_checkpoint).
        self.batches_seen = 0  # the data stream resumes from here (skipped batches count too)
        self.nonfinite_skipped = 0
        self._consecutive_nonfinite = 0
        self._last_step_end: float | None = None
        # The latest optimiser step's loss, lr, grad norm (read by training.loggers.LossHistory).
        self.last_record: dict[str, Any] | None = None
        if cfg.optim.ema_decay and cfg.trainer.strategy == "fsdp":
            raise ValueError(
                "optim.ema_decay does not work with trainer.strategy=fsdp (sharded weights); set it to 0"
            )
        self.ema = WeightEMA(model, cfg.optim.ema_decay) if cfg.optim.ema_decay else None

    # -- optimisation -----------------------------------------------------------------------------
    def configure_optimizers(self):
        opt = build_optimizer(self.model.named_parameters(), self.cfg.optim)
        sched = build_scheduler(opt, self.cfg.schedule, self.cfg.trainer.max_steps)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    def forward(self, batch):
        return self.model(batch)

    def training_step(self, batch, batch_idx):
        start = time.perf_counter()
        opt = self.optimizers()
        sched = self.lr_schedulers()
        self.batches_seen += 1
        self.last_record = None  # set again only if this batch makes an optimiser step

        loss, info = unpack_output(self.model(batch))
        loss = self._global_token_mean(loss, info)
        # Every rank must agree to skip, or DDP's gradient all-reduce waits forever on the skipper.
        bad = torch.tensor(0.0 if torch.isfinite(loss.detach()).all() else 1.0, device=self.device)
        bad = self.trainer.strategy.reduce(bad, reduce_op="sum")
        if bad.item() > 0:
            self._skip("loss", float(loss.detach().float().mean()))
            return None

        self.manual_backward(loss)
        grad_norm = self._clip_gradients()
        bad = torch.tensor(0.0 if math.isfinite(grad_norm) else 1.0, device=self.device)
        if self.trainer.strategy.reduce(bad, reduce_op="sum").item() > 0:
            opt.zero_grad(set_to_none=True)
            self._skip("gradient norm", grad_norm)
            return None
        lr = opt.param_groups[0]["lr"]
        opt.step()
        opt.zero_grad(set_to_none=True)
        sched.step()
        if self.ema is not None:
            self.ema.update()
        self._consecutive_nonfinite = 0

        global_loss = self.trainer.strategy.reduce(loss.detach().float(), reduce_op="mean")
        self.last_record = {
            "step": self.global_step,
            "batch": self.batches_seen - 1,
            "loss": float(global_loss),
            "lr": lr,
            "grad_norm": grad_norm,
        }
        self._log_step(batch, info, global_loss, grad_norm, lr, start)
        return global_loss

    def _global_token_mean(self, loss: torch.Tensor, info: dict[str, Any]) -> torch.Tensor:
        """Token-mean loss over the *global* batch: sum(token losses) * world / global tokens.

        The model returns the mean over this rank's ``info["tokens"]`` scored target tokens;
        DDP then averages gradients over ranks, which gives the global token mean exactly.
        """
        if "tokens" not in info or self.trainer.world_size == 1:
            return loss
        world = self.trainer.world_size
        # The pointer's patch loss (model/modeling.py) is a mean over its own pointed tokens: its
        # global mean needs their global count. Every rank reduces both counts (a rank without
        # pointed tokens too), or the collectives would not pair up.
        patch = info.get("pointer_patch_term", torch.zeros((), device=self.device))
        counts = torch.tensor(
            [float(info["tokens"]), float(info.get("pointer_patch_tokens", 0.0))], device=self.device
        )
        total = self.trainer.strategy.reduce(counts.clone(), reduce_op="sum")
        main = (loss - patch) * counts[0].clamp(min=1.0) * world / total[0].clamp(min=1.0)
        return main + patch * counts[1] * world / total[1].clamp(min=1e-9)

    def _clip_gradients(self) -> float:
        params = [p for p in self.model.parameters() if p.grad is not None]
        if not params:
            return 0.0
        wrapped = self.trainer.strategy.model
        clip = self.cfg.optim.grad_clip if self.cfg.optim.grad_clip > 0 else float("inf")
        if hasattr(wrapped, "clip_grad_norm_"):  # FSDP: the norm needs every shard
            norm = wrapped.clip_grad_norm_(clip)
        else:
            norm = torch.nn.utils.clip_grad_norm_(params, clip)
        return float(norm)

    def _skip(self, what: str, value: float) -> None:
        self.nonfinite_skipped += 1
        self._consecutive_nonfinite += 1
        log.warning(
            "step %d: non-finite %s (%s); batch %d skipped (%d so far)",
            self.global_step,
            what,
            value,
            self.batches_seen - 1,
            self.nonfinite_skipped,
        )
        self.log("train/nonfinite_skipped", float(self.nonfinite_skipped), on_step=True, rank_zero_only=True)
        limit = self.cfg.trainer.max_consecutive_nonfinite
        if self._consecutive_nonfinite >= limit:
            raise NonFiniteLossError(
                f"{self._consecutive_nonfinite} consecutive non-finite {what}s at step {self.global_step} "
                f"(trainer.max_consecutive_nonfinite={limit}): the run diverged; lower optim.lr or check the data"
            )

    # -- logging ----------------------------------------------------------------------------------
    def _log_step(self, batch, info, loss, grad_norm: float, lr: float, start: float) -> None:
        now = time.perf_counter()
        # tokens/s over the whole step, data loading included: from the end of the previous step.
        elapsed = now - (self._last_step_end if self._last_step_end is not None else start)
        self._last_step_end = now
        metrics = {
            "train/loss": float(loss),
            "train/lr": lr,
            "train/grad_norm": grad_norm,
            "train/nonfinite_skipped": float(self.nonfinite_skipped),
        }
        stats = token_stats(batch, info)
        if stats:
            metrics["train/token_utilisation"] = stats["utilisation"]
            metrics["train/tokens_per_s"] = (
                stats["real_tokens"] * self.trainer.world_size / max(elapsed, 1e-9)
            )
        metrics.update(per_group_losses(batch, info))
        for key, value in info.items():  # the model's own per-modality token means ("loss/text", ...)
            if key.startswith("loss/"):
                metrics[f"train/{key}"] = float(value)
        self.log("train/loss", float(loss), on_step=True, prog_bar=True, rank_zero_only=True)
        self.log_dict(
            {k: v for k, v in metrics.items() if k != "train/loss"}, on_step=True, rank_zero_only=True
        )

    # -- checkpoint state -------------------------------------------------------------------------
    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["uio2"] = {
            "batches_seen": self.batches_seen,
            "nonfinite_skipped": self.nonfinite_skipped,
            "torch_rng": torch.get_rng_state(),
        }
        if self.ema is not None:
            checkpoint["uio2"]["ema"] = self.ema.state_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        state = checkpoint.get("uio2", {})
        self.batches_seen = int(state.get("batches_seen", 0))
        self.nonfinite_skipped = int(state.get("nonfinite_skipped", 0))
        if "torch_rng" in state:  # dropout and any other torch sampling continue as if never stopped
            torch.set_rng_state(state["torch_rng"])
        if self.ema is not None and "ema" in state:
            self.ema.load_state_dict(state["ema"])

    def averaged_weights(self):
        """A block in which the model holds the weights a checkpoint exports (the average, if any)."""
        return self.ema.averaged() if self.ema is not None else contextlib.nullcontext()


def token_stats(batch: Any, info: dict[str, Any]) -> dict[str, float]:
    """Real (non-pad) encoder + decoder tokens and their share of the slots the transformer paid for."""
    stats = batch.get("stats") if isinstance(batch, dict) else None
    if not stats:
        return {}
    return {
        "real_tokens": float(stats["enc_tokens"] + stats["dec_tokens"]),
        "utilisation": float(stats["utilisation"]),
    }


def per_group_losses(batch: Any, info: dict[str, Any]) -> dict[str, float]:
    """Mean loss per task and per target modality, from the model's per-example losses."""
    losses = info.get("per_example_loss")
    metas = batch.get("meta") if isinstance(batch, dict) else None
    if losses is None or metas is None:
        return {}
    losses = torch.as_tensor(losses).detach().float().cpu().tolist()
    groups: dict[str, list[float]] = defaultdict(list)
    for value, meta in zip(losses, metas):
        if not math.isfinite(value):
            continue
        groups[f"loss_task/{meta.get('task', 'unknown')}"].append(value)
        groups[f"loss_modality/{meta.get('target', 'unknown')}"].append(value)
    return {k: sum(v) / len(v) for k, v in groups.items()}
