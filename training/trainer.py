"""``train(cfg, episodes=...) -> checkpoint dir``: one function behind `uio2 train`, `uio2 finetune` and the demo.

Order of things: episodes (rollouts or a dataset file) -> model + processor (fresh,
from ``init_from``, or from the run's own last checkpoint when resuming) -> data
module, Lightning module, loggers, callbacks -> ``Trainer.fit``. A run whose out_dir
already holds checkpoints resumes from the newest (``resume: true``) or refuses to
start (``resume: false``), so a new run never writes over an old one's checkpoints.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import TQDMProgressBar

from model.example import MAX_PREVIOUS_WAYPOINTS
from model.processor import Processor
from model.tokenizers.actions import ActionStats, ActionTokenizer
from training.action_stats import (
    action_frame_for,
    check_action_stats,
    compute_action_stats,
    compute_state_stats,
)
from training.build import model_config, text_corpus, train_text_tokenizer
from training.checkpoint import TRAINER_STATE, PretrainedCheckpoint, latest_checkpoint
from training.configuration import TrainConfig
from training.datamodule import UIO2DataModule, task_context
from training.episodes import EpisodeData
from training.keyframes import select_action_labels, with_previous_action
from training.loggers import LossHistory, build_loggers
from training.mixture import TaskMixture, mixture_weights
from training.module import UIO2Module
from training.samples import SampleLogger, fixed_examples

log = logging.getLogger(__name__)
ENCODER_PREFIXES = ("vit.", "ast.", "image_resampler.", "audio_resampler.")


class CheckpointExistsError(RuntimeError):
    """out_dir already holds checkpoints and the run was told not to resume from them."""


@dataclass
class Run:
    """What ``prepare`` built; ``train`` fits it. Tests and the demo may poke at the parts."""

    cfg: TrainConfig
    model: torch.nn.Module
    processor: Processor
    datamodule: UIO2DataModule
    module: UIO2Module
    trainer: L.Trainer
    resume_from: Path | None

    @property
    def checkpoint_root(self) -> Path:
        return Path(self.cfg.out_dir) / "checkpoints"


def load_pretrained(directory: str | Path) -> tuple[torch.nn.Module, Processor]:
    from model.modeling import UnifiedIO

    model = UnifiedIO.from_pretrained(directory)
    return model, Processor.from_pretrained(directory, model.config)


def fresh_model(
    cfg: TrainConfig, episodes: list[EpisodeData], synthesize
) -> tuple[torch.nn.Module, Processor]:
    """A new model: the preset + overrides, a text BPE trained on the mixture's text, the data's action stats."""
    from model.modeling import UnifiedIO

    config = model_config(cfg.model, cfg.data.chunk_size)
    state = compute_state_stats(episodes, cfg.data.state_dims)
    frame = action_frame_for(
        cfg.data.action_frame, cfg.data.camera, episodes, cfg.data.state_point, state.dim if state else None
    )
    stats = compute_action_stats(episodes, frame)
    bare = Processor(config, action_stats=stats, state_stats=state, action_frame=frame, **_vq_tokenizers(cfg))
    ctx = task_context(cfg, episodes, bare, synthesize)
    # Another seed than the training stream's; quiet, as the data module logs the same dropped families.
    weights = mixture_weights(cfg.data.mixture, cfg.data.speech_prob)
    mixture = TaskMixture(episodes, weights, ctx, seed=cfg.seed + 7919, quiet=True)
    examples = [mixture.example(i) for i in range(cfg.model.text_corpus_examples)]
    tokenizer = train_text_tokenizer(text_corpus(examples, episodes), config.text_vocab_size)
    processor = Processor(
        config,
        text_tokenizer=tokenizer,
        action_stats=stats,
        state_stats=state,
        action_frame=frame,
        **_vq_tokenizers(cfg),
    )
    torch.manual_seed(cfg.seed)
    return UnifiedIO(config), processor


def _vq_tokenizers(cfg: TrainConfig) -> dict[str, Any]:
    out = {}
    if cfg.model.image_tokenizer:
        from model.vqgan import ImageVQGAN

        out["image_tokenizer"] = ImageVQGAN.from_pretrained(cfg.model.image_tokenizer)
    if cfg.model.audio_tokenizer:
        from model.audio_vqgan import AudioVQGAN

        out["audio_tokenizer"] = AudioVQGAN.from_pretrained(cfg.model.audio_tokenizer)
    return out


def set_action_stats(processor: Processor, stats: ActionStats) -> None:
    processor.action_tokenizer = ActionTokenizer(stats, processor.config.action_bins)


def freeze_encoders(model: torch.nn.Module) -> int:
    """Stop gradients into the input encoders (ViT, AST, resamplers), as UIO-2 froze its ViT; returns #params."""
    n = 0
    for name, p in model.named_parameters():
        if name.startswith(ENCODER_PREFIXES):
            p.requires_grad_(False)
            n += p.numel()
    if n == 0:
        raise ValueError(f"freeze_encoders: no parameter starts with {ENCODER_PREFIXES}")
    return n


