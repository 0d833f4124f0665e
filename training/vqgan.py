"""Training the image and audio VQ-GANs: a config dataclass and a plain, bounded training loop.

    cfg = load_config(VQGANTrainConfig, "configs/vqgan_image.yaml", ["steps=200"])
    metrics = train_vqgan(cfg)            # saves cfg.out_dir/{vqgan.safetensors, vqgan_config.json, metrics.json}

or from the shell: ``python -m training.vqgan --config configs/vqgan_image.yaml steps=200``.

Objective: L2 + L1 reconstruction + the quantiser's commitment loss, and optionally a
hinge patch-GAN term (``gan_weight > 0``, from ``gan_start``). On CPU the GAN is off by
default: PSNR, the figure we are held to, is a pixel loss, and the discriminator doubles
the step time. Runs are bounded by ``steps`` and by ``max_minutes``; the cosine learning
rate follows whichever of the two is further along, so a time-bounded run still anneals.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from model.audio import log_mel_spectrogram
from model.audio_vqgan import AudioVQGAN, normalize_log_mel
from model.vqgan import ImageVQGAN, VQGANConfig, images_to_tensor
from training.config import load_config, save_config
from training.vqgan_data import _resize, load_frames, load_speech


@dataclass
class VQGANDataConfig:
    # Image: frame sources ("metaworld", "tabletop", or .npz paths with a ``frames`` array).
    sources: list[str] = field(default_factory=lambda: ["metaworld"])
    episodes: int = 60
    steps_per_episode: int = 40
    heldout_episodes: int = 12
    frame_size: int = 128
    crop_size: int = 64  # train on random crops and downscaled frames of this size
    # Audio: espeak-ng clips of 4.096 s; training crops this many spectrogram frames.
    clips: int = 400
    heldout_clips: int = 32
    crop_frames: int = 64
    seed: int = 0
    heldout_seed: int = 12345
    cache_dir: str = "outputs/vqgan_data"


@dataclass
class VQGANTrainConfig:
    kind: str = "image"  # "image" or "audio"
    model: VQGANConfig = field(default_factory=lambda: VQGANConfig.preset("tiny"))
    data: VQGANDataConfig = field(default_factory=VQGANDataConfig)
    steps: int = 4000
    max_minutes: float = 25.0
    batch_size: int = 16
    lr: float = 1e-3
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    l1_weight: float = 1.0
    l2_weight: float = 1.0
    gan_weight: float = 0.0
    gan_start: int = 2000
    bf16: bool = True
    device: str = "auto"  # "auto" (cuda when available), "cpu", "cuda", "cuda:1", ...
    init_from: str | None = (
        None  # a save_pretrained dir to continue from (weights and codebook; fresh optimiser)
    )
    seed: int = 0
    log_every: int = 50
    eval_every: int = 1000
    out_dir: str = "outputs/vqgan/image"
    progress: bool = True


# -- data -----------------------------------------------------------------------------------------
class ImageBatches:
    """Random training batches: half random crops of full frames, half whole frames downscaled to the crop."""

    def __init__(self, frames: np.ndarray, crop: int, seed: int) -> None:
        self.frames, self.crop = frames, crop
        self.small = np.stack([_resize(f, crop) for f in frames])
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> torch.Tensor:
        out = []
        size = self.frames.shape[1]
        for _ in range(batch_size):
            i = self.rng.integers(len(self.frames))
            if self.rng.random() < 0.5 or size == self.crop:
                out.append(self.small[i])
            else:
                y, x = self.rng.integers(0, size - self.crop + 1, 2)
                out.append(self.frames[i, y : y + self.crop, x : x + self.crop])
        return images_to_tensor(np.stack(out))


class MelBatches:
    """Random time crops of normalised log-mel spectrograms, (B, 1, 128, crop_frames)."""

    def __init__(self, log_mels: torch.Tensor, crop_frames: int, seed: int) -> None:
        self.x = normalize_log_mel(log_mels)
        self.crop = crop_frames
        self.rng = np.random.default_rng(seed)

    def sample(self, batch_size: int) -> torch.Tensor:
        idx = self.rng.integers(len(self.x), size=batch_size)
        starts = self.rng.integers(0, self.x.shape[-1] - self.crop + 1, size=batch_size) // 8 * 8
        return torch.stack([self.x[i, :, s : s + self.crop] for i, s in zip(idx, starts)])[:, None]


# -- metrics --------------------------------------------------------------------------------------
def psnr(original: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-image PSNR in dB of uint8 (B, H, W, 3) arrays (255 peak)."""
    err = (original.astype(np.float64) - reconstruction.astype(np.float64)) ** 2
    mse = err.reshape(len(err), -1).mean(1)
    return 10 * np.log10(255.0**2 / np.maximum(mse, 1e-10))


