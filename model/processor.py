"""Processor: an Example -> per-example tensors the model's encoders and decoder read.

Encoders run per example and their outputs are packed just before the transformer
(model/packing.py), so an ``EncodedExample`` keeps each input in its natural form: text ids
(objective prefix first), normalised image / history frames, normalised log-mel spectrograms,
a zero-padded state vector, and the target as ids of the unified vocabulary. Image and audio
*targets* need VQ-GAN codes: ``processor.image_tokenizer`` / ``processor.audio_tokenizer`` are
the hooks (model/vqgan.py, model/audio_vqgan.py) with this protocol:

    image_tokenizer.encode(uint8 (B, H, W, 3)) -> int (B, N) codes;  .decode(codes (B, N)) -> uint8 images
    audio_tokenizer.encode(log-mel float (B, 128, 256)) -> int (B, N);  .decode(codes) -> log-mel
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from model import audio as audio_lib
from model.action_frame import CameraActionFrame
from model.configuration import ModelConfig
from model.example import AUDIO_SAMPLE_RATE, Example, check_image
from model.tokenizers.actions import ActionStats, ActionTokenizer
from model.tokenizers.locations import LocationTokenizer
from model.tokenizers.text import TextTokenizer, UnifiedTextCodec
from model.vocabulary import EOS_ID, OBJECTIVES, TARGET_MODALITIES, Vocabulary

VOCAB_FILE = "vocabulary.json"
ACTION_STATS_FILE = "action_stats.json"
STATE_CLIP = 5.0
ACTION_FRAME_FILE = "action_frame.json"  # the camera calibration of camera-frame waypoints, if any
STATE_STATS_FILE = "state_stats.json"  # the state features' q01/q99 (same format as the actions')


def scale_state(state: np.ndarray, stats: ActionStats) -> np.ndarray:
    """State features mapped by their q01/q99 to about [-1, 1], float32.

    Clipped to +-STATE_CLIP: a state far outside the training range must not become a huge activation.
    """
    lo, hi = np.asarray(stats.q01, np.float32), np.asarray(stats.q99, np.float32)
    out = np.clip(2.0 * (state - lo) / np.maximum(hi - lo, 1e-6) - 1.0, -STATE_CLIP, STATE_CLIP)
    return out.astype(np.float32)


@dataclass
class EncodedExample:
    """One example, encoded; every tensor is per example (no batch axis)."""

    target: str  # target modality
    objective: str  # "S", "R" or "X"
    text_ids: torch.Tensor  # (Lt,) int64, objective prefix first
    target_ids: torch.Tensor  # (Ld,) int64, ids of the unified vocabulary
    loss_mask: torch.Tensor  # (Ld,) float32, 1 where the target token is scored
    hidden: torch.Tensor  # (Ld,) bool, masked target tokens hidden from later decoder positions
    image: torch.Tensor | None = None  # (3, H, W) float32 in [-1, 1]
    image_keep: torch.Tensor | None = None  # (P',) int64 indices of the image patches the encoder sees
    image_history: torch.Tensor | None = None  # (T, 3, H, W)
    audio: torch.Tensor | None = None  # (mels, frames) normalised log-mel
    audio_keep: torch.Tensor | None = None  # (P',) int64
    audio_history: torch.Tensor | None = None  # (T, mels, frames)
    state: torch.Tensor | None = None  # (max_state_dim,) float32
    # (2,) float32: the (row, column) image fraction of the state's point (CameraActionFrame.state_point,
    # the hand), which the pointer may look at beside the image patches; None without one.
    state_point: torch.Tensor | None = None
    # The target image / audio as an encoder input, for [R] masked denoising (training/denoisers.py).
    target_input: torch.Tensor | None = None
    # (Ld, 2) float32: the (row, column) image fraction each target token points at (a location
    # token of a point or box corner, a camera-frame waypoint's pixel), NaN elsewhere; None: none.
    # The pointer's patch loss (model/pointer.py) scores where the pointer looks against it.
    points: torch.Tensor | None = None
    meta: dict[str, Any] = field(default_factory=dict)

    def replace(self, **changes: Any) -> EncodedExample:
        return replace(self, **changes)


def encoder_length(e: EncodedExample, config: ModelConfig) -> int:
    """Number of encoder tokens this example puts into a packed row."""
    n = len(e.text_ids)
    if e.image is not None:
        n += len(e.image_keep)
    if e.image_history is not None:
        n += len(e.image_history) * config.image_history_latents
    if e.audio is not None:
        n += len(e.audio_keep)
    if e.audio_history is not None:
        n += len(e.audio_history) * config.audio_history_latents
    if e.state is not None:
        n += 1
    return n


def normalise_log_mel(log_mel: torch.Tensor) -> torch.Tensor:
    """Log-mel (natural log, floored at audio.LOG_FLOOR) -> roughly [-1, 1] for the AST."""
    return (log_mel - audio_lib.LOG_FLOOR) / 8.0 - 1.0


class Processor:
    """Turns Examples into EncodedExamples; holds the vocabulary and every tokenizer."""

    def __init__(
        self,
        config: ModelConfig,
        vocab: Vocabulary | None = None,
        text_tokenizer: TextTokenizer | None = None,
        action_stats: ActionStats | None = None,
        image_tokenizer: Any = None,
        audio_tokenizer: Any = None,
        state_stats: ActionStats | None = None,
        action_frame: CameraActionFrame | None = None,
    ):
        self.config = config
        # Waypoints written as a pixel + height in a calibrated camera (model/action_frame.py):
        # targets are converted before binning and decoded actions converted back, so every
        # caller (datasets, the policy, the server) sees the robot's own frame.
        self.action_frame = action_frame
        # Robot state is scaled to about [-1, 1] per feature (q01/q99 of the training data): raw
        # metres are ~0.1, which next to unit-scale embeddings would leave the state token all
        # but blind to where the hand is. None: the state is used as given.
        self.state_stats = state_stats
        self.vocab = vocab if vocab is not None else Vocabulary.from_config(config)
        self.vocab.check_config(config)
        self.text_tokenizer = text_tokenizer
        self.text = UnifiedTextCodec(self.vocab, text_tokenizer) if text_tokenizer is not None else None
        self.locations = LocationTokenizer(config.location_bins)
        self.action_tokenizer = ActionTokenizer(action_stats, config.action_bins) if action_stats else None
        self.image_tokenizer = image_tokenizer
        self.audio_tokenizer = audio_tokenizer
        self.training = False  # patch subsampling happens only in training mode
        self.generator = torch.Generator().manual_seed(0)

    # -- inputs --------------------------------------------------------------------------------
    def _require_text(self) -> UnifiedTextCodec:
        if self.text is None:
            raise RuntimeError("this Processor has no text tokenizer; pass text_tokenizer=TextTokenizer...")
        return self.text

    def image_tensor(self, image: np.ndarray, name: str = "image", size: int | None = None) -> torch.Tensor:
        """(H, W, 3) uint8 -> (3, S, S) float32 in [-1, 1], resized to the model's image size."""
        check_image(image, name)
        return self._resize(torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None], size)[0]

    def _resize(self, x_uint8: torch.Tensor, size: int | None) -> torch.Tensor:
        size = size or self.config.image_size
        x = x_uint8.float() / 127.5 - 1.0
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.clamp(-1.0, 1.0)

    def audio_tensor(self, waveform: np.ndarray, sample_rate: int, name: str = "audio") -> torch.Tensor:
        """16 kHz waveform -> normalised (mels, frames) log-mel."""
        if sample_rate != AUDIO_SAMPLE_RATE:
            raise ValueError(
                f"{name} must be sampled at {AUDIO_SAMPLE_RATE} Hz, got {sample_rate} Hz "
                f"(resample first, e.g. sox in.wav -r 16000 out.wav)"
            )
        if not (
            isinstance(waveform, np.ndarray)
            and waveform.ndim == 1
            and np.issubdtype(waveform.dtype, np.floating)
        ):
            got = (
                f"{tuple(waveform.shape)} {waveform.dtype}"
                if isinstance(waveform, np.ndarray)
                else type(waveform)
            )
            raise ValueError(f"{name} must be a (N,) float waveform at 16000 Hz, got {got}")
        mel = audio_lib.log_mel_spectrogram(waveform.astype(np.float32), sample_rate=sample_rate, fit=True)
        return normalise_log_mel(mel[: self.config.audio_mels, : self.config.audio_frames])

    def _keep(self, n: int, fraction: float) -> torch.Tensor:
        if not self.training or fraction >= 1.0:
            return torch.arange(n)
        k = max(1, round(n * fraction))
        return torch.randperm(n, generator=self.generator)[:k].sort().values

    def state_tensor(self, state: np.ndarray) -> torch.Tensor:
        s = np.asarray(state, np.float32)
        if s.ndim != 1 or len(s) > self.config.max_state_dim:
            raise ValueError(
                f"state must be (S,) with S <= max_state_dim={self.config.max_state_dim}, got {s.shape}"
            )
        if self.state_stats is not None:
            if len(s) != self.state_stats.dim:
                raise ValueError(
                    f"state has {len(s)} features but this model was trained on {self.state_stats.dim} "
                    "(state_stats.json); pass the same features (the policy's state_dims select them)"
                )
            s = scale_state(s, self.state_stats)
        out = torch.zeros(self.config.max_state_dim)
        out[: len(s)] = torch.from_numpy(s.astype(np.float32))
        return out

    def encode_prompt(self, text: str | None, target: str, objective: str = "S") -> torch.Tensor:
        """Objective prefix ([Text][S], [Action][S], ...) followed by the prompt's ids."""
        ids = [self.vocab.prefix_id(target, objective)]
        if text:
            ids += self._require_text().encode(text)
        return torch.tensor(ids, dtype=torch.long)

    # -- targets -------------------------------------------------------------------------------
    def encode_text_target(self, text: str) -> torch.Tensor:
        ids = self._require_text().encode(text)[: self.config.max_text_target_len - 1] + [EOS_ID]
        return torch.tensor(ids, dtype=torch.long)

    def encode_action_target(self, actions: np.ndarray) -> torch.Tensor:
        if self.action_tokenizer is None:
            raise RuntimeError(
                "action targets need action statistics: Processor(..., action_stats=ActionStats...)"
            )
        k = self.config.action_chunk_size
        if actions.ndim != 2 or actions.shape[0] != k:
            raise ValueError(
                f"action target must be (K={k}, D={self.action_tokenizer.dim}), got {actions.shape}"
            )
        if self.action_frame is not None:
            actions = self.action_frame.to_camera(actions)
        bins = self.action_tokenizer.encode(actions).reshape(-1)
        return torch.from_numpy(bins) + self.vocab.segments["action"].start

    def _require(self, kind: str) -> Any:
        tok = getattr(self, f"{kind}_tokenizer")
        if tok is None:
            module = "model/vqgan.py" if kind == "image" else "model/audio_vqgan.py"
            raise RuntimeError(
                f"{kind} targets need VQ-GAN codes but processor.{kind}_tokenizer is None; "
                f"set it to a trained tokenizer from {module}"
            )
        return tok

    def encode_image_target(self, image: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self._require("image")
        size = self.config.image_target_size
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        img = x.round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()
        codes = torch.as_tensor(np.asarray(tok.encode(img))).reshape(-1).long()
        self._check_codes(codes, "image")
        return codes + self.vocab.segments["image"].start, self.image_tensor(image, "target image")

    def encode_audio_target(
        self, waveform: np.ndarray, sample_rate: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        tok = self._require("audio")
        mel = audio_lib.log_mel_spectrogram(
            np.asarray(waveform, np.float32), sample_rate=sample_rate, fit=True
        )
        codes = torch.as_tensor(np.asarray(tok.encode(mel[None]))).reshape(-1).long()
        self._check_codes(codes, "audio")
        return codes + self.vocab.segments["audio"].start, normalise_log_mel(mel)

    def _check_codes(self, codes: torch.Tensor, kind: str) -> None:
        n, size = getattr(self.config, f"{kind}_target_tokens"), self.vocab.sizes[kind]
        if codes.numel() != n or codes.min() < 0 or codes.max() >= size:
            raise ValueError(
                f"{kind} tokenizer must give {n} codes in [0, {size}), got {codes.numel()} codes in "
                f"[{int(codes.min())}, {int(codes.max())}]"
            )

    # -- the whole example ---------------------------------------------------------------------
    def encode(self, example: Example) -> EncodedExample:
        """Example -> EncodedExample with an [S] objective (training/denoisers.py rewrites it for [R]/[X])."""
        if not isinstance(example, Example):
            raise TypeError(f"Processor.encode takes a model.example.Example, got {type(example).__name__}")
        example.validate()
        cfg = self.config
        target = example.target
        sr = int(example.meta.get("sample_rate", AUDIO_SAMPLE_RATE))
        out: dict[str, Any] = {}
        if example.image is not None:
            out["image"] = self.image_tensor(example.image)
            out["image_keep"] = self._keep(cfg.image_grid**2, cfg.image_patch_keep)
        if example.image_history is not None and len(example.image_history):
            t = len(example.image_history)
            if t > cfg.max_image_history:
                raise ValueError(
                    f"image_history has {t} frames; this model takes at most {cfg.max_image_history}"
                )
            frames = torch.from_numpy(np.ascontiguousarray(example.image_history)).permute(0, 3, 1, 2)
            out["image_history"] = self._resize(frames, None)
        if example.audio is not None:
            out["audio"] = self.audio_tensor(example.audio, sr)
            out["audio_keep"] = self._keep(cfg.audio_grid[0] * cfg.audio_grid[1], cfg.audio_patch_keep)
        if example.audio_history:
            t = len(example.audio_history)
            if t > cfg.max_audio_history:
                raise ValueError(
                    f"audio_history has {t} segments; this model takes at most {cfg.max_audio_history}"
                )
            out["audio_history"] = torch.stack(
                [self.audio_tensor(a, sr, f"audio_history[{i}]") for i, a in enumerate(example.audio_history)]
            )
        if example.state is not None:
            out["state"] = self.state_tensor(example.state)
            if self.action_frame is not None and self.action_frame.state_point is not None:
                out["state_point"] = torch.from_numpy(self.action_frame.state_pixel(example.state))

        value = example.target_value
        if target == "text":
            target_ids = self.encode_text_target(value)
        elif target == "action":
            target_ids = self.encode_action_target(value)
        elif target == "image":
            target_ids, out["target_input"] = self.encode_image_target(value)
        elif target == "audio":
            target_ids, out["target_input"] = self.encode_audio_target(value, sr)
        else:  # Example.validate already refuses this; kept for a clear error if it is bypassed
            raise ValueError(f"unknown target modality {target!r}; expected one of {TARGET_MODALITIES}")
        return EncodedExample(
            target=target,
            objective="S",
            text_ids=self.encode_prompt(example.text, target, "S"),
            target_ids=target_ids,
            loss_mask=torch.ones(len(target_ids)),
            hidden=torch.zeros(len(target_ids), dtype=torch.bool),
            meta=dict(example.meta),
            points=self.target_points(target, target_ids, example) if example.image is not None else None,
            **out,
        )

    def target_points(self, target: str, target_ids: torch.Tensor, example: Example) -> torch.Tensor | None:
        """(Ld, 2) image fractions (row, column) each target token points at, NaN elsewhere (EncodedExample.points).

        Text: location tokens pair up as (y, x), UIO-2's order for points and boxes; an example whose
        location tokens also carry other values (a cuboid's depth and size, a camera pose) says how
        many leading pairs are image points in ``meta["location_points"]``. Actions: the row and
        column of each step of a camera-frame waypoint (model/action_frame.py). None where no token
        points."""
        points = torch.full((len(target_ids), 2), float("nan"))
        if target == "text":
            seg = self.vocab.segments["location"]
            where = ((target_ids >= seg.start) & (target_ids < seg.start + seg.size)).nonzero()[:, 0]
            pairs = len(where) // 2
            limit = example.meta.get("location_points")
            if limit is not None:
                pairs = min(pairs, int(limit))
            if pairs == 0:
                return None
            yx = ((target_ids[where[: 2 * pairs]] - seg.start).float() + 0.5) / seg.size
            points[where[: 2 * pairs]] = yx.view(pairs, 1, 2).expand(pairs, 2, 2).reshape(-1, 2)
        elif target == "action" and self.action_frame is not None:
            k, d = self.config.action_chunk_size, self.action_tokenizer.dim
            vu = torch.from_numpy(self.action_frame.to_camera(example.target_value)[:, :2]).float()
            on_image = ((vu >= 0) & (vu <= 1)).all(-1, keepdim=True)
            grid = points.view(k, d, 2)
            grid[:, 0] = grid[:, 1] = torch.where(on_image, vu, float("nan"))
        else:
            return None
        return points

    def encode_inputs(self, example: Example, target: str) -> EncodedExample:
        """Inputs only (for generation): the target is left empty."""
        if target not in OBJECTIVES:
            raise ValueError(f"unknown target modality {target!r}; expected one of {TARGET_MODALITIES}")
        # Encode the inputs through the text path (no tokenizer needed), then set the prefix.
        ex = replace(example, target="text", target_value="")
        enc = self.encode(ex)
        return enc.replace(
            target=target,
            text_ids=self.encode_prompt(example.text, target, "S"),
            target_ids=torch.zeros(0, dtype=torch.long),
            loss_mask=torch.zeros(0),
            hidden=torch.zeros(0, dtype=torch.bool),
        )

    # -- decoding outputs ----------------------------------------------------------------------
    def decode_text(self, ids) -> str:
        return self._require_text().decode(ids)

    def decode_actions(self, ids) -> np.ndarray:
        """K*D action ids -> (K, D) float32 actions (bin centres, un-normalised)."""
        if self.action_tokenizer is None:
            raise RuntimeError("decoding actions needs action statistics")
        start, size = self.vocab.segments["action"].start, self.vocab.sizes["action"]
        bins = np.asarray(ids, np.int64) - start
        if bins.min() < 0 or bins.max() >= size:
            raise ValueError(
                f"action ids must lie in the action segment [{start}, {start + size}), got {ids}"
            )
        actions = self.action_tokenizer.decode(bins.reshape(-1, self.action_tokenizer.dim))
        return actions if self.action_frame is None else self.action_frame.from_camera(actions)

    def decode_image(self, ids) -> np.ndarray:
        codes = torch.as_tensor(ids).long().reshape(1, -1) - self.vocab.segments["image"].start
        return np.asarray(self._require("image").decode(codes))[0]

    def decode_audio(self, ids) -> np.ndarray:
        """Audio ids -> (N,) float32 waveform at 16 kHz through the audio VQ-GAN and Griffin-Lim."""
        codes = torch.as_tensor(ids).long().reshape(1, -1) - self.vocab.segments["audio"].start
        mel = torch.as_tensor(np.asarray(self._require("audio").decode(codes)))[0]
        return audio_lib.log_mel_to_waveform(mel)

    # -- persistence ---------------------------------------------------------------------------
    def save_pretrained(self, directory: str | Path) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        self.vocab.save(d / VOCAB_FILE)
        if self.text_tokenizer is not None:
            self.text_tokenizer.save(d)
        if self.action_tokenizer is not None:
            self.action_tokenizer.stats.save(d / ACTION_STATS_FILE)
        if self.state_stats is not None:
            self.state_stats.save(d / STATE_STATS_FILE)
        if self.action_frame is not None:
            (d / ACTION_FRAME_FILE).write_text(json.dumps(self.action_frame.to_dict(), indent=2))
        # VQ-GANs that know how to save themselves travel in sub-folders (model/vqgan.py's format).
        for kind in ("image", "audio"):
            tok = getattr(self, f"{kind}_tokenizer")
            if tok is not None and hasattr(tok, "save_pretrained"):
                tok.save_pretrained(d / f"{kind}_tokenizer")
        (d / "processor.json").write_text(json.dumps({"has_text": self.text_tokenizer is not None}))

    @classmethod
    def from_pretrained(cls, directory: str | Path, config: ModelConfig | None = None) -> Processor:
        d = Path(directory)
        if config is None:
            config = ModelConfig.load(d / "config.json")
        vocab = Vocabulary.load(d / VOCAB_FILE)
        text = TextTokenizer.load(d) if (d / "text_tokenizer.json").exists() else None
        stats = ActionStats.load(d / ACTION_STATS_FILE) if (d / ACTION_STATS_FILE).exists() else None
        state = ActionStats.load(d / STATE_STATS_FILE) if (d / STATE_STATS_FILE).exists() else None
        frame = None
        if (d / ACTION_FRAME_FILE).exists():
            frame = CameraActionFrame(**json.loads((d / ACTION_FRAME_FILE).read_text()))
        vq = {}
        if (d / "image_tokenizer").is_dir():
            from model.vqgan import ImageVQGAN

            vq["image_tokenizer"] = ImageVQGAN.from_pretrained(d / "image_tokenizer")
        if (d / "audio_tokenizer").is_dir():
            from model.audio_vqgan import AudioVQGAN

            vq["audio_tokenizer"] = AudioVQGAN.from_pretrained(d / "audio_tokenizer")
        return cls(config, vocab, text, stats, state_stats=state, action_frame=frame, **vq)
