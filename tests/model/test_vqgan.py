"""Image and audio VQ-GAN tokenizers: shapes, code ranges, checkpoints, codebook use, a CI-sized training."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from model.audio import CLIP_SAMPLES, log_mel_spectrogram, read_wav, write_wav
from model.audio_vqgan import AudioVQGAN, audio_config
from model.image_io import image_grid, read_png, write_png
from model.quantizer import EMAVectorQuantizer
from model.vqgan import ImageVQGAN, VQGANConfig
from training.vqgan import VQGANDataConfig, VQGANTrainConfig, psnr, train_vqgan


def _images(n: int, size: int, seed: int = 0) -> np.ndarray:
    """Flat-coloured rectangles on a grey floor: the look of a simulator frame."""
    rng = np.random.default_rng(seed)
    imgs = np.full((n, size, size, 3), 120, np.uint8)
    for img in imgs:
        for _ in range(3):
            x0, y0 = rng.integers(0, size - size // 4, 2)
            w, h = rng.integers(size // 8, size // 3, 2)
            img[y0 : y0 + h, x0 : x0 + w] = rng.integers(0, 256, 3)
    return imgs


@pytest.fixture(scope="module")
def tiny_image_vqgan():
    torch.manual_seed(0)
    return ImageVQGAN(VQGANConfig.preset("test")).eval()


@pytest.mark.parametrize("size", [64, 128])
def test_image_tokenizer_shapes_and_code_range(tiny_image_vqgan, size):
    model = tiny_image_vqgan
    codes = model.encode(_images(2, size))
    assert codes.shape == (2, (size // 8) ** 2) == (2, model.tokens_per_image(size, size))
    assert codes.dtype == torch.int64
    assert int(codes.min()) >= 0 and int(codes.max()) < model.codebook_size
    out = model.decode(codes)
    assert out.shape == (2, size, size, 3) and out.dtype == np.uint8
    assert model.decode(codes.view(2, size // 8, size // 8)).shape == out.shape


def test_image_tokenizer_rejects_bad_input(tiny_image_vqgan):
    with pytest.raises(ValueError, match="uint8"):
        tiny_image_vqgan.encode(np.zeros((1, 64, 64, 3), np.float32))
    with pytest.raises(ValueError, match="multiples of 8"):
        tiny_image_vqgan.encode(np.zeros((1, 60, 60, 3), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 32\)"):
        tiny_image_vqgan.decode(torch.full((1, 64), 32))
    with pytest.raises(ValueError, match="square"):
        tiny_image_vqgan.decode(torch.zeros(1, 8, dtype=torch.long))


def test_save_load_round_trip_uses_safetensors_and_json(tiny_image_vqgan, tmp_path):
    tiny_image_vqgan.save_pretrained(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["vqgan.safetensors", "vqgan_config.json"]
    assert json.loads((tmp_path / "vqgan_config.json").read_text())["class"] == "ImageVQGAN"
    loaded = ImageVQGAN.from_pretrained(tmp_path)
    imgs = _images(2, 64, seed=3)
    torch.testing.assert_close(loaded.encode(imgs), tiny_image_vqgan.encode(imgs), rtol=0, atol=0)
    with pytest.raises(ValueError, match="ImageVQGAN"):
        AudioVQGAN.from_pretrained(tmp_path)


def _usage_after_distribution_shift(restart_after: int) -> float:
    torch.manual_seed(0)
    vq = EMAVectorQuantizer(codebook_size=64, dim=4, restart_after=restart_after).train()
    vq(torch.randn(16, 4, 8, 8))  # initialises the codebook from this distribution
    # The encoder's outputs then move away (as they do early in training): only the few codes
    # nearest the new data win; the rest die unless they are restarted.
    for _ in range(30):
        vq(torch.randn(16, 4, 8, 8) + 5.0)
    vq.eval()
    _, _, codes, _ = vq(torch.randn(64, 4, 8, 8) + 5.0)
    return codes.unique().numel() / 64


def test_dead_codes_are_restarted_so_most_codes_are_used():
    with_restarts = _usage_after_distribution_shift(restart_after=5)
    without = _usage_after_distribution_shift(restart_after=10**6)
    assert with_restarts >= 0.8, f"only {with_restarts:.0%} of the codebook in use after restarts"
    assert without < 0.5, f"the control without restarts used {without:.0%}: the test shows nothing"


def _image_run(tmp_path, n, size, crop, codebook, seed, **train) -> VQGANTrainConfig:
    """A tiny image VQ-GAN training run on ``n`` synthetic frames, written to ``tmp_path / "run"``."""
    frames = tmp_path / "frames.npz"
    np.savez(frames, frames=_images(n, size, seed=seed))
    data = VQGANDataConfig(sources=[str(frames)], frame_size=size, crop_size=crop, cache_dir=str(tmp_path))
    return VQGANTrainConfig(
        kind="image",
        model=VQGANConfig.preset("test", codebook_size=codebook),
        data=data,
        eval_every=0,
        out_dir=str(tmp_path / "run"),
        progress=False,
        **train,
    )


def test_tiny_vqgan_reconstruction_error_falls_during_training(tmp_path):
    cfg = _image_run(
        tmp_path, 48, 64, 32, 64, seed=1, steps=60, batch_size=8, lr=3e-3, warmup_steps=10, log_every=10
    )
    metrics = train_vqgan(cfg)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    first, last = history[0]["l2"], np.mean([h["l2"] for h in history[-3:]])
    assert last < 0.5 * first, f"training L2 went {first:.4f} -> {last:.4f}"
    assert metrics["psnr_32"] > 15 and 0 < metrics["codebook_usage"] <= 1
    assert ImageVQGAN.from_pretrained(tmp_path / "run").codebook_size == 64


def test_psnr_of_identical_and_noisy_images():
    a = _images(2, 32)
    assert (psnr(a, a) > 90).all()
    b = np.clip(a.astype(int) + 10, 0, 255).astype(np.uint8)
    assert psnr(a, b) == pytest.approx(np.full(2, 10 * np.log10(255**2 / 100)), abs=0.5)


def test_audio_tokenizer_shapes_and_waveform_path():
    torch.manual_seed(0)
    model = AudioVQGAN(audio_config("test")).eval()
    t = np.arange(CLIP_SAMPLES) / 16000
    wav = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    codes = model.encode_waveform(wav)
    assert codes.shape == (1, 512) == (1, model.tokens_per_clip())
    assert int(codes.min()) >= 0 and int(codes.max()) < model.codebook_size
    mel = model.decode(codes)
    assert mel.shape == (1, 128, 256)
    torch.testing.assert_close(model.encode(log_mel_spectrogram(wav)), codes, rtol=0, atol=0)
    out = model.decode_waveform(codes, n_iter=2)
    assert out.shape == (1, CLIP_SAMPLES) and np.isfinite(out).all() and np.abs(out).max() <= 1
    with pytest.raises(ValueError, match="128"):
        model.encode(torch.zeros(64, 256))


def test_png_and_wav_writers_produce_valid_files(tmp_path):
    imgs = _images(2, 32)
    grid = image_grid([list(imgs), list(imgs[::-1])])
    path = write_png(tmp_path / "grid.png", grid)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    np.testing.assert_array_equal(read_png(path), grid)
    with pytest.raises(ValueError, match="HxWx3 uint8"):
        write_png(tmp_path / "bad.png", grid.astype(np.float32))
    wav_path = write_wav(tmp_path / "a.wav", np.zeros(1600, np.float32))
    assert wav_path.read_bytes()[:4] == b"RIFF" and read_wav(wav_path).shape == (1600,)


@pytest.mark.skipif(
    shutil.which("espeak-ng") is None or shutil.which("sox") is None, reason="needs espeak-ng and sox"
)
def test_speech_synthesis_gives_16khz_clips(tmp_path):
    from training.vqgan_data import load_speech

    waves, texts = load_speech(2, seed=0, cache_dir=tmp_path)
    assert waves.shape == (2, CLIP_SAMPLES) and len(texts) == 2
    assert np.abs(waves).max() > 0.05, "espeak-ng produced silence"


def test_tabletop_maps_are_the_depth_and_segmentation_targets(tmp_path):
    """The tokenizer's map source draws what the depth and segmentation tasks ask for: greys, palette colours."""
    from training.tasks.dense import _PALETTE
    from training.vqgan_data import load_frames

    frames = load_frames("tabletop_maps", episodes=1, steps=4, size=32, seed=0, cache_dir=tmp_path)
    assert frames.shape == (4, 32, 32, 3) and frames.dtype == np.uint8  # every 2nd step: depth + segmentation
    depth, seg = frames[0::2], frames[1::2]
    assert (depth[..., 0] == depth[..., 1]).all() and (depth[..., 1] == depth[..., 2]).all()
    assert depth.max() > depth.min()  # near and far differ
    palette = {tuple(c) for c in _PALETTE.tolist()}
    assert {tuple(c) for c in seg.reshape(-1, 3).tolist()} <= palette
    assert len(list(tmp_path.glob("tabletop_maps_*.npz"))) == 1  # cached like the other sources