@torch.no_grad()
def evaluate_image(model: ImageVQGAN, frames: np.ndarray, sizes=(64, 128), batch_size: int = 32) -> dict:
    """Held-out PSNR at each size and the fraction of the codebook the held-out frames use."""
    metrics, used = {}, torch.zeros(model.codebook_size, dtype=torch.bool)
    for size in sizes:
        imgs = np.stack([_resize(f, size) for f in frames])
        scores = []
        for i in range(0, len(imgs), batch_size):
            codes = model.encode(imgs[i : i + batch_size])
            used[codes.flatten().cpu()] = True
            scores.append(psnr(imgs[i : i + batch_size], model.decode(codes, grid=(size // 8, size // 8))))
        metrics[f"psnr_{size}"] = float(np.concatenate(scores).mean())
    metrics["codebook_usage"] = float(used.float().mean())
    return metrics


@torch.no_grad()
def evaluate_audio(model: AudioVQGAN, log_mels: torch.Tensor, batch_size: int = 16) -> dict:
    """Held-out log-mel L1 (nats), the same in dB of mel power, spectral convergence, and codebook usage."""
    used = torch.zeros(model.codebook_size, dtype=torch.bool)
    l1, sc = [], []
    for i in range(0, len(log_mels), batch_size):
        ref = log_mels[i : i + batch_size]
        codes = model.encode(ref)
        used[codes.flatten().cpu()] = True
        rec = model.decode(codes)
        l1.append((rec - ref).abs().mean(dim=(1, 2)))
        ref_p, rec_p = ref.exp(), rec.exp()
        sc.append(
            torch.linalg.norm((ref_p - rec_p).flatten(1), dim=1) / torch.linalg.norm(ref_p.flatten(1), dim=1)
        )
    l1_nats = float(torch.cat(l1).mean())
    return {
        "log_mel_l1": l1_nats,
        "log_mel_l1_db": l1_nats * 10 / math.log(10),
        "spectral_convergence": float(torch.cat(sc).mean()),
        "codebook_usage": float(used.float().mean()),
    }


# -- patch GAN (optional) -------------------------------------------------------------------------
class PatchDiscriminator(nn.Module):
    """PatchGAN (Isola et al. 2017): one real/fake logit per receptive field of ~22 pixels."""

    def __init__(self, in_channels: int, channels: int = 32) -> None:
        super().__init__()
        c = channels
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, c, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(c, 2 * c, 4, 2, 1), nn.GroupNorm(8, 2 * c), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * c, 4 * c, 3, 1, 1), nn.GroupNorm(8, 4 * c), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * c, 1, 3, 1, 1),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


# -- loop -----------------------------------------------------------------------------------------
def _lr_scale(step: int, progress: float, cfg: VQGANTrainConfig) -> float:
    if step < cfg.warmup_steps:
        return (step + 1) / cfg.warmup_steps
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


def build_data(cfg: VQGANTrainConfig):
    """(model, training batch sampler, held-out evaluation set, evaluate function) for cfg.kind."""
    d = cfg.data
    if cfg.kind == "image":
        train = np.concatenate(
            [
                load_frames(s, d.episodes, d.steps_per_episode, d.frame_size, d.seed, d.cache_dir)
                for s in d.sources
            ]
        )
        heldout = np.concatenate(
            [
                load_frames(
                    s, d.heldout_episodes, d.steps_per_episode, d.frame_size, d.heldout_seed, d.cache_dir
                )
                for s in d.sources
            ]
        )
        sizes = tuple(sorted({d.crop_size, d.frame_size}))
        return (
            ImageVQGAN(cfg.model),
            ImageBatches(train, d.crop_size, cfg.seed),
            heldout,
            lambda m, h: evaluate_image(m, h, sizes),
        )
    if cfg.kind == "audio":
        if cfg.model.in_channels != 1:
            raise ValueError(
                f"an audio VQ-GAN takes 1 input channel, got model.in_channels={cfg.model.in_channels}"
            )
        train, _ = load_speech(d.clips, d.seed, d.cache_dir)
        heldout, _ = load_speech(d.heldout_clips, d.heldout_seed, d.cache_dir)
        return (
            AudioVQGAN(cfg.model),
            MelBatches(log_mel_spectrogram(train), d.crop_frames, cfg.seed),
            log_mel_spectrogram(heldout),
            evaluate_audio,
        )
    raise ValueError(f"kind must be 'image' or 'audio', got {cfg.kind!r}")


def train_vqgan(cfg: VQGANTrainConfig) -> dict:
    """Train, evaluate on held-out data, save to cfg.out_dir; returns the final metrics (also metrics.json)."""
    torch.manual_seed(cfg.seed)
    model, batches, heldout, evaluate = build_data(cfg)
    if cfg.init_from:
        model.load_state_dict(type(model).from_pretrained(cfg.init_from).state_dict())
    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if cfg.device == "auto" else cfg.device
    )
    model.to(device)
    out = Path(cfg.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    save_config(cfg, out / "train_config.yaml")
    (out / "train_log.jsonl").unlink(missing_ok=True)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.99), weight_decay=0.0)
    disc = disc_opt = None
    if cfg.gan_weight > 0:
        disc = PatchDiscriminator(cfg.model.in_channels).to(device)
        disc_opt = torch.optim.AdamW(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.9))
    history, start = [], time.time()
    bar = None
    if cfg.progress:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps, desc=f"vqgan-{cfg.kind}", mininterval=5)
    model.train()
    step = 0
    for step in range(cfg.steps):
        progress = max(step / cfg.steps, (time.time() - start) / 60 / cfg.max_minutes)
        if progress >= 1.0:
            break
        for group in opt.param_groups:
            group["lr"] = cfg.lr * _lr_scale(step, progress, cfg)
        x = batches.sample(cfg.batch_size).to(device, non_blocking=True)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cfg.bf16):
            recon, vq_loss, _, info = model(x)
        recon = recon.float()
        l2, l1 = F.mse_loss(recon, x), F.l1_loss(recon, x)
        loss = cfg.l2_weight * l2 + cfg.l1_weight * l1 + vq_loss
        use_gan = disc is not None and step >= cfg.gan_start
        if use_gan:
            loss = loss - cfg.gan_weight * disc(recon).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if use_gan:
            d_loss = F.relu(1 - disc(x)).mean() + F.relu(1 + disc(recon.detach())).mean()
            disc_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            disc_opt.step()
        if step % cfg.log_every == 0:
            row = {
                "step": step,
                "loss": float(loss.detach()),
                "l2": float(l2.detach()),
                "psnr_train": float(
                    10 * torch.log10(4.0 / l2.detach().clamp_min(1e-10))
                ),  # range [-1, 1] -> peak 2
                "perplexity": float(info["perplexity"]),
                "lr": opt.param_groups[0]["lr"],
                "minutes": (time.time() - start) / 60,
            }
            history.append(row)
            with open(out / "train_log.jsonl", "a") as f:  # readable while the run goes on
                f.write(json.dumps(row) + "\n")
            if bar is not None:
                bar.set_postfix(l2=f"{row['l2']:.4f}", ppl=f"{row['perplexity']:.0f}")
        if cfg.eval_every and step and step % cfg.eval_every == 0:
            model.eval()
            history.append({"step": step, **evaluate(model, heldout)})
            with open(out / "train_log.jsonl", "a") as f:
                f.write(json.dumps(history[-1]) + "\n")
            model.train()
            model.save_pretrained(out)
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()
    model.eval().cpu()  # evaluate and save on the CPU: the figures don't depend on where it trained
    metrics = {
        "kind": cfg.kind,
        "steps": step + 1,
        "minutes": (time.time() - start) / 60,
        **evaluate(model, heldout),
    }
    model.save_pretrained(out)
    (out / "metrics.json").write_text(json.dumps({"final": metrics, "history": history}, indent=2))
    return metrics


def run_config(path, overrides: list[str] | None = None) -> dict:
    """Load a VQGANTrainConfig from YAML (+ ``a.b=c`` overrides) and train it."""
    return train_vqgan(load_config(VQGANTrainConfig, path, overrides or []))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Train the image or audio VQ-GAN tokenizer.")
    parser.add_argument(
        "--config", required=True, help="configs/vqgan_image.yaml or configs/vqgan_audio.yaml"
    )
    parser.add_argument(
        "overrides", nargs="*", help="dotted overrides, e.g. steps=200 model.codebook_size=512"
    )
    args = parser.parse_args(argv)
    metrics = run_config(args.config, args.overrides)
    print(json.dumps(metrics, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
