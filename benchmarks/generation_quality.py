"""Generation quality of a UIO checkpoint: next frame, depth, segmentation, and speech it can read back.

    python benchmarks/generation_quality.py --checkpoint runs/generation/checkpoints/step-003000
    python benchmarks/generation_quality.py --checkpoint CKPT --episodes 4 --speech-prompts 4   # quick look

On held-out tabletop episodes (expert rollouts from seeds no training run uses), at the
checkpoint's image target size:

- next frame (``NEXT_FRAME_GAP`` steps ahead, as training/tasks/generation.py asks for it):
  PSNR of the model's frame, of "copy the last frame" (the baseline to beat) and of the
  image VQ-GAN's own reconstruction of the true next frame (the most any model that writes
  frames through this tokenizer can reach);
- depth: absolute relative error in metres, the model's grey image decoded back through
  training/tasks/dense.py's mapping, over pixels whose true depth lies inside ``DEPTH_RANGE``;
- segmentation: IoU per segment (MuJoCo root body: table/world, arm, each object, and the empty
  background), averaged over the segments present in each true frame, then over frames; also the
  same over the arm and objects alone;
- speech: the model speaks a prompt text (tts), its own speech recognition (asr) transcribes the
  waveform, word accuracy (1 - word error rate) against the prompt; as references, asr on the real
  espeak-ng speech of the same texts and on that speech after the audio VQ-GAN's round trip.

Writes benchmarks/results/generation_quality.json, a grid PNG (input, truth, model output per
task) and two WAVs (the model's speech and espeak-ng's, same text).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from tqdm import tqdm  # noqa: E402

from training.tasks.dense import DEPTH_RANGE, depth_to_image, segmentation_to_image  # noqa: E402
from training.tasks.generation import NEXT_FRAME_GAP  # noqa: E402
from training.tasks.templates import TEMPLATES  # noqa: E402
from training.vqgan import psnr  # noqa: E402  (per-image dB of uint8 arrays; identical images -> 148 dB)

RESULTS = Path(__file__).resolve().parent / "results"
HELDOUT_SEED = 100_000  # training collections start at seed 0 and stay far below this
PROMPTS = {  # the first paraphrase of each family's training prompts (training/tasks/templates.py)
    "next_frame": TEMPLATES["next_frame"][0],
    "depth": TEMPLATES["depth"][0],
    "segmentation": TEMPLATES["segmentation"][0],
    "asr": TEMPLATES["asr"][0],
}
NOTHING, WORLD = -1, 0  # segmentation ids: no geom at the pixel; the world body (table, floor)


# -- metrics ----------------------------------------------------------------------------------------
def image_to_depth(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 grey depth image -> (H, W) metres: the inverse of dense.depth_to_image."""
    lo, hi = DEPTH_RANGE
    grey = np.asarray(image, np.float64).mean(-1)  # a generated image need not be exactly grey
    return lo + (1.0 - grey / 255.0) * (hi - lo)


def abs_rel(pred: np.ndarray, true: np.ndarray) -> float:
    """Mean |pred - true| / true over the pixels whose true depth lies in DEPTH_RANGE (nan if none)."""
    lo, hi = DEPTH_RANGE
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    valid = np.isfinite(true) & (true >= lo) & (true <= hi)
    if not valid.any():
        return float("nan")
    return float((np.abs(pred[valid] - true[valid]) / true[valid]).mean())


def image_to_segments(image: np.ndarray, ids) -> np.ndarray:
    """(H, W, 3) uint8 -> (H, W) int ids: each pixel takes the id in ``ids`` whose palette colour is nearest."""
    ids = np.asarray(sorted(set(int(i) for i in ids)), np.int64)
    colours = segmentation_to_image(ids).astype(np.float64)  # (K, 3)
    px = np.asarray(image, np.float64).reshape(-1, 1, 3)
    nearest = ((px - colours[None]) ** 2).sum(-1).argmin(1)
    return ids[nearest].reshape(image.shape[:2])


