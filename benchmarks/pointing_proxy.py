"""The fast proxy to iterate on: does the model learn to point as fast as a competent CNN on the same frames and minutes?

    python benchmarks/pointing_proxy.py                       # the issue's probe: tiny + conv stem, 64 bins
    python benchmarks/pointing_proxy.py --override pointer_readout=true --minutes 1 3 6
    python benchmarks/pointing_proxy.py --quick               # smoke run, seconds
    python benchmarks/pointing_proxy.py --only model --write action --override action_bins=64

One run trains, one after the other and each on one torch thread for the same wall-clock minutes:

- the reference: the FiLM CNN with a spatial soft-argmax head of benchmarks/bc_reference.py (4 conv
  layers, 32 channels, GroupNorm + ReLU, FiLM from the colour and shape words), one keypoint, MSE on
  the pixel coordinates, Adam 1e-3, batch 64 (the note measured ~1.1 px after 1 minute);
- the project's model on pointing alone, through the project's own path: "Point to the ..." examples
  from training/tasks/grounding.py (make_pointing: location tokens of ModelConfig.location_bins),
  Processor.encode, packed collate, UnifiedIO.forward's loss, training/optim.py's optimiser.

Both see the same fresh simulator frames: reset frames of the six tabletop tasks at 64 px (scene
camera), the point of one uniquely named visible object (what the pointing examples use); training
seeds < 10000, held-out seeds >= 10000. Frames are generated once and cached under runs/proxy_cache/.

After each of ``--minutes`` of training (the clock stops while evaluating) it reports, on the
held-out frames: mean pixel error, the fraction within 3 px, and the training loss beside its floor for
a model that ignores the image (the entropy of where points usually are, per scored target token, in
nats with the model's bins; for the CNN, the variance of the points in px^2). The model's point is
decoded location-forced: greedy argmax over the location bins only, y then x, each position read from
UnifiedIO.forward's logits (the training path, so any readout the loss sees is decoded too); the
plain ``generate`` path is measured beside it (how many held-out answers decode to a point at all).
Writes benchmarks/results/pointing_proxy.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch.nn import functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bc_reference import (  # noqa: E402
    ClockCooldown,
    FiLMSoftArgmaxCNN,
    InstructionWords,
    machine_notes,
    train_by_clock,
)

RESULTS = Path(__file__).parent / "results"
CACHE = Path(__file__).resolve().parents[1] / "runs" / "proxy_cache"
CACHE_VERSION = 1  # bump when the frames or their annotations change meaning
HELD_OUT_SEED = 10_000
WITHIN_PX = 3.0
# The probe (the demo's model): tiny preset, conv stem to 8 px patches (configs/demo_train.yaml),
# location bins matched to the 64 px image.
DEFAULT_OVERRIDES = {"image_conv_stem": True, "patch_size": 8, "location_bins": 64}


# -- frames ----------------------------------------------------------------------------------------


def mark_rows(marks) -> list[dict]:
    """The JSON rows of a run's minute marks (both sides report the same fields)."""
    return [
        {"minutes": m.minutes, "steps": m.steps, "steps_per_s": m.steps / (m.minutes * 60),
         "train_loss": m.train_loss, **m.result}
        for m in marks
    ]  # fmt: skip


