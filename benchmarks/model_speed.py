"""Model speed: decode latency with vs without the KV cache, encoder time vs input length,
parameters and FLOPs per token for every preset.

    .venv/bin/python benchmarks/model_speed.py [--config small] [--new-tokens 64] [--repeats 3]

Prints a table and writes benchmarks/results/model_speed.json. On a shared CPU, compare the
numbers of one run with each other, not with another run's.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from model.configuration import PRESETS, ModelConfig
from model.generation import generate
from model.modeling import UnifiedIO
from model.packing import collate
from model.processor import EncodedExample

RESULTS = Path(__file__).parent / "results" / "model_speed.json"


def text_example(n_tokens: int, vocab_start: int, target: str = "text") -> EncodedExample:
    ids = torch.arange(n_tokens) % 200 + vocab_start
    return EncodedExample(
        target=target,
        objective="S",
        text_ids=ids,
        target_ids=torch.zeros(0, dtype=torch.long),
        loss_mask=torch.zeros(0),
        hidden=torch.zeros(0, dtype=torch.bool),
    )


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def flops_per_token(cfg: ModelConfig, context: int) -> dict[str, float]:
    """Forward FLOPs per token (2 per multiply-add): matmuls of the blocks + attention scores + logits."""
    d, inner = cfg.d_model, cfg.n_heads * cfg.head_dim
    attn_proj = 4 * d * inner
    mlp = 3 * d * cfg.mlp_dim
    enc = cfg.encoder_layers * (2 * (attn_proj + mlp) + 4 * context * inner)
    dec = cfg.decoder_layers * (2 * (2 * attn_proj + mlp) + 4 * context * inner * 2)
    logits = 2 * d * (cfg.text_vocab_size + cfg.location_bins + cfg.num_sentinels + 1)
    return {"encoder_per_token": float(enc), "decoder_per_token": float(dec + logits)}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="small", choices=PRESETS[:3])
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--prompt-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--out", type=Path, default=RESULTS)
    # One thread: on a shared 2-core machine two threads fight the neighbours and time 10x worse.
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = ModelConfig.preset(args.config)
    model = UnifiedIO(cfg).eval()
    text_start = model.vocab.segments["text"].start
    results: dict = {
        "config": args.config,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
    }

    # Decode latency: fixed length (an action-style request) so both ways decode the same count.
    # At batch 1 a cached step is bound by reading the weights (memory bandwidth), so the cache
    # pays off less than at batch 8, where recomputation's extra matmul work dominates.
    n = args.new_tokens
    results["decode"] = []
    for rows in (1, 8):
        batch = collate([text_example(args.prompt_tokens, text_start, "action")] * rows, cfg, packed=False)
        times = {True: [], False: []}
        with torch.no_grad():
            for _ in range(args.repeats):  # interleaved, so both see the same neighbours
                for use_cache in (True, False):
                    times[use_cache].append(
                        best_of(
                            lambda u=use_cache, b=batch: generate(
                                model, b, "action", num_tokens=n, use_cache=u
                            ),
                            1,
                        )
                    )
        cached, full = min(times[True]), min(times[False])
        results["decode"].append(
            {
                "batch": rows,
                "new_tokens": n,
                "ms_per_token_kv_cache": 1e3 * cached / n,
                "ms_per_token_recompute": 1e3 * full / n,
                "speedup": full / cached,
            }
        )

    # Encoder time vs number of input tokens (one row, text tokens).
    enc_rows = []
    for tokens in (64, 128, 256, 512):
        b = collate(
            [text_example(tokens, text_start)],
            ModelConfig.preset(args.config, max_encoder_len=max(512, tokens)),
            packed=False,
        )
        with torch.no_grad():
            t = best_of(lambda b=b: model.encode(b), args.repeats)
        enc_rows.append({"tokens": tokens, "ms": 1e3 * t, "us_per_token": 1e6 * t / tokens})
    results["encoder"] = enc_rows

    # Parameters and FLOPs per token for each preset (meta device: nothing allocated).
    sizes = {}
    for name in PRESETS:
        c = ModelConfig.preset(name)
        with torch.device("meta"):
            m = UnifiedIO(c)
        sizes[name] = {
            "params": m.num_parameters(),
            "params_without_embeddings": m.num_parameters(exclude_embeddings=True),
            **flops_per_token(c, context=c.max_encoder_len),
        }
    results["presets"] = sizes

    for d in results["decode"]:
        print(
            f"[{args.config}] decode {n} tokens, batch {d['batch']}: {d['ms_per_token_kv_cache']:.2f} ms/token "
            f"with KV cache, {d['ms_per_token_recompute']:.2f} without -> {d['speedup']:.2f}x"
        )
    for r in enc_rows:
        print(f"encoder {r['tokens']:4d} tokens: {r['ms']:8.2f} ms ({r['us_per_token']:.1f} us/token)")
    print(f"{'preset':>6} {'params':>14} {'no-emb':>14} {'enc GFLOP/tok':>14} {'dec GFLOP/tok':>14}")
    for name, s in sizes.items():
        print(
            f"{name:>6} {s['params']:>14,} {s['params_without_embeddings']:>14,} "
            f"{s['encoder_per_token'] / 1e9:>14.4f} {s['decoder_per_token'] / 1e9:>14.4f}"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=lambda x: float(np.asarray(x))))
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