def test_processor_hooks_encode_decode_and_persist_the_tokenizers(tmp_path):
    from model.configuration import ModelConfig
    from model.processor import Processor

    config = ModelConfig.preset("tiny")
    torch.manual_seed(0)
    image_tok = ImageVQGAN(VQGANConfig.preset("test", codebook_size=config.image_codebook_size)).eval()
    # The downsampling factor that gives the model's audio token count: 128 x 256 / f^2 codes.
    f = int(np.sqrt(128 * 256 / config.audio_target_tokens))
    mult = (1,) + (2,) * int(np.log2(f))
    audio_tok = AudioVQGAN(
        audio_config("test", channel_mult=mult, codebook_size=config.audio_codebook_size)
    ).eval()
    processor = Processor(config, image_tokenizer=image_tok, audio_tokenizer=audio_tok)
    image = _images(1, 96)[0]
    ids, _ = processor.encode_image_target(image)
    start, end = processor.vocab.output_range("image")
    assert ids.shape == (config.image_target_tokens,) and start <= int(ids.min()) and int(ids.max()) < end
    size = config.image_target_size
    assert processor.decode_image(ids).shape == (size, size, 3)
    t = np.arange(CLIP_SAMPLES) / 16000
    audio_ids, _ = processor.encode_audio_target(
        (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32), 16000
    )
    assert audio_ids.shape == (config.audio_target_tokens,)
    assert processor.decode_audio(audio_ids).shape == (CLIP_SAMPLES,)

    processor.save_pretrained(tmp_path)
    loaded = Processor.from_pretrained(tmp_path, config)
    assert isinstance(loaded.image_tokenizer, ImageVQGAN) and isinstance(loaded.audio_tokenizer, AudioVQGAN)
    torch.testing.assert_close(loaded.encode_image_target(image)[0], ids, rtol=0, atol=0)


