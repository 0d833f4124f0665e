"""The LightningDataModule: episodes -> task mixture -> encoded, denoised, packed batches.

Batch ``b`` of the stream holds examples ``b*G .. b*G+G-1`` of the TaskMixture (G =
global batch); rank ``r`` of ``W`` takes its contiguous slice of ``G/W``. All
randomness (task draw, frame, paraphrase, denoiser spans, patch subsampling) is
seeded from (seed, example index) alone, so:

- a resumed run starts at the batch the interrupted one would have trained on next
  (the LightningModule counts ``batches_seen`` and the stream starts there), and
- two DDP ranks together see exactly the global batch one process would.
"""

from __future__ import annotations

import functools
import itertools
import logging
from collections.abc import Callable, Iterator
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from model.example import Example
from model.packing import collate
from model.processor import EncodedExample, Processor
from training.configuration import TrainConfig
from training.episodes import EpisodeData
from training.mixture import TaskMixture, mixture_weights
from training.tasks.base import (
    ANNOTATIONS,
    AUDIO_TOKENIZER,
    DEPTH,
    IMAGE_TOKENIZER,
    SEGMENTATION,
    SPEECH,
    TaskContext,
)

log = logging.getLogger(__name__)

# (encoded example, rng, processor) -> encoded example with an objective applied ([R]/[S]/[X]).
Denoiser = Callable[[EncodedExample, np.random.Generator, Processor], EncodedExample]


def capabilities(episodes: list[EpisodeData], processor: Processor, synthesize: Callable | None) -> set[str]:
    """What this run's data and model can support; task families needing anything else are dropped."""
    caps = set()
    if all(ep.annotations is not None for ep in episodes):
        caps.add(ANNOTATIONS)
    if synthesize is not None or all(ep.speech is not None for ep in episodes):
        caps.add(SPEECH)
    if all(ep.depth for ep in episodes):
        caps.add(DEPTH)
    if all(ep.segmentation for ep in episodes):
        caps.add(SEGMENTATION)
    if processor.image_tokenizer is not None:
        caps.add(IMAGE_TOKENIZER)
    if processor.audio_tokenizer is not None:
        caps.add(AUDIO_TOKENIZER)
    return caps


def task_context(cfg: TrainConfig, episodes, processor: Processor, synthesize) -> TaskContext:
    """What the task families of this run share: history, chunk size, capabilities, state features."""
    dims = cfg.data.state_dims
    return TaskContext(
        history=min(cfg.data.history, processor.config.max_image_history),
        chunk_size=processor.config.action_chunk_size,
        capabilities=capabilities(episodes, processor, synthesize),
        synthesize=synthesize,
        state_dims=tuple(dims) if dims is not None else None,
        random_shift=cfg.data.random_shift,
        action_frames=cfg.data.action_frames,
        gripper_turn_distance=cfg.data.gripper_turn_distance,
        locations=processor.locations,
        **state_dropout(cfg, processor),
    )


def state_dropout(cfg: TrainConfig, processor: Processor) -> dict:
    """TaskContext's data.state_dropout fields: where the dropped features sit in the selected state,
    and the value that hides them (the middle of each feature's q01..q99, which scale_state makes 0)."""
    p, dims = cfg.data.state_dropout, cfg.data.state_dropout_dims or []
    if not (np.isfinite(p) and 0.0 <= p <= 1.0):
        raise ValueError(f"data.state_dropout must be a probability in [0, 1], got {p}")
    if p == 0 or not dims:
        return {}
    selected = cfg.data.state_dims
    at = [selected.index(d) if selected is not None and d in selected else d for d in dims]
    missing = [d for d in dims if selected is not None and d not in selected]
    stats = processor.state_stats
    if missing or stats is None or any(not 0 <= a < stats.dim for a in at):
        raise ValueError(
            f"data.state_dropout_dims {dims} must be state features the model reads "
            f"(data.state_dims {selected}, {None if stats is None else stats.dim} features)"
        )
    fill = (np.asarray(stats.q01, np.float32) + np.asarray(stats.q99, np.float32)) / 2
    return {"state_dropout": float(p), "state_dropout_at": tuple(at), "state_fill": fill}


def default_denoiser(cfg: TrainConfig) -> Denoiser:
    """training/denoisers.py's mixture of denoisers with the config's weights and fraction."""
    from training.denoisers import denoise

    return functools.partial(
        denoise, weights=cfg.data.denoiser_weights, denoise_fraction=cfg.data.denoise_fraction
    )


def check_action_loss_weights(weights: list[float] | None, processor: Processor) -> torch.Tensor | None:
    """data.action_loss_weights as a tensor, one weight per action dimension, or an error naming them."""
    if weights is None:
        return None
    w = torch.tensor([float(v) for v in weights])
    dim = processor.action_tokenizer.stats.dim if processor.action_tokenizer is not None else None
    if (
        dim is None
        or len(w) != dim
        or not bool(torch.isfinite(w).all())
        or bool((w < 0).any())
        or w.sum() <= 0
    ):
        raise ValueError(
            f"data.action_loss_weights must be one finite weight >= 0 per action dimension ({dim}), "
            f"not all 0; got {list(weights)}"
        )
    return w


def weigh_examples_equally(batch: dict[str, Any]) -> dict[str, Any]:
    """Rescale ``dec_loss_mask`` in place so that every example weighs the same in the loss.

    The model's loss is the mask-weighted mean over target tokens; here each example's scored tokens
    share one example's weight (data.loss_weighting="example"). The total stays the number of scored
    tokens, so the loss's scale and the token count DDP averages by are unchanged."""
    mask, example = batch["dec_loss_mask"], batch["dec_example"]
    real = example >= 0
    n_examples = len(batch["example_row"])
    scored = torch.zeros(n_examples).index_add_(0, example[real], mask[real].float())
    share = mask.sum() / max(int((scored > 0).sum()), 1)  # each scored example's total weight
    per_token = share / scored.clamp(min=1e-9)
    batch["dec_loss_mask"] = torch.where(real, mask * per_token[example.clamp(min=0)], torch.zeros_like(mask))
    return batch