def mean_iou(pred: np.ndarray, true: np.ndarray, exclude=()) -> float:
    """Mean IoU over the ids present in ``true`` (minus ``exclude``); nan when none is left."""
    ious = []
    for i in np.unique(true):
        if int(i) in exclude:
            continue
        p, t = pred == i, true == i
        ious.append((p & t).sum() / (p | t).sum())
    return float(np.mean(ious)) if ious else float("nan")


def words(text: str) -> list[str]:
    """Lower-case words without punctuation: 'Pick up the red cube.' -> ['pick', 'up', 'the', 'red', 'cube']."""
    return re.findall(r"[a-z0-9']+", text.lower())


def word_accuracy(hypothesis: str, reference: str) -> float:
    """1 - word error rate (Levenshtein over words / reference length), floored at 0."""
    h, r = words(hypothesis), words(reference)
    if not r:
        raise ValueError(f"reference must hold at least one word, got {reference!r}")
    row = list(range(len(h) + 1))
    for i, rw in enumerate(r, 1):
        prev, row[0] = row[0], i
        for j, hw in enumerate(h, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (rw != hw))
    return max(0.0, 1.0 - row[-1] / len(r))


def _relative(path: Path) -> str:
    """``path`` relative to the repository when it lies inside it (results stay portable)."""
    root = RESULTS.parent.parent
    return str(path.resolve().relative_to(root)) if path.resolve().is_relative_to(root) else str(path)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    import cv2

    if image.shape[:2] == (size, size):
        return image
    return cv2.resize(image, (size, size), interpolation=cv2.INTER_AREA)


# -- held-out data ----------------------------------------------------------------------------------
def heldout_episodes(n: int, seed: int, size: int) -> list:
    """``n`` successful expert episodes of uio2/Tabletop-v0 (a task drawn per seed) with depth and segmentation."""
    import envs
    from envs.experts import get_expert
    from envs.rollout import record_episode

    env = envs.make(envs.TABLETOP, image_size=size, cameras=("scene",), depth=True, segmentation=True)
    expert, out, s = get_expert(env), [], seed
    with tqdm(total=n, desc="held-out episodes", mininterval=5) as bar:
        while len(out) < n and s < seed + 3 * n:
            ep = record_episode(env, expert, seed=s, annotate=False)
            s += 1
            if ep.success and len(ep) > NEXT_FRAME_GAP:
                out.append(ep)
                bar.update(1)
    env.close()
    return out


def sample_frames(episodes: list, per_episode: int) -> list[tuple]:
    """(episode, t) pairs evenly spread over each episode, each with a frame NEXT_FRAME_GAP steps later."""
    pairs = []
    for ep in episodes:
        last = len(ep) - 1 - NEXT_FRAME_GAP
        for t in np.unique(np.linspace(0, last, per_episode).round().astype(int)):
            pairs.append((ep, int(t)))
    return pairs


def speech_prompts(n: int, seed: int, size: int) -> list[tuple[str, np.ndarray]]:
    """(instruction, its espeak-ng recording) from ``n`` held-out resets: no rollout needed."""
    import envs

    env = envs.make(envs.TABLETOP, image_size=size, cameras=("scene",))
    out = []
    for k in range(n):
        obs, _ = env.reset(seed=seed + k)
        out.append((obs["instruction"], np.asarray(obs["speech"], np.float32)))
    env.close()
    return out


# -- evaluation -------------------------------------------------------------------------------------
def _generate(model, processor, examples: list, target: str, batch_size: int, desc: str, **kw) -> list:
    out = []
    for i in tqdm(range(0, len(examples), batch_size), desc=desc, mininterval=5):
        out += model.generate_from_examples(processor, examples[i : i + batch_size], target=target, **kw)
    return out


