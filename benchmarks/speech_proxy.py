"""The fast proxy for hearing: does the model learn what a spoken instruction names as fast as a small CNN,
on the same clips and minutes?

    python benchmarks/speech_proxy.py                                  # the demo's model, as configured
    python benchmarks/speech_proxy.py --override audio_conv_stem=true --minutes 1 3 6
    python benchmarks/speech_proxy.py --quick                          # smoke run, seconds

The demo's policy heard its instruction far worse than it read it (issue #14: 15% of episodes with
speech, 44% with text; its own transcripts of held-out instructions were one constant sentence). What
a policy must get from the clip are a few words: the colours of the objects named, in order (which cube
goes on which), and for the drawer whether to open or close it. This measures exactly that, on the
instructions and voices of our tabletop suite (espeak-ng, envs/speech.py), side by side in one run, each
side on one torch thread for the same wall-clock minutes:

- the reference: a small CNN + GRU keyword reader on the normalised log-mel the model reads (4 conv layers,
  32 channels, GroupNorm + ReLU down to 8 mels x 64 frames, a bidirectional GRU over time), three
  classification heads (first colour, second colour, drawer direction), Adam 1e-3, batch 64;
- the project's model on speech recognition alone, through the project's own path: training/tasks/speech.py's
  ASR examples (the clip in, the instruction as text out), Processor.encode, packed collate,
  UnifiedIO.forward's loss, training/optim.py's optimiser. Its answer is read off its greedy transcript.

Training clips use seeds < 10000, held-out ones seeds >= 10000 (the same sentences can recur: the voice,
speed and instance differ). After each of ``--minutes`` it reports, on the held-out clips, the share with
all key words right (every colour in order and the drawer's direction), the first colour alone, and for the
model the share of exact transcripts. Chance for the first colour is about 1 in 9 (8 colours, or none).
Writes benchmarks/results/speech_proxy.json.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from torch import nn
from torch.nn import functional as F
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bc_reference import ClockCooldown, machine_notes, train_by_clock  # noqa: E402
from benchmarks.pointing_proxy import build_model, mark_rows, model_step, parse_overrides  # noqa: E402

RESULTS = Path(__file__).parent / "results"
HELD_OUT_SEED = 10_000
TASK_NAMES = ("reach", "push", "pick_place", "stack", "drawer", "button")
OPEN_WORDS, CLOSE_WORDS = {"open", "out"}, {"close", "closed", "shut"}
DEMO_CONFIG = Path(__file__).resolve().parents[1] / "configs" / "demo_train.yaml"


def demo_overrides() -> dict:
    """The demo's model: configs/demo_train.yaml's ModelConfig overrides (the tiny preset's)."""
    return dict(yaml.safe_load(DEMO_CONFIG.read_text())["model"]["overrides"])


# -- clips -----------------------------------------------------------------------------------------


def colour_names() -> list[str]:
    from envs.scene import COLOURS

    return list(COLOURS)


def keys_of(text: str) -> tuple[tuple[str, ...], str]:
    """What a policy must hear: the colour words in order, and "open" / "close" / "" for the drawer."""
    colours = set(colour_names())
    words = text.lower().replace(",", " ").split()
    said = tuple(w for w in words if w in colours)
    direction = "open" if OPEN_WORDS & set(words) else "close" if CLOSE_WORDS & set(words) else ""
    return said, direction


def clips(n: int, first_seed: int) -> dict:
    """``n`` spoken instructions of the six tasks (round robin): text, 16 kHz waveform, the normalised
    log-mel the model reads, with voice and speed drawn from the seed's generator as the env draws them."""
    from envs.speech import SPEEDS, VOICES, pad_or_cut, synthesize
    from envs.tasks import TASKS
    from model.audio import log_mel_spectrogram
    from model.processor import normalise_log_mel

    texts, waves, mels = [], [], []
    for i in tqdm(range(n), desc=f"speech clips from seed {first_seed}", leave=False):
        rng = np.random.default_rng(first_seed + i)
        text = TASKS[TASK_NAMES[i % len(TASK_NAMES)]]().sample(rng).instruction
        voice, speed = VOICES[rng.integers(len(VOICES))], int(SPEEDS[rng.integers(len(SPEEDS))])
        wave = pad_or_cut(synthesize(text, voice, speed)).astype(np.float32)
        texts.append(text)
        waves.append(wave)
        mels.append(normalise_log_mel(log_mel_spectrogram(wave, fit=True)).numpy().astype(np.float16))
    return {"texts": texts, "waves": waves, "mels": np.stack(mels)}


def key_labels(texts: list[str]) -> torch.Tensor:
    """(N, 3) class indices: first colour, second colour (0: none, else 1 + index), direction (0, open, close)."""
    names = colour_names()
    rows = []
    for text in texts:
        said, direction = keys_of(text)
        c = [1 + names.index(w) for w in said[:2]] + [0, 0]
        rows.append([c[0], c[1], {"": 0, "open": 1, "close": 2}[direction]])
    return torch.tensor(rows)


def scores(pred_keys: list, true_keys: list) -> dict:
    """Held-out shares: all key words right, the first colour right."""
    first = [p[0][:1] == t[0][:1] for p, t in zip(pred_keys, true_keys)]
    return {
        "keys_right": float(np.mean([p == t for p, t in zip(pred_keys, true_keys)])),
        "first_colour_right": float(np.mean(first)),
    }


# -- the reference ----------------------------------------------------------------------------------


class KeywordCNN(nn.Module):
    """Log-mel (B, 128, 256) -> conv stack -> bidirectional GRU over time -> three classification heads."""

    def __init__(self, n_colours: int, channels: int = 32, hidden: int = 128):
        super().__init__()
        layers, c_in = [], 1
        for stride in [(2, 2), (2, 2), (2, 1), (2, 1)]:  # 128 x 256 -> 8 x 64
            layers += [nn.Conv2d(c_in, channels, 3, stride, 1), nn.GroupNorm(8, channels), nn.ReLU()]
            c_in = channels
        self.conv = nn.Sequential(*layers)
        self.gru = nn.GRU(channels * 8, hidden, batch_first=True, bidirectional=True)
        self.heads = nn.ModuleList([nn.Linear(2 * hidden, k) for k in (n_colours + 1, n_colours + 1, 3)])

    def forward(self, mel: torch.Tensor) -> list[torch.Tensor]:
        x = self.conv(mel[:, None])  # (B, C, 8, 64)
        x = x.flatten(1, 2).transpose(1, 2)  # (B, 64, C * 8)
        _, h = self.gru(x)
        h = torch.cat([h[0], h[1]], -1)
        return [head(h) for head in self.heads]


def train_reference(train: dict, test: dict, args) -> dict:
    torch.manual_seed(args.seed)
    names = colour_names()
    mels = torch.from_numpy(train["mels"]).float()
    labels = key_labels(train["texts"])
    test_mels = torch.from_numpy(test["mels"]).float()
    true_keys = [keys_of(t) for t in test["texts"]]
    net = KeywordCNN(len(names))
    opt = torch.optim.Adam(net.parameters(), args.ref_lr)
    cooldown = ClockCooldown(opt, max(args.minutes), args.cooldown)
    gen = torch.Generator().manual_seed(args.seed)

    def _reference_step() -> float:
        i = torch.randint(len(mels), (args.ref_batch,), generator=gen)
        loss = sum(F.cross_entropy(logits, labels[i, k]) for k, logits in enumerate(net(mels[i])))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    @torch.no_grad()
    def evaluate() -> dict:
        net.eval()
        out = [
            torch.cat(o) for o in zip(*(net(test_mels[j : j + 128]) for j in range(0, len(test_mels), 128)))
        ]
        net.train()
        c1, c2, d = (o.argmax(-1).tolist() for o in out)
        pred = [
            (tuple(names[c - 1] for c in (a, b) if c > 0), ("", "open", "close")[e])
            for a, b, e in zip(c1, c2, d)
        ]
        return scores(pred, true_keys)

    marks, _ = train_by_clock(cooldown.wrap(_reference_step), evaluate, args.minutes, "reference CNN")
    return {
        "name": "keyword_cnn",
        "parameters": sum(p.numel() for p in net.parameters()),
        "marks": mark_rows(marks),
    }


# -- the project's model ---------------------------------------------------------------------------


def asr_examples(pool: dict, rng: np.random.Generator) -> list:
    from model.example import Example
    from training.tasks.templates import prompt

    return [
        Example(target="text", target_value=text, text=prompt("asr", rng), audio=wave, meta={"task": "asr"})
        for text, wave in zip(pool["texts"], pool["waves"])
    ]


def train_model(train: dict, test: dict, args) -> dict:
    from training.configuration import OptimConfig, ScheduleConfig
    from training.optim import build_optimizer, build_scheduler

    rng = np.random.default_rng(args.seed)
    train_ex, test_ex = asr_examples(train, rng), asr_examples(test, rng)
    args.write = "text"
    model, processor, overrides = build_model(train_ex, args, demo_overrides())
    opt = build_optimizer(model.named_parameters(), OptimConfig(name="adamw", lr=args.lr, grad_clip=1.0))
    sched = build_scheduler(opt, ScheduleConfig(name="constant", warmup_steps=args.warmup))
    cooldown = ClockCooldown(opt, max(args.minutes), args.cooldown, sched)
    true_keys = [keys_of(t) for t in test["texts"]]

    def _model_step() -> float:
        return model_step(model, processor, train_ex, rng, args.batch, opt, sched)

    @torch.no_grad()
    def evaluate() -> dict:
        model.eval()
        processor.training = False
        said = []
        for j in range(0, len(test_ex), 32):
            said += model.generate_from_examples(processor, test_ex[j : j + 32], target="text")
        exact = np.mean([s.strip().lower() == t.strip().lower() for s, t in zip(said, test["texts"])])
        return {
            **scores([keys_of(s) for s in said], true_keys),
            "exact_transcripts": float(exact),
            "distinct_transcripts": len(set(said)),
            "example": {"heard": said[0], "said": test["texts"][0]},
        }

    marks, _ = train_by_clock(cooldown.wrap(_model_step), evaluate, args.minutes, "UIO-2 model (ASR)")
    return {
        "name": "uio2_asr",
        "config": {"preset": args.model_preset, "overrides": overrides},
        "parameters": model.num_parameters(),
        "optimizer": {"name": "adamw", "lr": args.lr, "batch": args.batch, "warmup_steps": args.warmup},
        "marks": mark_rows(marks),
    }


# -- the run ---------------------------------------------------------------------------------------


def table(results: dict) -> str:
    ref, uio = results["reference"], results["model"]
    lines = [
        f"{'min':>5} | {'ref keys':>8} {'colour1':>7} {'steps':>6} | {'model keys':>10} {'colour1':>7} "
        f"{'exact':>6} {'distinct':>8} {'steps':>6} {'loss':>6}",
        "-" * 84,
    ]
    for k in range(max(len(x["marks"]) for x in (ref, uio) if x)):
        r = ref["marks"][k] if ref else None
        m = uio["marks"][k] if uio else None
        rp = f"{r['keys_right']:8.0%} {r['first_colour_right']:7.0%} {r['steps']:6d}" if r else " " * 23
        mp = (
            f"{m['keys_right']:10.0%} {m['first_colour_right']:7.0%} {m['exact_transcripts']:6.0%} "
            f"{m['distinct_transcripts']:8d} {m['steps']:6d} {m['train_loss']:6.3f}"
            if m
            else ""
        )
        lines.append(f"{(r or m)['minutes']:5g} | {rp} | {mp}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, nargs="+", default=[1.0, 3.0, 6.0],
                        help="training minutes (one thread) after which both sides are evaluated")  # fmt: skip
    parser.add_argument("--train-clips", type=int, default=3000, help="training clips (seeds < 10000)")
    parser.add_argument("--test-clips", type=int, default=300, help="held-out clips (seeds >= 10000)")
    parser.add_argument("--model-preset", default="tiny")
    parser.add_argument("--override", action="append", default=[], metavar="KEY=VALUE",
                        help="a ModelConfig field, repeatable (defaults: configs/demo_train.yaml's)")  # fmt: skip
    parser.add_argument("--lr", type=float, default=1e-3, help="the model's AdamW learning rate")
    parser.add_argument("--batch", type=int, default=32, help="the model's batch")
    parser.add_argument("--warmup", type=int, default=10, help="the model's linear warmup steps")
    parser.add_argument("--cooldown", type=float, default=0.2,
                        help="both sides: the lr falls linearly to 0 over this last fraction of the minutes")  # fmt: skip
    parser.add_argument("--ref-batch", type=int, default=64)
    parser.add_argument("--ref-lr", type=float, default=1e-3)
    parser.add_argument("--only", choices=("model", "reference"), default=None, help="train one side only")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="smoke run: ~60 clips, a few seconds each")
    parser.add_argument("--out", default=str(RESULTS / "speech_proxy.json"))
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = [0.03, 0.06]
        args.train_clips, args.test_clips = min(args.train_clips, 60), min(args.test_clips, 12)
    parse_overrides(args.override)  # fail on a bad key before the clips are made
    torch.set_num_threads(1)
    notes = machine_notes()
    t0 = time.perf_counter()
    train, test = clips(args.train_clips, 0), clips(args.test_clips, HELD_OUT_SEED)
    data_s = time.perf_counter() - t0
    print(f"{args.train_clips} training / {args.test_clips} held-out clips ({data_s:.0f} s)", flush=True)

    results = {"reference": None, "model": None}
    if args.only != "model":
        results["reference"] = train_reference(train, test, args)
    if args.only != "reference":
        results["model"] = train_model(train, test, args)
    printed = table(results)
    print(printed)
    summary = {
        "arguments": vars(args),
        "data": {
            "train_clips": args.train_clips,
            "test_clips": args.test_clips,
            "tasks": list(TASK_NAMES),
            "train_seeds": [0, args.train_clips],
            "held_out_seeds": [HELD_OUT_SEED, HELD_OUT_SEED + args.test_clips],
            "distinct_train_sentences": len(set(train["texts"])),
            "held_out_sentences_seen_in_training": float(
                np.mean([t in set(train["texts"]) for t in test["texts"]])
            ),
            "seconds": data_s,
        },
        "reference": results["reference"],
        "model": results["model"],
        "table": printed,
        "machine": {**notes, "load_average_end": list(os.getloadavg())},
        "wall_minutes": (time.perf_counter() - t0) / 60,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(f"wrote {args.out}")
    return summary


if __name__ == "__main__":
    main()
