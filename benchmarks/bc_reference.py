"""A competent reference for the demo's success: a FiLM CNN with a spatial soft-argmax head, cloned on the same data.

    uio2 collect --env reach --episodes 300 --image-size 64 --control waypoint --action-noise 0.3 \\
        --out runs/bc_data/reach_wp
    python benchmarks/bc_reference.py --dataset runs/bc_data/reach_wp --labels waypoint --minutes 2 4 \\
        [--checkpoint runs/demo/train/checkpoints/step-0002600]

What can a small pixel policy learn from these demonstrations in CPU minutes? The network is the
competent reference of issue 14: 4 conv layers (3x3, 32 channels, GroupNorm, ReLU) whose channels are
FiLM-modulated after each layer by the instruction's colour and shape words, a spatial soft-argmax
head (8 keypoints: where in the image each feature map peaks) and an MLP on the keypoints and the
scaled robot state; MSE to the label, Adam 1e-3, batch 64, one torch thread. The flattened feature
map this script used before reached 4% on Reach at 4 minutes where a soft-argmax head reached 50%
(velocity labels, issue 14): the readout decides.

``--labels`` picks what is cloned: ``velocity`` (per-step moves) or ``waypoint`` (the expert's
absolute grasp-point target + gripper, executed by the env's controller). A dataset collected with
``uio2 collect --control waypoint`` carries both (the action is the waypoint, the velocity rides
along as the ``velocity`` feature; a velocity-mode dataset carries ``waypoint``). Evaluation runs the
env in the matching control mode on held-out seeds, after each of ``--minutes`` of training (the
clock stops while it evaluates). With ``--checkpoint`` a UIO-2 policy is evaluated on the same seeds.

If the reference succeeds where the UIO-2 policy does not, the model or its training is at fault;
if neither does, the data or the compute is. Writes benchmarks/results/bc_reference_<labels>.json.

The network and the wall-clock training loop are shared with benchmarks/pointing_proxy.py.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).parent / "results"
STATE_DIMS = [0, 1, 2, 6, 7]  # grasp point and gripper, as the demo (configs/demo_train.yaml)
LABELS = ("velocity", "waypoint")
# The words that say which object: colours (envs/scene.py) and the shape nouns with their synonyms
# (envs/instructions.py: a pad is also a "mat" or "square", a bin a "box" or "tray").
COLOURS = ("red", "green", "blue", "yellow", "purple", "orange", "cyan", "white")
SHAPES = {
    "cube": "cube",
    "ball": "ball",
    "bin": "bin",
    "box": "bin",
    "tray": "bin",
    "pad": "pad",
    "mat": "pad",
    "square": "pad",
    "button": "button",
    "drawer": "drawer",
}
SHAPE_NAMES = sorted(set(SHAPES.values()))
MENTIONS = 2  # "stack the red cube on the blue cube" names two objects, in order


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class InstructionWords:
    """FiLM input: colour + shape of the first objects the text names (in order), and a bag of its other words.

    The object slots are what the note's reference conditions on; the bag keeps verbs apart that no
    colour or shape separates ("open the drawer" / "close the drawer").
    """

    def __init__(self, texts: list[str]):
        named = set(COLOURS) | set(SHAPES)
        self.other = {w: i for i, w in enumerate(sorted({w for t in texts for w in words(t)} - named))}
        self.slot = len(COLOURS) + len(SHAPE_NAMES)
        self.dim = MENTIONS * self.slot + len(self.other)

    def __call__(self, text: str) -> np.ndarray:
        v = np.zeros(self.dim, np.float32)
        mention, colour, shape = 0, False, False
        for w in words(text):
            is_colour, is_shape = w in COLOURS, w in SHAPES
            if (is_colour and (colour or shape)) or (is_shape and shape):
                mention, colour, shape = mention + 1, False, False  # a new object begins
            if (is_colour or is_shape) and mention < MENTIONS:
                base = mention * self.slot
                if is_colour:
                    v[base + COLOURS.index(w)] = 1.0
                    colour = True
                else:
                    v[base + len(COLOURS) + SHAPE_NAMES.index(SHAPES[w])] = 1.0
                    shape = True
            elif w in self.other:
                v[MENTIONS * self.slot + self.other[w]] = 1.0
        return v

    def batch(self, texts: list[str]) -> torch.Tensor:
        return torch.from_numpy(np.stack([self(t) for t in texts]))


class FiLMSoftArgmaxCNN(nn.Module):
    """4 conv layers, FiLM after each from the instruction's words, spatial soft-argmax to K keypoints.

    The first layer halves the 64 px frame, the rest keep 32 x 32 (the note's network: ~6 steps/s at batch 64
    on one thread; stride 2 twice runs 3x faster on a coarser map).

    ``forward(image uint8 (B, 3, H, W), text (B, text_dim)) -> (B, K, 2)`` keypoints (x, y) in input pixels.
    """

    def __init__(
        self, text_dim: int, keypoints: int = 1, width: int = 32, strides=(2, 1, 1, 1), embed: int = 64
    ):
        super().__init__()
        chans = [3] + [width] * len(strides)
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=s, padding=1) for i, s in enumerate(strides)
        )
        self.norms = nn.ModuleList(nn.GroupNorm(8, width) for _ in strides)
        self.film = nn.Sequential(
            nn.Linear(text_dim, embed), nn.ReLU(), nn.Linear(embed, 2 * width * len(strides))
        )
        nn.init.zeros_(self.film[-1].weight)  # start as the plain CNN: gamma = 0 (scale 1), beta = 0
        nn.init.zeros_(self.film[-1].bias)
        self.heatmap = nn.Conv2d(width, keypoints, 1)

    def forward(self, image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        size_h, size_w = image.shape[-2:]
        h = image.float() / 127.5 - 1.0
        film = self.film(text).chunk(2 * len(self.convs), dim=1)
        for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
            gamma, beta = film[2 * i], film[2 * i + 1]
            h = F.relu(norm(conv(h)) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        logits = self.heatmap(h)  # (B, K, h, w)
        b, k, fh, fw = logits.shape
        p = logits.flatten(2).softmax(-1).view(b, k, fh, fw)
        # Each cell's centre in input pixels: the expected position is sub-pixel, unlike an argmax.
        ys = (torch.arange(fh, dtype=p.dtype) + 0.5) * (size_h / fh)
        xs = (torch.arange(fw, dtype=p.dtype) + 0.5) * (size_w / fw)
        return torch.stack([(p.sum(2) * xs).sum(-1), (p.sum(3) * ys).sum(-1)], -1)


class ControlNet(nn.Module):
    """The control reference: 8 keypoints (image fractions in [-1, 1]) + the scaled state -> MLP -> action."""

    def __init__(self, text_dim: int, state_dim: int, action_dim: int, keypoints: int = 8, hidden: int = 256):
        super().__init__()
        self.cnn = FiLMSoftArgmaxCNN(text_dim, keypoints)
        self.head = nn.Sequential(
            nn.Linear(2 * keypoints + state_dim, hidden),
            nn.ReLU(),
            nn.Linear(hidden, hidden),
            nn.ReLU(),
            nn.Linear(hidden, action_dim),
        )

    def forward(self, image: torch.Tensor, state: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        size = torch.tensor(image.shape[-1:-3:-1], dtype=torch.float32)  # (W, H)
        kp = self.cnn(image, text) / size * 2.0 - 1.0
        return self.head(torch.cat([kp.flatten(1), state], 1))


class Mark(NamedTuple):
    """What the clock saw at one mark: training minutes, steps, the mean recent loss, and the evaluation."""

    minutes: float
    steps: int
    train_loss: float
    result: dict


def train_by_clock(
    step: Callable[[], float],
    evaluate: Callable[[], dict],
    minutes: list[float],
    desc: str,
    loss_window: int = 50,
) -> tuple[list[Mark], list[float]]:
    """Call ``step`` (one optimiser step, returns its loss) until each mark of ``minutes`` of *training* time,
    and ``evaluate`` there; evaluation time is not counted. Returns the marks and every step's loss."""
    marks, losses = [], []
    elapsed = 0.0
    total = max(minutes) * 60
    with tqdm(total=round(total), desc=desc, unit="s", leave=False) as bar:
        for mark in sorted(minutes):
            while elapsed < mark * 60:
                t0 = time.perf_counter()
                losses.append(float(step()))
                dt = time.perf_counter() - t0
                elapsed += dt
                bar.update(min(int(elapsed), round(total)) - bar.n)
                if len(losses) % 20 == 0:
                    bar.set_postfix(step=len(losses), loss=f"{np.mean(losses[-loss_window:]):.4g}")
            result = evaluate()
            marks.append(Mark(mark, len(losses), float(np.mean(losses[-loss_window:])), result))
    return marks, losses