def _image_example(text: str, image: np.ndarray, history: np.ndarray | None = None):
    from model.example import Example

    dummy = np.zeros((8, 8, 3), np.uint8)  # the target is not read when generating
    return Example(target="image", target_value=dummy, text=text, image=image, image_history=history)


def _round_trip(processor, image: np.ndarray) -> np.ndarray:
    """The image VQ-GAN's reconstruction of a target image, exactly as training tokenizes it."""
    return processor.decode_image(processor.encode_image_target(image)[0].tolist())


def eval_images(model, processor, pairs, history: int, batch_size: int, guidance: float) -> tuple[dict, dict]:
    """Next frame, depth and segmentation on (episode, t) pairs; (metrics, a few outputs for the grid)."""
    size = processor.config.image_target_size
    kw = {"guidance_scale": guidance} if guidance > 0 else {}
    frames = [ep.frames["scene"][t] for ep, t in pairs]
    hist = [ep.frames["scene"][max(0, t - history) : t] if history and t else None for ep, t in pairs]

    # Next frame.
    nxt = np.stack([_resize(ep.frames["scene"][t + NEXT_FRAME_GAP], size) for ep, t in pairs])
    last = np.stack([_resize(f, size) for f in frames])
    examples = [_image_example(PROMPTS["next_frame"], f, h) for f, h in zip(frames, hist)]
    pred = np.stack(_generate(model, processor, examples, "image", batch_size, "next frame", **kw))
    ceiling = np.stack([_round_trip(processor, f) for f in nxt])
    model_db, copy_db = psnr(nxt, pred), psnr(nxt, last)
    next_frame = {
        "pairs": len(pairs),
        "gap_steps": NEXT_FRAME_GAP,
        "size": size,
        "model_psnr": float(model_db.mean()),
        "copy_last_frame_psnr": float(copy_db.mean()),
        "tokenizer_ceiling_psnr": float(psnr(nxt, ceiling).mean()),
        "model_beats_copy_fraction": float((model_db > copy_db).mean()),
    }

    # Depth: grey images -> metres, scored against the true metres at the target size.
    true_depth = [_resize(ep.depth["scene"][t], size) for ep, t in pairs]
    examples = [_image_example(PROMPTS["depth"], f) for f in frames]
    depth_img = _generate(model, processor, examples, "image", batch_size, "depth", **kw)
    depth_ceiling = [_round_trip(processor, depth_to_image(d)) for d in true_depth]
    mean_map = np.mean([np.clip(d, *DEPTH_RANGE) for d in true_depth], axis=0)
    depth = {
        "frames": len(pairs),
        "depth_range_m": list(DEPTH_RANGE),
        "valid_pixel_fraction": float(
            np.mean([((d >= DEPTH_RANGE[0]) & (d <= DEPTH_RANGE[1])).mean() for d in true_depth])
        ),
        "model_abs_rel": float(
            np.nanmean([abs_rel(image_to_depth(p), d) for p, d in zip(depth_img, true_depth)])
        ),
        "tokenizer_ceiling_abs_rel": float(
            np.nanmean([abs_rel(image_to_depth(c), d) for c, d in zip(depth_ceiling, true_depth)])
        ),
        # A constant map: the mean of the held-out truths themselves (an oracle constant, no image read).
        "mean_map_abs_rel": float(np.nanmean([abs_rel(mean_map, d) for d in true_depth])),
    }

    # Segmentation: colours -> ids over the closed set of ids the held-out frames contain
    # (nearest-neighor resize keeps ids whole).
    import cv2

    true_seg = [
        cv2.resize(ep.segmentation["scene"][t], (size, size), interpolation=cv2.INTER_NEAREST)
        for ep, t in pairs
    ]
    ids = np.unique(np.concatenate([s.ravel() for s in true_seg]))
    examples = [_image_example(PROMPTS["segmentation"], f) for f in frames]
    seg_img = _generate(model, processor, examples, "image", batch_size, "segmentation", **kw)
    seg_ceiling = [_round_trip(processor, segmentation_to_image(s)) for s in true_seg]

    def miou(images, exclude=()):
        return float(
            np.nanmean([mean_iou(image_to_segments(i, ids), s, exclude) for i, s in zip(images, true_seg)])
        )

    segmentation = {
        "frames": len(pairs),
        "segment_ids": [int(i) for i in ids],
        "model_miou": miou(seg_img),
        "model_miou_arm_and_objects": miou(seg_img, (NOTHING, WORLD)),
        "tokenizer_ceiling_miou": miou(seg_ceiling),
        "tokenizer_ceiling_miou_arm_and_objects": miou(seg_ceiling, (NOTHING, WORLD)),
    }
    k = np.linspace(0, len(pairs) - 1, min(8, len(pairs))).astype(int)
    grid = {
        "input": last[k],
        "next (true)": nxt[k],
        "next (model)": pred[k],
        "depth (true)": np.stack([depth_to_image(true_depth[i]) for i in k]),
        "depth (model)": np.stack([depth_img[i] for i in k]),
        "segmentation (true)": np.stack([segmentation_to_image(true_seg[i]) for i in k]),
        "segmentation (model)": np.stack([seg_img[i] for i in k]),
    }
    return {"next_frame": next_frame, "depth": depth, "segmentation": segmentation}, grid