class BatchStream(IterableDataset):
    """Endless packed batches for one rank, starting at batch ``start``."""

    def __init__(
        self,
        mixture: TaskMixture,
        processor: Processor,
        local_batch: int,
        rank: int = 0,
        world_size: int = 1,
        start: int = 0,
        seed: int = 0,
        packed: bool = True,
        denoiser: Denoiser | None = None,
        stop: int | None = None,
        loss_weighting: str = "token",
        action_loss_weights: list[float] | None = None,
    ):
        if loss_weighting not in ("token", "example"):
            raise ValueError(f"loss_weighting must be 'token' or 'example', got {loss_weighting!r}")
        self.loss_weighting = loss_weighting
        self.action_loss_weights = check_action_loss_weights(action_loss_weights, processor)
        self.mixture, self.processor = mixture, processor
        self.local_batch, self.rank, self.world_size = local_batch, rank, world_size
        self.start, self.stop, self.seed, self.packed = start, stop, seed, packed
        self.denoiser = denoiser

    def indices(self, b: int) -> range:
        """Mixture indices of this rank's slice of global batch ``b``."""
        first = (b * self.world_size + self.rank) * self.local_batch
        return range(first, first + self.local_batch)

    def examples(self, b: int) -> list[Example]:
        return [self.mixture.example(i) for i in self.indices(b)]

    def encode(self, index: int) -> EncodedExample:
        """Example ``index``, encoded and denoised with randomness seeded by the index alone."""
        rng = np.random.default_rng([self.seed, index, 1])
        self.processor.training = True
        self.processor.generator.manual_seed(int(rng.integers(2**62)))  # patch subsampling
        enc = self.processor.encode(self.mixture.example(index))
        if self.action_loss_weights is not None and enc.target == "action":
            steps = len(enc.loss_mask) // len(self.action_loss_weights)
            enc.loss_mask = enc.loss_mask * self.action_loss_weights.repeat(steps)
        return self.denoiser(enc, rng, self.processor) if self.denoiser is not None else enc

    def batch(self, b: int) -> dict[str, Any]:
        encoded = [self.encode(i) for i in self.indices(b)]
        out = collate(encoded, self.processor.config, packed=self.packed)
        if self.loss_weighting == "example":
            weigh_examples_equally(out)
        out["meta"] = [{**e.meta, "target": e.target, "objective": e.objective} for e in encoded]
        out["batch_index"] = b
        return out

    def __iter__(self) -> Iterator[dict[str, Any]]:
        info = get_worker_info()
        workers, worker = (info.num_workers, info.id) if info else (1, 0)
        # DataLoader takes batches from its workers round-robin, so worker w making every w-th keeps the order.
        indices = itertools.count(self.start) if self.stop is None else range(self.start, self.stop)
        for b in itertools.islice(indices, worker, None, workers):
            yield self.batch(b)


class UIO2DataModule(L.LightningDataModule):
    """Builds the mixture once; hands each rank its stream, starting where training left off."""

    def __init__(
        self,
        cfg: TrainConfig,
        processor: Processor,
        episodes: list[EpisodeData],
        synthesize: Callable[[str], np.ndarray] | None = None,
        denoiser: Denoiser | None | str = "default",
    ):
        super().__init__()
        self.cfg = cfg
        self.processor = processor
        self.episodes = [ep.validate() for ep in episodes]
        k = cfg.data.chunk_size
        if k is not None and k != processor.config.action_chunk_size:
            raise ValueError(
                f"data.chunk_size={k} but the model predicts chunks of {processor.config.action_chunk_size} actions"
            )
        self.denoiser = default_denoiser(cfg) if denoiser == "default" else denoiser
        ctx = task_context(cfg, self.episodes, processor, synthesize)
        weights = mixture_weights(cfg.data.mixture, cfg.data.speech_prob)
        self.mixture = TaskMixture(self.episodes, weights, ctx, seed=cfg.seed)

    @property
    def skipped_families(self) -> dict[str, str]:
        return dict(self.mixture.dropped)

    def stream(
        self, start: int = 0, rank: int = 0, world_size: int = 1, stop: int | None = None
    ) -> BatchStream:
        g = self.cfg.trainer.batch_size
        if g % world_size:
            raise ValueError(
                f"trainer.batch_size {g} (global) must divide evenly over {world_size} processes"
            )
        return BatchStream(
            self.mixture,
            self.processor,
            g // world_size,
            rank=rank,
            world_size=world_size,
            start=start,
            seed=self.cfg.seed,
            packed=self.cfg.data.packing,
            denoiser=self.denoiser,
            stop=stop,
            loss_weighting=self.cfg.data.loss_weighting,
            action_loss_weights=self.cfg.data.action_loss_weights,
        )

    def train_dataloader(self) -> DataLoader:
        trainer = self.trainer
        start, rank, world = 0, 0, 1
        if trainer is not None:
            rank, world = trainer.global_rank, trainer.world_size
            # Restored from the trainer checkpoint before the loop asks for data (module.on_load_checkpoint).
            start = getattr(trainer.lightning_module, "batches_seen", 0)
        return DataLoader(
            self.stream(start, rank, world),
            batch_size=None,  # the stream yields whole packed batches
            num_workers=self.cfg.data.num_workers,
            collate_fn=_identity,
        )

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        # Metadata (lists of dicts, python numbers) stays on the host; only tensors move.
        return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _identity(x):
    return x