class ClockCooldown:
    """The lr of a run trained by the clock (``train_by_clock``): as set (or as ``scheduler`` sets it),
    then linearly down to 0 over the last ``fraction`` of ``minutes`` of training: a warmup-stable-decay
    cooldown, as schedule.decay_fraction gives a training run. Call ``step(seconds)`` after each
    optimiser (and scheduler) step with that step's duration."""

    def __init__(self, optimizer: torch.optim.Optimizer, minutes: float, fraction: float, scheduler=None):
        if not 0.0 <= fraction <= 1.0:
            raise ValueError(f"cooldown fraction must be in [0, 1], got {fraction}")
        self.optimizer, self.scheduler = optimizer, scheduler
        self.total, self.fraction = minutes * 60.0, fraction
        self.base = [g["lr"] for g in optimizer.param_groups]
        self.elapsed = 0.0

    def factor(self) -> float:
        if self.fraction == 0.0:
            return 1.0
        return min(1.0, max(0.0, (self.total - self.elapsed) / (self.fraction * self.total)))

    def wrap(self, step: Callable[[], float]) -> Callable[[], float]:
        """``step`` (one optimiser step, returns its loss), timed and followed by ``self.step``."""

        def timed() -> float:
            t0 = time.perf_counter()
            try:
                return step()
            finally:
                self.step(time.perf_counter() - t0)

        return timed

    def step(self, seconds: float) -> None:
        self.elapsed += seconds
        lrs = self.scheduler.get_last_lr() if self.scheduler is not None else self.base
        for group, lr in zip(self.optimizer.param_groups, lrs):
            group["lr"] = lr * self.factor()