def generate_frames(n: int, first_seed: int, image_size: int) -> dict:
    """Reset frames of the six tasks in turn (frame i: task i % 6, seed first_seed + i) with their annotations."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    from envs.tabletop import TabletopEnv
    from envs.tasks import TASKS

    tasks = list(TASKS)
    envs = {t: TabletopEnv(t, image_size=image_size, cameras=("scene",)) for t in tasks}
    images, anns, names = [], [], []
    for i in tqdm(range(n), desc=f"frames from seed {first_seed}", unit="frame", leave=False):
        env = envs[tasks[i % len(tasks)]]
        obs, _ = env.reset(seed=first_seed + i)
        images.append(obs["images"]["scene"])
        anns.append(env.unwrapped.annotations("scene"))
        names.append(env.task.name)
    for env in envs.values():
        env.close()
    return {"images": np.stack(images), "annotations": anns, "tasks": names, "first_seed": first_seed}


def frames(n: int, first_seed: int, image_size: int, cache: Path | None) -> tuple[dict, bool]:
    """``generate_frames``, cached under ``cache`` by its arguments; returns (frames, came from the cache)."""
    key = hashlib.sha1(json.dumps([CACHE_VERSION, n, first_seed, image_size]).encode()).hexdigest()[:12]
    path = cache / f"frames-{n}-{first_seed}-{image_size}-{key}.npz" if cache else None
    if path is not None and path.exists():
        with np.load(path) as z:
            return {
                "images": z["images"],
                "annotations": json.loads(str(z["annotations"])),
                "tasks": json.loads(str(z["tasks"])),
                "first_seed": first_seed,
            }, True
    pool = generate_frames(n, first_seed, image_size)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp.npz")
        np.savez_compressed(
            tmp,
            images=pool["images"],
            annotations=json.dumps(pool["annotations"]),
            tasks=json.dumps(pool["tasks"]),
        )
        tmp.replace(path)
    return pool, False


def pointing_examples(pool: dict, locations) -> list:
    """One "Point to the ..." Example per frame, made by the project's own task family (training/tasks)."""
    from training.episodes import EpisodeData
    from training.tasks.base import TaskContext
    from training.tasks.grounding import make_pointing

    ctx = TaskContext(history=0, locations=locations)
    out = []
    for i, (image, ann, task) in enumerate(zip(pool["images"], pool["annotations"], pool["tasks"])):
        ep = EpisodeData(
            source="pointing_proxy",
            index=i,
            images={"scene": image[None]},
            state=np.zeros((1, 8), np.float32),
            action=np.zeros((1, 4), np.float32),
            instruction=ann.get("instruction", ""),
            annotations=[ann],
            task=task,
        )
        # Seeded per frame: the same object and prompt whatever the model's bins.
        ex = make_pointing(ep, 0, np.random.default_rng(pool["first_seed"] + i), ctx)
        if ex is not None:
            out.append(ex)
    return out


def points_of(examples) -> np.ndarray:
    return np.array([ex.meta["point"] for ex in examples], np.float32)