def _strategy(cfg: TrainConfig) -> Any:
    name = cfg.trainer.strategy
    if name == "ddp":
        # Not every encoder runs on every batch (no audio example, say): DDP must allow unused parameters.
        return "ddp_find_unused_parameters_true"
    if name == "fsdp":
        from lightning.pytorch.strategies import FSDPStrategy

        return FSDPStrategy(use_orig_params=True)
    return "auto"


def prepare(
    cfg: TrainConfig,
    episodes: list[EpisodeData] | None = None,
    synthesize: Callable[[str], np.ndarray] | None = None,
    extra_callbacks: list[L.Callback] | None = None,
) -> Run:
    """Build everything for a run without training (``train`` = ``prepare`` + ``fit``)."""
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    if cfg.trainer.num_threads:
        torch.set_num_threads(cfg.trainer.num_threads)
    out = Path(cfg.out_dir)
    root = out / "checkpoints"
    existing = latest_checkpoint(root)
    if existing is not None and not cfg.resume:
        raise CheckpointExistsError(
            f"{root} already holds checkpoints (newest {existing.name}); set resume=true to continue that run "
            "or choose another out_dir: a new run does not write over them"
        )
    waypoints = cfg.data.control == "waypoint" or cfg.data.action_labels in ("waypoint", "keyframes")
    if cfg.data.action_frames == "distance" and not waypoints:
        raise ValueError(
            "data.action_frames=distance weights frames by the hand's distance from its waypoint label; "
            f"with data.control={cfg.data.control!r} and data.action_labels={cfg.data.action_labels!r} the "
            "actions are no waypoints: use control=waypoint, action_labels=waypoint|keyframes, or action_frames=uniform"
        )
    if episodes is None:
        from training.sources import load_episodes

        episodes = load_episodes(cfg.data)
    episodes = select_action_labels(episodes, cfg.data.action_labels)
    if cfg.data.previous_action:
        if not waypoints:
            raise ValueError(
                "data.previous_action feeds the last waypoint command back as state; with "
                f"data.control={cfg.data.control!r} and data.action_labels={cfg.data.action_labels!r} the "
                "actions are no waypoints: use control=waypoint or action_labels=waypoint|keyframes"
            )
        if not 1 <= cfg.data.previous_action_depth <= MAX_PREVIOUS_WAYPOINTS:
            raise ValueError(
                "data.previous_action_depth is how many waypoints reached the state ends with: "
                f"1..{MAX_PREVIOUS_WAYPOINTS} (a policy keeps no more), got {cfg.data.previous_action_depth}"
            )
        episodes = with_previous_action(episodes, depth=cfg.data.previous_action_depth)
    if synthesize is None:
        synthesize = default_synthesizer()

    resume_from = existing if cfg.resume else None
    if resume_from is not None:
        log.info("resuming from %s", resume_from)
        model, processor = load_pretrained(resume_from)
    elif cfg.init_from:
        if (
            Path(cfg.init_from).resolve() == out.resolve()
            or out.resolve() in Path(cfg.init_from).resolve().parents
        ):
            raise ValueError(
                f"out_dir {out} must not contain the checkpoint it starts from ({cfg.init_from})"
            )
        model, processor = load_pretrained(cfg.init_from)
        if cfg.data.recompute_stats:
            processor.state_stats = compute_state_stats(episodes, cfg.data.state_dims)
            features = processor.state_stats.dim if processor.state_stats else None
            processor.action_frame = action_frame_for(
                cfg.data.action_frame, cfg.data.camera, episodes, cfg.data.state_point, features
            )
            set_action_stats(processor, compute_action_stats(episodes, processor.action_frame))
        elif processor.action_tokenizer is None:
            raise ValueError(f"{cfg.init_from} has no action statistics; fine-tune with recompute_stats=true")
        else:
            check_action_stats(processor.action_tokenizer.stats, episodes, f"checkpoint {cfg.init_from}")
    else:
        model, processor = fresh_model(cfg, episodes, synthesize)
    if processor.action_tokenizer is not None:
        check_action_stats(processor.action_tokenizer.stats, episodes, "the model's processor")
    if cfg.trainer.freeze_encoders:
        log.info("froze %d encoder parameters", freeze_encoders(model))

    datamodule = UIO2DataModule(cfg, processor, episodes, synthesize=synthesize)
    module = UIO2Module(model, cfg)
    callbacks: list[L.Callback] = [
        PretrainedCheckpoint(
            root,
            lambda d: model.save_pretrained(d, processor=processor),
            cfg,
            cfg.trainer.checkpoint_every_n_steps,
        ),
        LossHistory(out),
        SampleLogger(out, fixed_examples(datamodule.mixture), processor, cfg.logger.log_media_every_n_steps),
        *(extra_callbacks or []),
    ]
    if cfg.trainer.progress_bar:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    trainer = L.Trainer(
        max_steps=cfg.trainer.max_steps,
        accelerator=cfg.trainer.accelerator,
        devices=cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=_strategy(cfg),
        precision=cfg.trainer.precision,
        logger=build_loggers(cfg.logger, out) or False,
        callbacks=callbacks,
        enable_checkpointing=False,  # PretrainedCheckpoint does it, in the model's own format
        enable_progress_bar=cfg.trainer.progress_bar,
        enable_model_summary=False,
        log_every_n_steps=cfg.trainer.log_every_n_steps,
        num_sanity_val_steps=0,
        default_root_dir=str(out),
        use_distributed_sampler=False,  # the stream shards itself by rank
    )
    return Run(cfg, model, processor, datamodule, module, trainer, resume_from)


