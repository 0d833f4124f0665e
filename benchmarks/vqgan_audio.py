"""Audio VQ-GAN benchmark: spectral reconstruction error on held-out speech, and WAV samples.

    python benchmarks/vqgan_audio.py                        # evaluate outputs/vqgan/audio
    python benchmarks/vqgan_audio.py --train [--minutes 15]  # train with configs/vqgan_audio.yaml first

Held-out clips are espeak-ng sentences from a seed the training set never used. Reported:
log-mel L1 (nats and dB of mel power) and spectral convergence of the tokenizer round trip,
the same figures for Griffin-Lim alone (the floor the waveform path adds), and the
codebook usage. Writes benchmarks/results/vqgan_audio.json and, for a few clips,
benchmarks/results/vqgan_audio/{i}_original.wav, {i}_griffin_lim.wav, {i}_tokenized.wav, and
benchmarks/results/vqgan_audio_mels.png (left: original log-mel, right: through the tokenizer).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from model.audio import LOG_FLOOR, log_mel_spectrogram, log_mel_to_waveform, write_wav  # noqa: E402
from model.audio_vqgan import AudioVQGAN  # noqa: E402
from model.image_io import image_grid, write_png  # noqa: E402
from training.config import load_config  # noqa: E402
from training.vqgan import VQGANTrainConfig, evaluate_audio, train_vqgan  # noqa: E402
from training.vqgan_data import load_speech  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def _spectral_errors(ref: torch.Tensor, rec: torch.Tensor) -> dict:
    l1 = float((rec - ref).abs().mean())
    ref_p, rec_p = ref.exp(), rec.exp()
    sc = torch.linalg.norm((ref_p - rec_p).flatten(1), dim=1) / torch.linalg.norm(ref_p.flatten(1), dim=1)
    return {
        "log_mel_l1": l1,
        "log_mel_l1_db": l1 * 10 / math.log(10),
        "spectral_convergence": float(sc.mean()),
    }


def _mel_picture(original: torch.Tensor, tokenized: torch.Tensor) -> np.ndarray:
    """Rows of (original, tokenized) log-mels as a colour image, low frequencies at the bottom."""
    import cv2

    def paint(m: torch.Tensor) -> np.ndarray:
        x = ((m.numpy() - LOG_FLOOR) / (6.0 - LOG_FLOOR)).clip(0, 1)[::-1]
        return cv2.cvtColor(
            cv2.applyColorMap((x * 255).astype(np.uint8), cv2.COLORMAP_MAGMA), cv2.COLOR_BGR2RGB
        )

    return image_grid([[paint(o), paint(t)] for o, t in zip(original, tokenized)])


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", default="configs/vqgan_audio.yaml")
    p.add_argument("--checkpoint", default=None, help="a save_pretrained dir (default: the config's out_dir)")
    p.add_argument("--train", action="store_true", help="train first (bounded by --minutes)")
    p.add_argument("--minutes", type=float, default=None, help="override max_minutes of the training run")
    p.add_argument("--samples", type=int, default=4, help="clips to write as WAV")
    p.add_argument("overrides", nargs="*", help="config overrides, e.g. steps=2000")
    args = p.parse_args(argv)
    overrides = list(args.overrides) + ([f"max_minutes={args.minutes}"] if args.minutes else [])
    cfg = load_config(VQGANTrainConfig, args.config, overrides)
    if args.train:
        train_vqgan(cfg)
    ckpt = Path(args.checkpoint or cfg.out_dir)
    model = AudioVQGAN.from_pretrained(ckpt)
    waves, texts = load_speech(cfg.data.heldout_clips, cfg.data.heldout_seed, cfg.data.cache_dir)
    mels = log_mel_spectrogram(waves)

    start = time.time()
    tokenizer = evaluate_audio(model, mels)
    tokenizer["eval_seconds"] = time.time() - start
    # Griffin-Lim alone, and the whole path codes -> waveform, measured back in log-mel space.
    n = min(args.samples, len(waves))
    gl_wave = log_mel_to_waveform(mels[:n])
    codes = model.encode(mels[:n])
    tok_wave = model.decode_waveform(codes)
    griffin_lim = _spectral_errors(mels[:n], log_mel_spectrogram(gl_wave))
    full_path = _spectral_errors(mels[:n], log_mel_spectrogram(tok_wave))

    out = RESULTS / "vqgan_audio"
    written = []
    for i in range(n):
        for name, w in (("original", waves[i]), ("griffin_lim", gl_wave[i]), ("tokenized", tok_wave[i])):
            written.append(str(write_wav(out / f"{i}_{name}.wav", w).relative_to(RESULTS.parent.parent)))
    mel_png = write_png(RESULTS / "vqgan_audio_mels.png", _mel_picture(mels[:n], model.decode(codes)))
    train_log = ckpt / "metrics.json"
    training = json.loads(train_log.read_text())["final"] if train_log.is_file() else {}
    result = {
        "benchmark": "vqgan_audio",
        "checkpoint": str(ckpt),
        "heldout_clips": len(waves),
        "codebook_size": model.codebook_size,
        "tokens_per_clip": model.tokens_per_clip(),
        "parameters": sum(p.numel() for p in model.parameters()),
        "tokenizer_round_trip": tokenizer,
        "griffin_lim_only": griffin_lim,
        "codes_to_waveform": full_path,
        "training": training,
        "wav_samples": written,
        "mel_png": str(mel_png.relative_to(RESULTS.parent.parent)),
        "sample_texts": texts[:n],
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vqgan_audio.json").write_text(json.dumps(result, indent=2))
    print(
        f"held-out clips: {len(waves)}  codebook {model.codebook_size}  tokens/clip {model.tokens_per_clip()}"
    )
    print(
        f"tokenizer log-mel L1: {tokenizer['log_mel_l1']:.3f} nats ({tokenizer['log_mel_l1_db']:.2f} dB), "
        f"spectral convergence {tokenizer['spectral_convergence']:.3f}, usage {tokenizer['codebook_usage']:.1%}"
    )
    print(
        f"Griffin-Lim only:    L1 {griffin_lim['log_mel_l1']:.3f} nats, SC {griffin_lim['spectral_convergence']:.3f}"
    )
    print(
        f"codes -> waveform:   L1 {full_path['log_mel_l1']:.3f} nats, SC {full_path['spectral_convergence']:.3f}"
    )
    if training:
        print(f"training: {training.get('steps')} steps in {training.get('minutes', 0):.1f} min")
    print(f"WAV samples: {out}/")
    return 0


if __name__ == "__main__":
    np.seterr(all="ignore")
    raise SystemExit(main())