def machine_notes() -> dict:
    """Where the figures were measured (the CPU is shared: the load average says how busy it was)."""
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }


# -- behaviour cloning ---------------------------------------------------------------------------------


class Demo(NamedTuple):
    """One demonstration as the reference reads it: frames, state, the chosen label, instruction, task."""

    images: np.ndarray  # (T, H, W, 3) uint8, scene camera
    state: np.ndarray  # (T, S) float32, all state features
    label: np.ndarray  # (T, D) float32: velocity or waypoint
    instruction: str
    task: str


def dataset_control(reader) -> str:
    """The control mode a LeRobotDataset was collected in: a waypoint dataset's actions are x, y, z."""
    names = reader.info["features"]["action"].get("names") or []
    return "waypoint" if list(names[:3]) == ["x", "y", "z"] or "velocity" in reader.extra_keys else "velocity"


def load_demos(paths: list[str], labels: str) -> list[Demo]:
    """Every episode of the LeRobotDataset folders, with ``labels`` taken from the action or the extra feature."""
    from envs.dataset import LeRobotDataset

    if labels not in LABELS:
        raise ValueError(f"labels must be one of {LABELS}, got {labels!r}")
    demos = []
    for path in paths:
        reader = LeRobotDataset(Path(path))
        control = dataset_control(reader)
        if control != labels and labels not in reader.extra_keys:
            raise ValueError(
                f"{path}: a {control}-mode dataset without a {labels!r} feature (extras: {reader.extra_keys}); "
                f"collect it again with this version of `uio2 collect` to record {labels} labels"
            )
        for i in tqdm(range(len(reader)), desc=f"read {Path(path).name}", unit="ep", leave=False):
            ep = reader.episode(i, cameras=["scene"])
            label = ep.action if control == labels else ep.extras[labels]
            demos.append(
                Demo(ep.frames["scene"], np.asarray(ep.state, np.float32), np.asarray(label, np.float32),
                     ep.instruction, ep.task)
            )  # fmt: skip
    if not demos:
        raise ValueError(f"no episodes in {paths}")
    return demos


def quantile_stats(x: np.ndarray):
    from training.action_stats import ActionStats

    return ActionStats(
        q01=np.quantile(x, 0.01, 0).tolist(),
        q99=np.quantile(x, 0.99, 0).tolist(),
        mean=x.mean(0).tolist(),
        std=x.std(0).tolist(),
    )


