"""Image VQ-GAN benchmark: held-out PSNR at 64x64 and 128x128, codebook usage, originals-vs-reconstructions grid.

    python benchmarks/vqgan_image.py                       # evaluate outputs/vqgan/image
    python benchmarks/vqgan_image.py --train [--minutes 25] # train with configs/vqgan_image.yaml first

Targets (issue 7): PSNR >= 28 dB at both sizes and codebook usage >= 80% on held-out frames
(episodes rendered with seeds the training frames never used) of the camera sources; the
``tabletop_maps`` source (depth and segmentation images, flat and easier) is scored on its own
under ``by_source`` and kept out of the headline figures. Writes
benchmarks/results/vqgan_image.json and benchmarks/results/vqgan_image_grid.png.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402

from model.image_io import image_grid, write_png  # noqa: E402
from model.vqgan import ImageVQGAN  # noqa: E402
from training.config import load_config  # noqa: E402
from training.vqgan import VQGANTrainConfig, evaluate_image, psnr, train_vqgan  # noqa: E402
from training.vqgan_data import _resize, load_frames  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
MAP_SOURCES = ("tabletop_maps",)  # rendered target maps, not camera frames: reported, not in the headline
TARGET_PSNR, TARGET_USAGE = 28.0, 0.80


def next_frame_ceiling(
    model: ImageVQGAN, episodes: int = 4, steps: int = 30, size: int = 64, seed: int = 777
):
    """PSNR of "copy the last frame" vs the tokenizer's own reconstruction of the true next frame.

    The second is the most a model that writes frames through this tokenizer can reach on
    next-frame prediction: if it is below the copy baseline, no such model can beat it.
    """
    import gymnasium as gym

    import envs  # noqa: F401  (registers uio2/*)

    rng = np.random.default_rng(seed)
    env = gym.make("uio2/Tabletop-v0", image_size=size)
    previous, following = [], []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        action = env.action_space.sample()
        for _ in range(steps):
            last = obs["images"]["scene"]
            action = np.clip(0.8 * action + 0.5 * rng.uniform(-1, 1, action.shape), -1, 1).astype(np.float32)
            obs, _, terminated, truncated, _ = env.step(action)
            previous.append(last)
            following.append(obs["images"]["scene"])
            if terminated or truncated:
                break
    env.close()
    previous, following = np.stack(previous), np.stack(following)
    recon = model.decode(model.encode(following), grid=(size // 8, size // 8))
    return {
        "size": size,
        "pairs": len(following),
        "copy_last_frame_psnr": float(psnr(previous, following).mean()),
        "tokenizer_ceiling_psnr": float(psnr(following, recon).mean()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vqgan_image.yaml")
    p.add_argument("--checkpoint", default=None, help="a save_pretrained dir (default: the config's out_dir)")
    p.add_argument("--train", action="store_true", help="train first (bounded by --minutes)")
    p.add_argument("--minutes", type=float, default=None, help="override max_minutes of the training run")
    p.add_argument(
        "--no-next-frame", dest="next_frame", action="store_false", help="skip the next-frame ceiling"
    )
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. steps=2000")
    args = p.parse_args(argv)
    overrides = list(args.overrides) + ([f"max_minutes={args.minutes}"] if args.minutes else [])
    cfg = load_config(VQGANTrainConfig, args.config, overrides)
    if args.train:
        train_vqgan(cfg)
    ckpt = Path(args.checkpoint or cfg.out_dir)
    model = ImageVQGAN.from_pretrained(ckpt)
    d = cfg.data
    per_source = {
        s: load_frames(s, d.heldout_episodes, d.steps_per_episode, d.frame_size, d.heldout_seed, d.cache_dir)
        for s in d.sources
    }
    frame_sources = [s for s in per_source if s not in MAP_SOURCES] or list(per_source)
    heldout = np.concatenate([per_source[s] for s in frame_sources])
    start = time.time()
    metrics = evaluate_image(model, heldout, sizes=(64, 128))
    metrics["eval_seconds"] = time.time() - start
    by_source = (
        {s: evaluate_image(model, f, sizes=(64, 128)) for s, f in per_source.items()}
        if len(per_source) > 1
        else {}
    )
    ceiling = next_frame_ceiling(model) if args.next_frame else None
    train_log = ckpt / "metrics.json"
    training = json.loads(train_log.read_text())["final"] if train_log.is_file() else {}

    # Grid: 8 held-out frames; rows: originals 128, reconstructions 128, originals 64, reconstructions 64.
    idx = np.linspace(0, len(heldout) - 1, 8).astype(int)
    rows = []
    for size in (128, 64):
        imgs = np.stack([_resize(f, size) for f in heldout[idx]])
        recon = model.decode(model.encode(imgs), grid=(size // 8, size // 8))
        if size == 64:  # show at the same scale as the 128 rows
            imgs = np.repeat(np.repeat(imgs, 2, 1), 2, 2)
            recon = np.repeat(np.repeat(recon, 2, 1), 2, 2)
        rows += [list(imgs), list(recon)]
    RESULTS.mkdir(parents=True, exist_ok=True)
    grid_path = write_png(RESULTS / "vqgan_image_grid.png", image_grid(rows))

    result = {
        "benchmark": "vqgan_image",
        "checkpoint": str(ckpt),
        "heldout_frames": len(heldout),
        "sources": frame_sources,
        "codebook_size": model.codebook_size,
        "downsample_factor": model.config.downsample_factor,
        "parameters": sum(p.numel() for p in model.parameters()),
        **metrics,
        "targets": {"psnr_db": TARGET_PSNR, "codebook_usage": TARGET_USAGE},
        "meets_targets": bool(
            min(metrics["psnr_64"], metrics["psnr_128"]) >= TARGET_PSNR
            and metrics["codebook_usage"] >= TARGET_USAGE
        ),
        "by_source": by_source,
        "next_frame_tabletop": ceiling,
        "training": training,
        "grid_png": str(grid_path.relative_to(RESULTS.parent.parent)),
    }
    (RESULTS / "vqgan_image.json").write_text(json.dumps(result, indent=2))
    print(
        f"held-out frames: {len(heldout)}  codebook {model.codebook_size}  f={model.config.downsample_factor}"
    )
    print(f"PSNR 64x64:  {metrics['psnr_64']:.2f} dB   (target >= {TARGET_PSNR})")
    print(f"PSNR 128x128: {metrics['psnr_128']:.2f} dB  (target >= {TARGET_PSNR})")
    print(f"codebook usage: {metrics['codebook_usage']:.1%}  (target >= {TARGET_USAGE:.0%})")
    for src, m in by_source.items():
        print(
            f"  {src}: PSNR 64 {m['psnr_64']:.2f} dB, 128 {m['psnr_128']:.2f} dB, usage {m['codebook_usage']:.1%}"
        )
    if ceiling:
        print(
            f"next frame (tabletop {ceiling['size']}px, {ceiling['pairs']} pairs): copy-last {ceiling['copy_last_frame_psnr']:.2f} dB, "
            f"tokenizer ceiling {ceiling['tokenizer_ceiling_psnr']:.2f} dB"
        )
    if training:
        print(f"training: {training.get('steps')} steps in {training.get('minutes', 0):.1f} min")
    print(f"grid: {grid_path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
