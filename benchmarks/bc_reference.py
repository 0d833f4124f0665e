"""A reference point for the demo's success: a plain CNN behaviour-cloning policy on the same data.

    python benchmarks/bc_reference.py --dataset runs/demo/dataset/reach runs/demo/dataset/button \\
        --steps 3000 [--checkpoint runs/demo/train/checkpoints/step-0003500]

What can a small pixel policy learn from these demonstrations in CPU minutes? The reference is the
usual language-conditioned BC recipe (a 4-layer CNN whose channels are FiLM-modulated by a
bag-of-words of the instruction, BC-Z / RT-1 style, an MLP head on the flattened feature map and the
scaled state, MSE to the expert's action, Adam). It reads the scene camera and the same state
features as the demo. With ``--checkpoint`` the UIO-2 policy is evaluated on the same held-out seeds
in the same run, side by side.

If the reference succeeds where the UIO-2 policy does not, the model or its training is at fault;
if neither does, the data or the compute is. Writes benchmarks/results/bc_reference.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

RESULTS = Path(__file__).parent / "results"
STATE_DIMS = [0, 1, 2, 6, 7]  # grasp point and gripper, as the demo (configs/demo_train.yaml)


def words(text: str) -> list[str]:
    return re.findall(r"[a-z]+", text.lower())


class FiLMCNN(nn.Module):
    """Conv layers whose channels the instruction scales and shifts; a spatial flatten keeps where."""

    def __init__(self, vocab: int, state_dim: int, action_dim: int, size: int, width: int = 64):
        super().__init__()
        chans = [3, 32, width, width, width]
        self.convs = nn.ModuleList(
            nn.Conv2d(chans[i], chans[i + 1], 3, stride=1 if i == 0 else 2, padding=1) for i in range(4)
        )
        self.film = nn.Linear(vocab, 2 * sum(chans[1:]))
        self.split = chans[1:]
        side = size // 8
        self.head = nn.Sequential(
            nn.Linear(width * side * side + state_dim, 256), nn.ReLU(), nn.Linear(256, action_dim)
        )

    def forward(self, image: torch.Tensor, state: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        h = image.float() / 255.0 - 0.5
        gammas_betas = self.film(text).split([2 * c for c in self.split], dim=1)
        for conv, gb in zip(self.convs, gammas_betas):
            gamma, beta = gb.chunk(2, dim=1)
            h = F.relu(conv(h) * (1 + gamma[:, :, None, None]) + beta[:, :, None, None])
        return self.head(torch.cat([h.flatten(1), state], dim=1))


class Reference:
    """The trained CNN as a policy: ``act(obs) -> (D,)`` float32 inside [-1, 1]."""

    def __init__(self, episodes, steps: int, batch: int, seed: int):
        torch.manual_seed(seed)
        self.vocab = {w: i for i, w in enumerate(sorted({w for e in episodes for w in words(e.instruction)}))}
        from model.processor import scale_state
        from training.action_stats import compute_state_stats

        # The same q01/q99 scaling the UIO-2 processor gives its state token.
        stats = compute_state_stats(episodes, STATE_DIMS)
        self.scale = lambda s: scale_state(s, stats)
        states = np.concatenate([e.state[:, STATE_DIMS] for e in episodes])
        images = torch.from_numpy(np.concatenate([e.images[e.main_camera] for e in episodes])).permute(
            0, 3, 1, 2
        )
        state = torch.from_numpy(self.scale(states))
        action = torch.from_numpy(np.concatenate([e.action for e in episodes]).astype(np.float32))
        text = torch.from_numpy(
            np.concatenate([np.repeat(self.bow(e.instruction)[None], len(e), 0) for e in episodes])
        )
        self.net = FiLMCNN(len(self.vocab), state.shape[1], action.shape[1], images.shape[-1])
        opt = torch.optim.Adam(self.net.parameters(), 1e-3)
        self.losses = []
        for _ in tqdm(range(steps), desc="train reference CNN", unit="step"):
            i = torch.randint(len(images), (batch,))
            loss = F.mse_loss(self.net(images[i], state[i], text[i]), action[i])
            opt.zero_grad()
            loss.backward()
            opt.step()
            self.losses.append(float(loss))
        self.net.eval()

    def bow(self, text: str) -> np.ndarray:
        v = np.zeros(len(self.vocab), np.float32)
        for w in words(text):
            if w in self.vocab:
                v[self.vocab[w]] = 1.0
        return v

    @torch.no_grad()
    def act(self, obs: dict) -> np.ndarray:
        image = torch.from_numpy(obs["images"]["scene"]).permute(2, 0, 1)[None]
        state = torch.from_numpy(self.scale(obs["state"][STATE_DIMS]))[None]
        out = self.net(image, state, torch.from_numpy(self.bow(obs["instruction"]))[None])[0].numpy()
        return np.clip(out, -1.0, 1.0)


def success_rate(act, reset, task: str, seeds, image_size: int) -> list[bool]:
    from envs.tabletop import TabletopEnv

    env = TabletopEnv(task=task, image_size=image_size, cameras=("scene",))
    wins = []
    for seed in tqdm(seeds, desc=f"eval {task}", unit="ep", leave=False):
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


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dataset", nargs="+", required=True, help="LeRobotDataset folders (the demo's)")
    parser.add_argument("--steps", type=int, default=3000)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=30, help="held-out episodes per task")
    parser.add_argument("--seed", type=int, default=10_000, help="first held-out seed (the demo's)")
    parser.add_argument("--checkpoint", default=None, help="a UIO-2 checkpoint to evaluate beside it")
    parser.add_argument("--out", default=str(RESULTS / "bc_reference.json"))
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    torch.set_num_threads(1)
    from agent.evaluate import wilson_interval
    from training.sources import load_dataset

    episodes = [ep for path in args.dataset for ep in load_dataset(path)]
    tasks = sorted({ep.task for ep in episodes})
    size = episodes[0].images[episodes[0].main_camera].shape[1]
    t0 = time.perf_counter()
    ref = Reference(episodes, args.steps, args.batch, seed=0)
    train_s = time.perf_counter() - t0
    policies = {"reference_cnn": (ref.act, lambda: None)}
    if args.checkpoint:
        from agent.policy import Policy

        uio = Policy.from_pretrained(args.checkpoint)
        policies["uio2"] = (uio.select_action, uio.reset)
    seeds = range(args.seed, args.seed + args.episodes)
    results = {}
    for name, (act, reset) in policies.items():
        results[name] = {}
        for task in tasks:
            wins = success_rate(act, reset, task, seeds, size)
            lo, hi = wilson_interval(sum(wins), len(wins))
            results[name][task] = {
                "success_rate": float(np.mean(wins)),
                "ci95": [lo, hi],
                "episodes": len(wins),
            }
            print(
                f"{name:14s} {task:10s} {np.mean(wins):5.0%}  (95% CI {lo:.0%}-{hi:.0%}, {len(wins)} episodes)"
            )
    summary = {
        "datasets": args.dataset,
        "episodes_per_task": {t: sum(e.task == t for e in episodes) for t in tasks},
        "frames": int(sum(len(e) for e in episodes)),
        "steps": args.steps,
        "batch": args.batch,
        "train_minutes": train_s / 60,
        "final_loss": float(np.mean(ref.losses[-100:])),
        "success": results,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"reference trained {args.steps} steps in {train_s / 60:.1f} min; wrote {args.out}")


if __name__ == "__main__":
    main()
