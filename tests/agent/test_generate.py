import json
import subprocess
import sys

import numpy as np
import pytest

from agent.generate import generate, load, write_output
from model.image_io import write_png


@pytest.fixture(scope="module")
def loaded(tiny_checkpoint):
    return load(tiny_checkpoint)


def test_text_generation_returns_a_string(loaded):
    model, processor = loaded
    image = np.zeros((64, 64, 3), np.uint8)
    out = generate(model, processor, "text", "What colour is the cube?", image=image)
    assert isinstance(out, str)


def test_boxes_are_pixel_boxes_inside_the_image(loaded):
    model, processor = loaded
    image = np.full((48, 80, 3), 128, np.uint8)
    boxes = generate(model, processor, "boxes", "red cube", image=image)
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 <= 80 and 0 <= x2 <= 80 and 0 <= y1 <= 48 and 0 <= y2 <= 48


@pytest.mark.parametrize(
    "target, prompt, kwargs, message",
    [
        ("video", "x", {}, "target must be one of"),
        ("text", "  ", {}, "prompt must be a non-empty"),
        ("boxes", "red cube", {}, "needs an --image"),
    ],
)
def test_bad_requests_are_named(loaded, target, prompt, kwargs, message):
    model, processor = loaded
    with pytest.raises(ValueError, match=message):
        generate(model, processor, target, prompt, **kwargs)


def test_write_output_formats(tmp_path):
    assert write_output("text", "hello", tmp_path / "a.txt").read_text() == "hello\n"
    boxes = [[1.0, 2.0, 3.0, 4.0]]
    assert json.loads(write_output("boxes", boxes, tmp_path / "b.json").read_text()) == {"boxes": boxes}


def test_cli_writes_boxes_json(tiny_checkpoint, tmp_path):
    image = tmp_path / "view.png"
    write_png(image, np.zeros((32, 32, 3), np.uint8))
    out = tmp_path / "boxes.json"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "agent.cli",
            "generate",
            "--checkpoint",
            str(tiny_checkpoint),
            "--target",
            "boxes",
            "--image",
            str(image),
            "--prompt",
            "red cube",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert "boxes" in json.loads(out.read_text())


def test_cli_writes_png_and_wav_with_the_checkpoints_vqgans(tiny_checkpoint, tmp_path):
    """A checkpoint that carries VQ-GAN tokenizers (here untrained) generates a valid PNG and WAV."""
    import wave

    from model.audio_vqgan import AudioVQGAN, audio_config
    from model.checkpoint import load_pretrained
    from model.image_io import read_png
    from model.vqgan import ImageVQGAN, VQGANConfig

    model, processor = load_pretrained(tiny_checkpoint)
    cfg = model.config
    processor.image_tokenizer = ImageVQGAN(VQGANConfig.preset("test", codebook_size=cfg.image_codebook_size))
    processor.audio_tokenizer = AudioVQGAN(audio_config("test", codebook_size=cfg.audio_codebook_size))
    ckpt = model.save_pretrained(tmp_path / "with_vq", processor)
    for target, name in [("image", "next.png"), ("audio", "speech.wav")]:
        out = tmp_path / name
        proc = subprocess.run(
            [sys.executable, "-m", "agent.cli", "generate", "--checkpoint", str(ckpt), "--target", target,
             "--prompt", "open the drawer", "--out", str(out)],
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        assert proc.returncode == 0, proc.stderr[-2000:]
    image = read_png(tmp_path / "next.png")
    assert image.ndim == 3 and image.shape[-1] == 3 and image.shape[0] == cfg.image_target_size
    with wave.open(str(tmp_path / "speech.wav")) as w:
        assert w.getframerate() == 16000 and w.getnchannels() == 1 and w.getnframes() > 16000