def fit(run: Run) -> Path:
    """Train; returns the newest checkpoint folder (the save_pretrained format, loadable for inference)."""
    ckpt = run.resume_from / TRAINER_STATE if run.resume_from is not None else None
    run.trainer.fit(
        run.module, datamodule=run.datamodule, ckpt_path=ckpt, weights_only=True
    )  # plain tensors and numbers: nothing unpickled
    final = latest_checkpoint(run.checkpoint_root)
    if final is None:
        raise RuntimeError(f"training finished without writing a checkpoint under {run.checkpoint_root}")
    return final


def train(
    cfg: TrainConfig,
    episodes: list[EpisodeData] | None = None,
    synthesize: Callable[[str], np.ndarray] | None = None,
    extra_callbacks: list[L.Callback] | None = None,
) -> Path:
    """Train (or resume) the run ``cfg`` describes; returns the final checkpoint directory."""
    return fit(prepare(cfg, episodes, synthesize, extra_callbacks))


def default_synthesizer() -> Callable[[str], np.ndarray] | None:
    """envs.speech.synthesize when espeak-ng works here, else None (speech families are then dropped)."""
    try:
        from envs.speech import synthesize

        synthesize("test")
    except Exception as e:  # no espeak-ng binary, or envs not installed
        log.warning(
            "no speech synthesiser (%s: %s): speech task families will be skipped", type(e).__name__, e
        )
        return None
    return synthesize