def test_shipped_configs_fit_the_tiny_model():
    """configs/vqgan_*.yaml must give the code counts and codebook sizes ModelConfig tiny expects."""
    from pathlib import Path

    from model.configuration import ModelConfig
    from training.config import load_config

    root = Path(__file__).resolve().parents[2]
    tiny = ModelConfig.preset("tiny")
    image = load_config(VQGANTrainConfig, root / "configs/vqgan_image.yaml")
    audio = load_config(VQGANTrainConfig, root / "configs/vqgan_audio.yaml")
    assert (image.kind, audio.kind) == ("image", "audio")
    assert image.model.codebook_size == tiny.image_codebook_size
    assert (tiny.image_target_size // image.model.downsample_factor) ** 2 == tiny.image_target_tokens
    assert audio.model.codebook_size == tiny.audio_codebook_size and audio.model.in_channels == 1
    f = audio.model.downsample_factor
    assert (tiny.audio_mels // f) * (tiny.audio_frames // f) == tiny.audio_target_tokens


def test_patch_gan_term_runs_and_keeps_the_loss_finite(tmp_path):
    cfg = _image_run(
        tmp_path, 8, 32, 32, 32, seed=2, steps=6, batch_size=4, gan_weight=0.1, gan_start=2, log_every=1
    )
    train_vqgan(cfg)
    history = json.loads((tmp_path / "run" / "metrics.json").read_text())["history"]
    assert len(history) == 6 and all(np.isfinite(h["loss"]) for h in history)