def eval_speech(model, processor, prompts, batch_size: int) -> tuple[dict, dict]:
    """TTS -> ASR word accuracy, and ASR on espeak-ng speech (raw and through the audio VQ-GAN)."""
    from model.example import Example

    texts = [t for t, _ in prompts]
    tts = [
        Example(
            target="audio", target_value=np.zeros(16, np.float32), text=TEMPLATES["tts"][0].format(text=t)
        )
        for t in texts
    ]
    spoken = _generate(model, processor, tts, "audio", batch_size, "tts")
    real = [w for _, w in prompts]
    codec = [processor.decode_audio(processor.encode_audio_target(w, 16_000)[0].tolist()) for w in real]

    def asr(waves, desc):
        ex = [Example(target="text", target_value="", text=PROMPTS["asr"], audio=w) for w in waves]
        heard = _generate(model, processor, ex, "text", batch_size, desc)
        acc = [word_accuracy(h, t) for h, t in zip(heard, texts)]
        exact = [words(h) == words(t) for h, t in zip(heard, texts)]
        return {"word_accuracy": float(np.mean(acc)), "exact_match": float(np.mean(exact))}, heard

    loop, heard = asr(spoken, "asr (model speech)")
    reference, heard_real = asr(real, "asr (espeak-ng)")
    ceiling, _ = asr(codec, "asr (espeak-ng via audio VQ-GAN)")
    result = {
        "prompts": len(texts),
        "tts_then_asr": loop,
        "asr_on_espeak": reference,
        "asr_on_espeak_through_audio_vqgan": ceiling,
        "examples": [
            {"prompt": t, "heard_from_model_speech": h, "heard_from_espeak": r}
            for t, h, r in list(zip(texts, heard, heard_real))[:5]
        ],
    }
    return result, {"model": spoken[0], "espeak": real[0]}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--checkpoint", required=True, help="a UIO checkpoint trained with image and audio tokenizers"
    )
    p.add_argument("--episodes", type=int, default=30, help="held-out tabletop episodes")
    p.add_argument("--frames-per-episode", type=int, default=6)
    p.add_argument("--speech-prompts", type=int, default=60)
    p.add_argument("--history", type=int, default=2, help="frames of image history for next-frame prompts")
    p.add_argument("--guidance-scale", type=float, default=0.0, help="classifier-free guidance for images")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=HELDOUT_SEED)
    p.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    p.add_argument("--out", default=str(RESULTS / "generation_quality.json"))
    args = p.parse_args(argv)

    import torch

    from agent.generate import load
    from model.audio import write_wav
    from model.image_io import image_grid, write_png

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model, processor = load(args.checkpoint)
    model.eval()
    missing = [k for k in ("image", "audio") if getattr(processor, f"{k}_tokenizer") is None]
    if missing:
        raise SystemExit(f"{args.checkpoint} has no {' or '.join(missing)} tokenizer; train with one set")
    cfg = processor.config
    start = time.time()
    episodes = heldout_episodes(args.episodes, args.seed, cfg.image_size)
    pairs = sample_frames(episodes, args.frames_per_episode)
    history = min(args.history, cfg.max_image_history)
    images, grid = eval_images(model, processor, pairs, history, args.batch_size, args.guidance_scale)
    prompts = speech_prompts(args.speech_prompts, args.seed + 50_000, cfg.image_size)
    speech, wavs = eval_speech(model, processor, prompts, max(1, args.batch_size // 2))

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    media = out.parent / out.stem
    media.mkdir(exist_ok=True)
    grid_path = write_png(media / "grid.png", image_grid(list(grid.values())))
    for name, wave in wavs.items():
        write_wav(media / f"tts_{name}.wav", wave)
    train_config = Path(args.checkpoint) / "train_config.yaml"
    result = {
        "benchmark": "generation_quality",
        "checkpoint": str(args.checkpoint),
        "heldout": {"episodes": len(episodes), "seeds_from": args.seed, "env": "uio2/Tabletop-v0"},
        "image_target_size": cfg.image_target_size,
        "guidance_scale": args.guidance_scale,
        **images,
        "speech": speech,
        "grid_rows": list(grid),
        "grid_png": _relative(grid_path),
        "seconds": time.time() - start,
    }
    if train_config.is_file():  # what the checkpoint was trained on, next to what it scores
        import yaml

        tc = yaml.safe_load(train_config.read_text())
        result["training"] = {
            "max_steps": tc.get("trainer", {}).get("max_steps"),
            "mixture": tc.get("data", {}).get("mixture"),
            "image_tokenizer": tc.get("model", {}).get("image_tokenizer"),
            "audio_tokenizer": tc.get("model", {}).get("audio_tokenizer"),
        }
    out.write_text(json.dumps(result, indent=2))

    nf, d, s, sp = images["next_frame"], images["depth"], images["segmentation"], speech
    print(f"held-out: {len(episodes)} episodes, {len(pairs)} frames, {sp['prompts']} speech prompts")
    print(
        f"next frame (+{nf['gap_steps']} steps, {nf['size']}px): model {nf['model_psnr']:.2f} dB, "
        f"copy-last {nf['copy_last_frame_psnr']:.2f} dB, tokenizer ceiling {nf['tokenizer_ceiling_psnr']:.2f} dB "
        f"(model beats copy on {nf['model_beats_copy_fraction']:.0%} of frames)"
    )
    print(
        f"depth abs-rel: model {d['model_abs_rel']:.3f}, tokenizer ceiling {d['tokenizer_ceiling_abs_rel']:.3f}, "
        f"mean-map {d['mean_map_abs_rel']:.3f}"
    )
    print(
        f"segmentation mIoU (segments present per frame): model {s['model_miou']:.3f} "
        f"(arm+objects {s['model_miou_arm_and_objects']:.3f}), tokenizer ceiling {s['tokenizer_ceiling_miou']:.3f} "
        f"(arm+objects {s['tokenizer_ceiling_miou_arm_and_objects']:.3f})"
    )
    print(
        f"speech word accuracy: model tts -> model asr {sp['tts_then_asr']['word_accuracy']:.1%}; "
        f"asr on espeak-ng {sp['asr_on_espeak']['word_accuracy']:.1%}; "
        f"on espeak-ng via audio VQ-GAN {sp['asr_on_espeak_through_audio_vqgan']['word_accuracy']:.1%}"
    )
    print(f"wrote {out} and {media}/")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