class Reference:
    """The trained control network as a policy: ``act(obs) -> (D,)`` float32 command in the label's units.

    Velocity labels are already in [-1, 1]; waypoint labels (metres) are scaled by their q01/q99 like the
    state, and mapped back when acting.
    """

    def __init__(self, demos: list[Demo], labels: str, batch: int = 64, lr: float = 1e-3, seed: int = 0,
                 state_dims=STATE_DIMS):  # fmt: skip
        from model.processor import scale_state

        torch.manual_seed(seed)
        self.labels, self.state_dims = labels, list(state_dims)
        self.words = InstructionWords([d.instruction for d in demos])
        # The same q01/q99 scaling the UIO-2 processor gives its state token.
        states = np.concatenate([d.state[:, self.state_dims] for d in demos])
        state_stats = quantile_stats(states)
        self.scale_state = lambda s: scale_state(s, state_stats)
        label = np.concatenate([d.label for d in demos]).astype(np.float32)
        self.label_stats = quantile_stats(label) if labels == "waypoint" else None
        self.images = torch.from_numpy(np.concatenate([d.images for d in demos])).permute(0, 3, 1, 2)
        self.state = torch.from_numpy(self.scale_state(states))
        self.label = torch.from_numpy(self.scale_label(label))
        self.text = torch.from_numpy(
            np.concatenate([np.repeat(self.words(d.instruction)[None], len(d.images), 0) for d in demos])
        )
        self.net = ControlNet(self.words.dim, self.state.shape[1], self.label.shape[1])
        self.opt = torch.optim.Adam(self.net.parameters(), lr)
        self.batch = batch
        self.gen = torch.Generator().manual_seed(seed)
        self.losses: list[float] = []

    def scale_label(self, a: np.ndarray) -> np.ndarray:
        if self.label_stats is None:
            return a.astype(np.float32)
        from model.processor import scale_state

        return scale_state(a, self.label_stats)

    def unscale_label(self, a: np.ndarray) -> np.ndarray:
        if self.label_stats is None:
            return a
        lo, hi = np.asarray(self.label_stats.q01), np.asarray(self.label_stats.q99)
        return ((a + 1.0) / 2.0 * (hi - lo) + lo).astype(np.float32)

    def step(self) -> float:
        self.net.train()
        i = torch.randint(len(self.images), (self.batch,), generator=self.gen)
        loss = F.mse_loss(self.net(self.images[i], self.state[i], self.text[i]), self.label[i])
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        self.losses.append(loss.item())
        return self.losses[-1]

    def fit(self, steps: int) -> Reference:
        for _ in tqdm(range(steps), desc="train reference CNN", unit="step", leave=False):
            self.step()
        return self

    @torch.no_grad()
    def act(self, obs: dict) -> np.ndarray:
        self.net.eval()
        image = torch.from_numpy(np.ascontiguousarray(obs["images"]["scene"])).permute(2, 0, 1)[None]
        state = torch.from_numpy(self.scale_state(np.asarray(obs["state"], np.float32)[self.state_dims]))[
            None
        ]
        text = torch.from_numpy(self.words(obs["instruction"]))[None]
        out = self.unscale_label(self.net(image, state, text)[0].numpy())
        if self.labels == "velocity":
            return np.clip(out, -1.0, 1.0).astype(np.float32)
        from envs.scene import WORKSPACE_HIGH, WORKSPACE_LOW

        low, high = np.r_[WORKSPACE_LOW, -1.0], np.r_[WORKSPACE_HIGH, 1.0]
        return np.clip(out, low, high).astype(np.float32)


def success_rate(act, reset, task: str, seeds, image_size: int, control: str) -> list[bool]:
    from envs.tabletop import TabletopEnv

    env = TabletopEnv(task=task, image_size=image_size, cameras=("scene",), control=control)
    wins = []
    for seed in tqdm(seeds, desc=f"eval {task} ({control})", unit="ep", leave=False):
        obs, _ = env.reset(seed=seed)
        reset()
        done = False
        for _ in range(env.task.max_episode_steps):
            obs, _, done, _, _ = env.step(act(obs))
            if done:
                break
        wins.append(bool(done))
    env.close()
    return wins


