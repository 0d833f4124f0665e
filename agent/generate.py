"""``uio2 generate``: one prompt through a checkpoint, written as text, JSON, PNG or WAV.

uio2 generate --checkpoint CKPT --target text  --image view.png --prompt "What colour is the cube?"
uio2 generate --checkpoint CKPT --target boxes --image view.png --prompt "red cube" --out boxes.json
uio2 generate --checkpoint CKPT --target image --image view.png --prompt "the next frame" --out next.png
uio2 generate --checkpoint CKPT --target audio --prompt "Say: open the drawer" --out speech.wav
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from model.example import Example

TARGETS = ("text", "boxes", "image", "audio")
SUFFIX = {"text": ".txt", "boxes": ".json", "image": ".png", "audio": ".wav"}


def load(checkpoint: str | Path):
    """(model, processor) with the checkpoint's image/audio tokenizers attached when it has them."""
    from model.checkpoint import load_pretrained

    if not Path(checkpoint).is_dir():
        raise FileNotFoundError(f"checkpoint directory {str(checkpoint)!r} does not exist")
    return load_pretrained(checkpoint)


def generate(
    model,
    processor,
    target: str,
    prompt: str,
    image: np.ndarray | None = None,
    audio: np.ndarray | None = None,
    guidance_scale: float = 0.0,
    seed: int = 0,
) -> Any:
    """text -> str; boxes -> list of [x1, y1, x2, y2] pixel boxes; image -> (H, W, 3) uint8; audio -> 16 kHz waveform."""
    if target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {target!r}")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt must be a non-empty string, got {prompt!r}")
    text = prompt.strip()
    model_target = "text" if target == "boxes" else target
    if target == "boxes":
        if image is None:
            raise ValueError("target 'boxes' needs an --image to find the object in")
        text = text if text.endswith((".", "?")) else f"Locate the {text}."
    dummy = {"text": "", "image": np.zeros((8, 8, 3), np.uint8), "audio": np.zeros(16, np.float32)}[
        model_target
    ]
    example = Example(target=model_target, target_value=dummy, text=text, image=image, audio=audio)
    torch.manual_seed(seed)
    kwargs = {"guidance_scale": guidance_scale} if model_target == "image" and guidance_scale > 0 else {}
    with torch.inference_mode():
        out = model.generate_from_examples(processor, [example], target=model_target, **kwargs)[0]
    if target == "boxes":
        h, w = image.shape[:2]
        return [[float(v) for v in box] for box in processor.locations.decode_boxes(out, (h, w))]
    return out


def write_output(target: str, value: Any, path: Path) -> Path:
    """Write ``value`` in the format users expect for ``target``: .txt, .json, .png or .wav."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if target == "text":
        path.write_text(value + "\n")
    elif target == "boxes":
        path.write_text(json.dumps({"boxes": value}, indent=2))
    elif target == "image":
        from model.image_io import write_png

        write_png(path, value)
    else:
        from model.audio import write_wav

        write_wav(path, value)
    return path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--checkpoint", required=True, help="a checkpoint directory")
    parser.add_argument("--target", choices=TARGETS, required=True)
    parser.add_argument("--prompt", required=True, help="the question, instruction or object name")
    parser.add_argument("--image", help="an input image (PNG/JPEG)")
    parser.add_argument("--audio", help="an input WAV file at 16 kHz")
    parser.add_argument(
        "--guidance-scale", type=float, default=0.0, help="classifier-free guidance for images"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", help="output file (default: stdout for text, else generated.<ext>)")


def run(args: argparse.Namespace) -> int:
    image = audio = None
    if args.image:
        from model.image_io import read_png

        image = read_png(args.image)
    if args.audio:
        from model.audio import read_wav

        audio = read_wav(args.audio)
    model, processor = load(args.checkpoint)
    value = generate(model, processor, args.target, args.prompt, image, audio, args.guidance_scale, args.seed)
    if args.out is None and args.target == "text":
        print(value)
        return 0
    path = write_output(args.target, value, Path(args.out or f"generated{SUFFIX[args.target]}"))
    print(f"wrote {path}")
    return 0
