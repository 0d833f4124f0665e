"""Closed-loop success after training, by running the demo pipeline end to end.

    python benchmarks/success.py                      # our suite: collect -> train tiny -> eval text + speech
    python benchmarks/success.py --env metaworld      # Meta-World MT10 from pixels and instruction (longer run)
    python benchmarks/success.py episodes_per_task=200 "train_overrides=[trainer.max_steps=6000]"

Writes benchmarks/results/success_<env>.json: success per task for text and spoken
instructions, the training time and steps, and the whole run's minutes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from agent.demo import DemoConfig, demo
from envs.metaworld_env import MT10_TASKS
from training.config import load_config

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env", choices=["tabletop", "metaworld"], default="tabletop")
    parser.add_argument("overrides", nargs="*", help="DemoConfig overrides (key=value)")
    args = parser.parse_args()
    base = [f"out=runs/success_{args.env}"]
    if args.env == "metaworld":
        base += ["env=metaworld", f"tasks=[{', '.join(MT10_TASKS)}]", "episodes_per_task=50"]
    cfg = load_config(DemoConfig, None, base + list(args.overrides))
    summary = demo(cfg)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"success_{args.env}.json"
    out.write_text(json.dumps(summary, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