def evaluate(act, reset, tasks, seeds, image_size: int, control: str) -> dict:
    from agent.evaluate import wilson_interval

    out = {}
    for task in tasks:
        wins = success_rate(act, reset, task, seeds, image_size, control)
        lo, hi = wilson_interval(sum(wins), len(wins))
        out[task] = {"success_rate": float(np.mean(wins)), "ci95": [lo, hi], "episodes": len(wins)}
    return out


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", nargs="+", required=True, help="LeRobotDataset folders (uio2 collect)")
    parser.add_argument("--labels", choices=LABELS, default="waypoint", help="what to clone and how to act")
    parser.add_argument("--minutes", type=float, nargs="+", default=[2.0, 4.0, 8.0],
                        help="training minutes (one thread) after which to evaluate")  # fmt: skip
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--episodes", type=int, default=50, help="held-out episodes per task at each mark")
    parser.add_argument(
        "--seed", type=int, default=10_000, help="first held-out seed (training uses seeds below)"
    )
    parser.add_argument("--state-dims", type=int, nargs="+", default=STATE_DIMS)
    parser.add_argument("--checkpoint", default=None, help="a UIO-2 checkpoint to evaluate beside it")
    parser.add_argument("--quick", action="store_true", help="smoke run: a few seconds, 2 episodes")
    parser.add_argument("--out", default=None, help="default: benchmarks/results/bc_reference_<labels>.json")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.episodes = [0.05], min(args.episodes, 2)
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(1)
    notes = machine_notes()

    demos = load_demos(args.dataset, args.labels)
    tasks = sorted({d.task for d in demos})
    size = demos[0].images.shape[1]
    seeds = range(args.seed, args.seed + args.episodes)
    ref = Reference(demos, args.labels, args.batch, args.lr, seed=0, state_dims=args.state_dims)

    def report(result: dict, name: str, control: str) -> None:
        for task, r in result.items():
            lo, hi = r["ci95"]
            print(f"{name}: {task:10s} {r['success_rate']:5.0%}  (95% CI {lo:.0%}-{hi:.0%}, "
                  f"{r['episodes']} episodes, {control} control)", flush=True)  # fmt: skip

    def eval_reference() -> dict:
        result = evaluate(ref.act, lambda: None, tasks, seeds, size, args.labels)
        report(result, f"reference_cnn after {len(ref.losses)} steps", args.labels)
        return result

    t0 = time.perf_counter()
    marks, losses = train_by_clock(ref.step, eval_reference, args.minutes, f"reference ({args.labels})")
    print(f"{'min':>5} {'steps':>6} {'loss':>8}  success per task ({args.labels} labels and control)")
    for m in marks:
        rates = "  ".join(f"{t} {r['success_rate']:.0%}" for t, r in m.result.items())
        print(f"{m.minutes:5g} {m.steps:6d} {m.train_loss:8.4f}  {rates}")
    results = {
        "reference_cnn": [
            {"minutes": m.minutes, "steps": m.steps, "train_loss": m.train_loss, "success": m.result}
            for m in marks
        ]
    }
    if args.checkpoint:
        from agent.policy import Policy

        uio = Policy.from_pretrained(args.checkpoint)
        # The checkpoint says what its commands mean (policy.json); its env runs in that mode.
        control = getattr(uio.config, "control", "velocity")
        results["uio2"] = evaluate(uio.select_action, uio.reset, tasks, seeds, size, control)
        results["uio2_control"] = control
        report(results["uio2"], "uio2", control)
    summary = {
        "datasets": args.dataset,
        "labels": args.labels,
        "control": args.labels,
        "episodes_per_task": {t: sum(d.task == t for d in demos) for t in tasks},
        "frames": int(sum(len(d.images) for d in demos)),
        "batch": args.batch,
        "lr": args.lr,
        "state_dims": args.state_dims,
        "held_out_seeds": [args.seed, args.seed + args.episodes],
        "steps_per_s": marks[-1].steps / (marks[-1].minutes * 60),
        "final_loss": float(np.mean(losses[-100:])),
        "wall_minutes": (time.perf_counter() - t0) / 60,
        "success": results,
        "machine": {**notes, "load_average_end": list(os.getloadavg())},
        "quick": args.quick,
    }
    out = Path(args.out or RESULTS / f"bc_reference_{args.labels}.json")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary, indent=2))
    print(
        f"reference: {marks[-1].steps} steps in {marks[-1].minutes:g} min ({summary['steps_per_s']:.1f}/s); wrote {out}"
    )
    return summary


if __name__ == "__main__":
    main()