def errors_px(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    return np.linalg.norm(pred - truth, axis=-1)


def summary_of(err: np.ndarray) -> dict:
    return {"mean_px": float(err.mean()), "median_px": float(np.median(err)),
            "within_3px": float((err <= WITHIN_PX).mean())}  # fmt: skip


# -- the reference CNN -----------------------------------------------------------------------------


def train_reference(train, test, args) -> dict:
    torch.manual_seed(args.seed)
    words = InstructionWords([ex.text for ex in train])
    images = torch.from_numpy(np.stack([ex.image for ex in train])).permute(0, 3, 1, 2).contiguous()
    text = words.batch([ex.text for ex in train])
    points = torch.from_numpy(points_of(train))
    size = float(images.shape[-1])
    test_images = torch.from_numpy(np.stack([ex.image for ex in test])).permute(0, 3, 1, 2).contiguous()
    test_text, test_points = words.batch([ex.text for ex in test]), points_of(test)
    net = FiLMSoftArgmaxCNN(words.dim, keypoints=1)
    opt = torch.optim.Adam(net.parameters(), args.ref_lr)
    cooldown = ClockCooldown(opt, max(args.minutes), args.cooldown)
    gen = torch.Generator().manual_seed(args.seed)

    def _reference_step() -> float:
        i = torch.randint(len(images), (args.ref_batch,), generator=gen)
        # MSE on pixel coordinates, as fractions of the image (Adam does not mind the scale; the
        # reported loss is in px^2).
        loss = F.mse_loss(net(images[i], text[i])[:, 0] / size, points[i] / size)
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item() * size**2

    @torch.no_grad()
    def evaluate() -> dict:
        net.eval()
        pred = torch.cat([net(test_images[j : j + 256], test_text[j : j + 256])[:, 0]
                          for j in range(0, len(test_images), 256)]).numpy()  # fmt: skip
        net.train()
        return summary_of(errors_px(pred, test_points))

    marks, _ = train_by_clock(cooldown.wrap(_reference_step), evaluate, args.minutes, "reference CNN")
    floor = float(points_of(train).var(0).sum())  # the MSE (px^2) of always answering the mean point
    return {
        "name": "reference_cnn",
        "parameters": sum(p.numel() for p in net.parameters()),
        "loss_floor": floor,
        "loss_units": "MSE px^2 (floor: variance of the training points)",
        "marks": mark_rows(marks),
    }


# -- the project's model ---------------------------------------------------------------------------


def parse_overrides(items: list[str]) -> dict:
    """``KEY=VALUE`` strings -> ModelConfig overrides (values read as YAML); an unknown key is an error."""
    from model.configuration import ModelConfig

    known = {f.name for f in dataclasses.fields(ModelConfig)}
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--override must be KEY=VALUE, got {item!r}")
        if key not in known:
            raise SystemExit(
                f"--override {item!r}: ModelConfig has no field {key!r} (model/configuration.py); "
                f"known fields: {', '.join(sorted(known))}"
            )
        out[key] = yaml.safe_load(value)
    return out


def build_model(train, args, defaults: dict = DEFAULT_OVERRIDES):
    """The preset + ``defaults`` + overrides, a text BPE trained on the examples' text (training/build.py), a fresh model."""
    from model.configuration import ModelConfig
    from model.modeling import UnifiedIO
    from model.processor import Processor
    from model.tokenizers.actions import ActionStats
    from training.build import text_corpus, train_text_tokenizer

    overrides = {**defaults, **parse_overrides(args.override)}
    if args.write == "action":
        overrides.setdefault("action_chunk_size", 1)
    try:
        config = ModelConfig.preset(args.model_preset, **overrides)
    except (TypeError, ValueError) as e:
        raise SystemExit(f"ModelConfig.preset({args.model_preset!r}, **{overrides}): {e}") from e
    tokenizer = train_text_tokenizer(text_corpus(train, []), config.text_vocab_size)
    # Written as actions: (row, column) fractions, as the camera action frame writes a waypoint's
    # foot, binned over the whole image (model/action_frame.py's pixel_stats), a height, a gripper.
    stats = (
        ActionStats(q01=[0.0, 0.0, 0.0, -1.0], q99=[1.0, 1.0, 0.2, 1.0]) if args.write == "action" else None
    )
    processor = Processor(config, text_tokenizer=tokenizer, action_stats=stats)
    torch.manual_seed(args.seed)
    return UnifiedIO(config), processor, overrides


def location_entropy(examples, processor) -> dict:
    """Entropy (nats) of the y and x location bins over the examples: where points usually are."""
    bins = processor.config.location_bins
    out = {}
    b = np.array([processor.locations.bins_in(ex.target_value)[:2] for ex in examples])
    for axis, col in (("y", b[:, 0]), ("x", b[:, 1])):
        p = np.bincount(col, minlength=bins) / len(col)
        p = p[p > 0]
        out[axis] = float(-(p * np.log(p)).sum())
    return out


@torch.no_grad()
def forced_points(model, processor, examples, batch: int = 64) -> np.ndarray:
    """Location-forced greedy decoding: argmax over the location bins at the y position, then at x.

    UnifiedIO.forward scores position t from the inputs before it (causal decoder), so the y logits
    do not depend on the placeholder target and the x logits see the decoded y: two forwards decode
    exactly as a constrained ``generate`` over the location segment would, with the training path's logits.
    """
    from model.packing import collate
    from model.vocabulary import EOS_ID

    vocab, loc = processor.vocab, processor.locations
    first = vocab.segments["location"].start - EOS_ID  # text logits start at EOS (Vocabulary.output_range)
    bins = processor.config.location_bins
    out = []
    for j in range(0, len(examples), batch):
        chunk = examples[j : j + batch]
        ys = np.zeros(len(chunk), int)
        for pos in (0, 1):
            forced = [
                dataclasses.replace(e, target_value=loc.token(int(y)) + loc.token(0))
                for e, y in zip(chunk, ys)
            ]
            b = collate([processor.encode(e) for e in forced], processor.config, packed=False)
            _, info = model(b, return_logits=True)
            picks = np.array([int(lg[pos, first : first + bins].argmax()) for lg in info["logits"]])
            if pos == 0:
                ys = picks
            else:
                xs = picks
        for e, y, x in zip(chunk, ys, xs):
            h, w = e.image.shape[:2]
            out.append([loc.dequantize(int(x), w), loc.dequantize(int(y), h)])
    return np.array(out, np.float32)


@torch.no_grad()
def generated_points(model, processor, examples, batch: int = 64) -> tuple[np.ndarray, int]:
    """The plain ``generate`` path (text, EOS-terminated): points where one decodes, NaN elsewhere."""
    out = []
    for j in range(0, len(examples), batch):
        chunk = examples[j : j + batch]
        texts = model.generate_from_examples(processor, chunk, "text", max_new_tokens=4)
        for e, t in zip(chunk, texts):
            pts = processor.locations.decode_points(t, e.image.shape[:2])
            out.append(pts[0] if pts else [np.nan, np.nan])
    pts = np.array(out, np.float32)
    return pts, int(np.isfinite(pts[:, 0]).sum())


def as_actions(examples) -> list:
    """The same prompts and frames with the point written as an action: [row, column, height, gripper]."""
    h = examples[0].image.shape[0] if examples else 1
    return [
        dataclasses.replace(
            e,
            target="action",
            target_value=np.array([[e.meta["point"][1] / h, e.meta["point"][0] / h, 0.1, -1.0]], np.float32),
        )
        for e in examples
    ]


@torch.no_grad()
def action_points(model, processor, examples, batch: int = 64) -> np.ndarray:
    """(x, y) px of the first action's row and column, decoded by ``generate`` on the action path."""
    out = []
    for j in range(0, len(examples), batch):
        chunk = examples[j : j + batch]
        for e, a in zip(chunk, model.generate_from_examples(processor, chunk, "action")):
            h, w = e.image.shape[:2]
            out.append([float(a[0][1]) * w, float(a[0][0]) * h])
    return np.array(out, np.float32)


def model_step(model, processor, examples: list, rng: np.random.Generator, batch: int, opt, sched) -> float:
    """One optimiser step of the project's model on ``batch`` examples drawn from ``examples``, packed
    as training packs them; returns the step's cross-entropy."""
    from model.packing import collate

    model.train()
    processor.training = True
    idx = rng.integers(len(examples), size=batch)
    loss, info = model(collate([processor.encode(examples[i]) for i in idx], model.config))
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    sched.step()
    return info["ce"]


def train_model(train, test, args) -> dict:
    from training.configuration import OptimConfig, ScheduleConfig
    from training.optim import build_optimizer, build_scheduler

    model, processor, overrides = build_model(train, args)
    cfg = model.config
    if args.write == "action":
        train, test = as_actions(train), as_actions(test)
    lr = args.lr if args.lr is not None else {"adamw": 1e-3, "adafactor": 1e-2}[args.optimizer]
    opt = build_optimizer(model.named_parameters(), OptimConfig(name=args.optimizer, lr=lr, grad_clip=1.0))
    sched = build_scheduler(opt, ScheduleConfig(name="constant", warmup_steps=args.warmup))
    cooldown = ClockCooldown(opt, max(args.minutes), args.cooldown, sched)
    rng = np.random.default_rng(args.seed)
    test_points = points_of(test)
    tokens = len(processor.encode(train[0]).target_ids)  # scored target tokens per example (y, x, EOS)
    entropy = location_entropy(train, processor) if args.write == "text" else None
    # Both bins of the true point, dequantised: the error a perfect classifier still makes.
    bins = (
        np.array([processor.locations.decode_points(ex.target_value, ex.image.shape[:2])[0] for ex in test])
        if args.write == "text"
        else None
    )

    def _model_step() -> float:
        return model_step(model, processor, train, rng, args.batch, opt, sched)

    def evaluate() -> dict:
        model.eval()
        processor.training = False
        if args.write == "action":
            pred = action_points(model, processor, test)
            return {**summary_of(errors_px(pred, test_points)), "decoded": len(test),
                    "prediction_spread_px": float(np.sqrt(pred.var(0).sum()))}  # fmt: skip
        pred = forced_points(model, processor, test)
        forced = errors_px(pred, test_points)
        gen, decoded = generated_points(model, processor, test)
        ok = np.isfinite(gen[:, 0])
        gen_err = errors_px(gen[ok], test_points[ok]) if decoded else np.array([np.nan])
        # ~0 when the model answers the same point for every frame (the failure the issue measured).
        spread = float(np.sqrt(pred.var(0).sum()))
        return {
            **summary_of(forced),
            "decoded": len(test),
            "prediction_spread_px": spread,
            "generate": {"decoded": decoded, "of": len(test), **summary_of(gen_err)},
        }

    marks, _ = train_by_clock(cooldown.wrap(_model_step), evaluate, args.minutes, "UIO-2 model")
    return {
        "name": "uio2",
        "config": {"preset": args.model_preset, "overrides": overrides},
        "parameters": model.num_parameters(),
        "optimizer": {
            "name": args.optimizer,
            "lr": lr,
            "batch": args.batch,
            "warmup_steps": args.warmup,
            "schedule": f"constant, cooldown over the last {args.cooldown:.0%} of the minutes",
            "grad_clip": 1.0,
        },  # fmt: skip
        "written_as": args.write,
        "location_bins": cfg.location_bins,
        "action_bins": cfg.action_bins,
        "location_entropy_nats": entropy,
        "loss_floor": (entropy["y"] + entropy["x"]) / tokens if entropy else None,
        "loss_units": f"cross-entropy, nats per scored target token ({tokens}: y, x, EOS; floor: marginal "
        "entropy of the bins / tokens)"
        if entropy
        else f"cross-entropy, nats per scored action token ({tokens}: row, column, height, gripper)",
        "bin_centre_error_px": float(errors_px(bins, test_points).mean()) if bins is not None else None,
        "marks": mark_rows(marks),
    }


# -- the run ---------------------------------------------------------------------------------------


def table(results: dict) -> str:
    """Mean / median px, share within 3 px and steps per side at each mark; the model's loss against its floor."""
    ref, uio = results["reference"], results["model"]
    lines = [
        f"{'min':>5} | {'reference px (med)':>18} {'<3px':>5} {'steps':>6} | {'model px (med)':>15} {'<3px':>5} "
        f"{'steps':>6} {'loss/floor':>11} {'gen ok':>7} | {'model/ref':>9}",
        "-" * 109,
    ]
    blank_ref = " " * 31
    for k in range(max(len(x["marks"]) for x in (ref, uio) if x)):
        r = ref["marks"][k] if ref else None
        m = uio["marks"][k] if uio else None
        rp = (
            f"{r['mean_px']:10.2f} ({r['median_px']:5.2f}) {r['within_3px']:5.0%} {r['steps']:6d}"
            if r
            else blank_ref
        )
        mp = ""
        if m:
            ratio = m["mean_px"] / r["mean_px"] if r else float("nan")
            gen = f"{m['generate']['decoded']}/{m['generate']['of']}" if "generate" in m else "action"
            floor = f"{uio['loss_floor']:<5.2f}" if uio["loss_floor"] is not None else "  -  "
            mp = (
                f"{m['mean_px']:7.2f} ({m['median_px']:5.2f}) {m['within_3px']:5.0%} {m['steps']:6d} "
                f"{m['train_loss']:5.2f}/{floor} {gen:>7} | {ratio:9.2f}"
            )
        minutes = (r or m)["minutes"]
        lines.append(f"{minutes:5g} | {rp} | {mp}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 6.0],
                        help="training minutes (one thread) after which both models are evaluated")  # fmt: skip
    parser.add_argument("--train-frames", type=int, default=6000, help="training frames (seeds < 10000)")
    parser.add_argument("--test-frames", type=int, default=300, help="held-out frames (seeds >= 10000)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--model-preset", default="tiny")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a ModelConfig field, repeatable (defaults: image_conv_stem=true patch_size=8 "
                        "location_bins=64)")  # fmt: skip
    parser.add_argument("--optimizer", choices=("adamw", "adafactor"), default="adamw")
    parser.add_argument("--lr", type=float, default=None, help="default: 1e-3 (adamw), 1e-2 (adafactor)")
    parser.add_argument("--batch", type=int, default=32, help="the model's batch")
    parser.add_argument("--warmup", type=int, default=10, help="the model's linear warmup steps")
    parser.add_argument("--cooldown", type=float, default=0.2,
                        help="both sides: the lr falls linearly to 0 over this last fraction of the minutes")  # fmt: skip
    parser.add_argument("--ref-batch", type=int, default=64)
    parser.add_argument("--ref-lr", type=float, default=1e-3)
    parser.add_argument("--only", choices=("model", "reference"), default=None, help="train one side only")
    parser.add_argument("--write", choices=("text", "action"), default="text",
                        help="the model writes the point as location tokens (text) or as a camera-frame "
                        "action (row, column, height, gripper; see --override action_bins=N)")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache", default=str(CACHE), help="frame cache folder ('' to regenerate)")
    parser.add_argument("--quick", action="store_true", help="smoke run: ~100 frames, a few seconds each")
    parser.add_argument("--out", default=str(RESULTS / "pointing_proxy.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = [0.03, 0.06]
        args.train_frames, args.test_frames = min(args.train_frames, 96), min(args.test_frames, 24)
    parse_overrides(args.override)  # fail on a bad key before minutes of frame generation
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(1)
    notes = machine_notes()
    cache = Path(args.cache) if args.cache else None

    t0 = time.perf_counter()
    train_pool, cached_train = frames(args.train_frames, 0, args.image_size, cache)
    test_pool, cached_test = frames(args.test_frames, HELD_OUT_SEED, args.image_size, cache)
    data_s = time.perf_counter() - t0
    from model.tokenizers.locations import LocationTokenizer

    # The examples' location tokens depend on the bins; the model rebuilds them with its own below.
    bins = {**DEFAULT_OVERRIDES, **parse_overrides(args.override)}.get("location_bins", 1000)
    train = pointing_examples(train_pool, LocationTokenizer(bins))
    test = pointing_examples(test_pool, LocationTokenizer(bins))
    mean_point = points_of(train).mean(0)
    baseline = summary_of(errors_px(np.broadcast_to(mean_point, (len(test), 2)), points_of(test)))
    print(f"{len(train)} training / {len(test)} held-out pointing examples ({data_s:.0f} s to "
          f"{'load' if cached_train and cached_test else 'generate'}); always answering the mean point: "
          f"{baseline['mean_px']:.2f} px", flush=True)  # fmt: skip

    results = {"reference": None, "model": None}
    if args.only != "model":
        results["reference"] = train_reference(train, test, args)
    if args.only != "reference":
        results["model"] = train_model(train, test, args)
    printed = table(results)
    print(printed)
    ratios = []
    if results["reference"] and results["model"]:
        ratios = [
            {"minutes": m["minutes"], "model_over_reference": m["mean_px"] / r["mean_px"]}
            for r, m in zip(results["reference"]["marks"], results["model"]["marks"])
        ]
    summary = {
        "arguments": vars(args),
        "data": {
            "train_frames": args.train_frames,
            "test_frames": args.test_frames,
            "train_examples": len(train),
            "test_examples": len(test),
            "image_size": args.image_size,
            "tasks": sorted(set(train_pool["tasks"])),
            "train_seeds": [0, args.train_frames],
            "held_out_seeds": [HELD_OUT_SEED, HELD_OUT_SEED + args.test_frames],
            "seconds": data_s,
            "cached": cached_train and cached_test,
        },
        "mean_location_baseline": baseline,
        "reference": results["reference"],
        "model": results["model"],
        "ratio": ratios,
        "table": printed,
        "machine": {**notes, "load_average_end": list(os.getloadavg())},
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"mean-location baseline {baseline['mean_px']:.2f} px; wrote {args.out}")
    return summary


if __name__ == "__main__":
    main()
