"""Packing benchmark: useful (non-pad) tokens per second, packed vs padded to the batch maximum.

    python benchmarks/packing.py [--steps 20] [--batch 32] [--preset tiny] [--precision bf16] [--threads 1]

Both layouts train on the *same* encoded examples of the default task mixture (live
expert rollouts of our suite), alternating step by step in one process so that a
noisy neighbour slows both alike. A step is forward + backward + optimiser step.
Useful tokens are the real encoder + decoder tokens, identical for both layouts;
the padded layout pays for (rows x longest row) slots. The per-example input
encoders (ViT over current and history frames, AST, resamplers) cost the same in
both layouts, so their time is also measured alone and ``transformer_speedup``
reports the packed/padded ratio of the rest. Writes benchmarks/results/packing.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from model.packing import collate  # noqa: E402
from training.config import load_config  # noqa: E402
from training.configuration import TrainConfig  # noqa: E402
from training.datamodule import UIO2DataModule  # noqa: E402
from training.optim import build_optimizer  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results" / "packing.json"


def layouts(encoded, config) -> dict[str, dict]:
    return {"packed": collate(encoded, config, packed=True), "padded": collate(encoded, config, packed=False)}


def step_time(model, opt, batch, precision: str) -> float:
    device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"
    if device_type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss, _ = model(batch)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    if device_type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def encoder_time(model, batch, precision: str) -> float:
    """Forward + backward of the per-example input encoders (ViT, AST, resamplers, state) alone.

    They run on the same stacked inputs whatever the layout, so packing cannot speed them up;
    subtracting their time isolates the transformer, the part packing changes.
    """
    device_type = "cuda" if next(model.parameters()).is_cuda else "cpu"
    if device_type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    with torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        feats = model._encoder_features(batch)
    sum(f.float().mean() for f in feats.values()).backward()
    model.zero_grad(set_to_none=True)
    if device_type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def run(args) -> dict:
    from training.sources import collect_rollouts
    from training.trainer import default_synthesizer, fresh_model

    cfg = load_config(
        TrainConfig,
        None,
        [f"model.preset={args.preset}", f"trainer.batch_size={args.batch}", "model.text_corpus_examples=500"]
        + args.overrides,
    )
    episodes = collect_rollouts(cfg.data)
    synthesize = default_synthesizer()
    model, processor = fresh_model(cfg, episodes, synthesize)
    model.to(args.device)
    dm = UIO2DataModule(cfg, processor, episodes, synthesize=synthesize)
    stream = dm.stream()
    opt = build_optimizer(model.named_parameters(), cfg.optim)

    times: dict[str, list[float]] = {"packed": [], "padded": [], "encoders": []}
    stats: dict[str, list[dict]] = {"packed": [], "padded": []}
    for b in range(args.steps + 1):  # batch 0 warms both layouts up and is not timed
        encoded = [stream.encode(i) for i in stream.indices(b)]
        order = ("packed", "padded") if b % 2 else ("padded", "packed")
        batches = {
            n: to_device(batch, args.device) for n, batch in layouts(encoded, processor.config).items()
        }
        for name in order:
            t = step_time(model, opt, batches[name], args.precision)
            if b > 0:
                times[name].append(t)
                stats[name].append(batches[name]["stats"])
        if b > 0:
            times["encoders"].append(encoder_time(model, batches["packed"], args.precision))
    out = {}
    encoders = sum(times["encoders"])
    for name in ("packed", "padded"):
        useful = sum(s["enc_tokens"] + s["dec_tokens"] for s in stats[name])
        out[name] = {
            "useful_tokens_per_s": useful / sum(times[name]),
            "step_s_median": statistics.median(times[name]),
            "rows_per_batch": statistics.mean(s["rows"] for s in stats[name]),
            "token_utilisation": statistics.mean(s["utilisation"] for s in stats[name]),
            "useful_tokens": useful,
            # The same tokens over the time left once the layout-independent input encoders are taken out.
            "transformer_useful_tokens_per_s": useful / max(sum(times[name]) - encoders, 1e-9),
        }
    return {
        "what": "useful (non-pad) encoder+decoder tokens/s of a training step, packed vs padded to batch max",
        "preset": args.preset,
        "batch_examples": args.batch,
        "timed_steps_per_layout": args.steps,
        "precision": args.precision,
        "torch_threads": torch.get_num_threads(),
        "overrides": list(args.overrides),
        "device": args.device
        if args.device != "cpu"
        else f"cpu ({os.cpu_count()} cores, {platform.machine()})",
        "mixture": {k: round(v, 3) for k, v in dm.mixture.weights.items()},
        "skipped_families": dm.skipped_families,
        "input_encoders_s_median": statistics.median(times["encoders"]),
        **out,
        "speedup": out["packed"]["useful_tokens_per_s"] / out["padded"]["useful_tokens_per_s"],
        "transformer_speedup": out["packed"]["transformer_useful_tokens_per_s"]
        / out["padded"]["transformer_useful_tokens_per_s"],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--precision", choices=["bf16", "fp32"], default="bf16")
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        help="torch intra-op threads (1 on a shared CPU: oversubscription swamps timings)",
    )
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("overrides", nargs="*", help="TrainConfig overrides, e.g. data.episodes_per_env=2")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    result = run(args)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    p, q = result["packed"], result["padded"]
    print(
        f"packed {p['useful_tokens_per_s']:.0f} useful tok/s (utilisation {p['token_utilisation']:.2f}, "
        f"{p['rows_per_batch']:.1f} rows) vs padded {q['useful_tokens_per_s']:.0f} "
        f"(utilisation {q['token_utilisation']:.2f}, {q['rows_per_batch']:.1f} rows): {result['speedup']:.2f}x; "
        f"input encoders {result['input_encoders_s_median']:.2f} s of the {p['step_s_median']:.2f} s packed step; "
        f"transformer alone {result['transformer_speedup']:.2f}x"
    )
    print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
