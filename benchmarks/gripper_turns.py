"""Does a trained waypoint policy grasp and let go where its demonstrations do?

    python benchmarks/gripper_turns.py --checkpoint runs/demo/train/checkpoints/step-0002600 \
        --dataset runs/demo/dataset --tasks pick_place stack [--finger-opening 0.09]

On the frames around each gripper turn of the first ``--episodes`` demonstrations of each task (the
frames the policy was trained on), given the dataset's own observation and the last waypoint reached
(training's ``previous_waypoints``), the policy is asked for its chunk; reported per turn (grasp or
release) and frame offset from it (-3 .. +1): how often the first command's gripper agrees with the
label, the xy error of its waypoint, and the model's probability of the label teacher-forced
(``p_label``: how far the decision has been learned; greedy decoding takes it only above about
0.5). ``--finger-opening`` overrides the state's finger opening (feature 6 of our suite's state)
on every probed frame: if the answers follow it, the policy copies
the fingers into its command instead of reading the stage (the demo's policy, before
data.gripper_turn_distance 0.4: releases 0 of 15, and 9 of 15 with the opening set to open).
Writes benchmarks/results/gripper_turns.json (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).parent / "results"
OFFSETS = range(-3, 2)
FINGER_OPENING = 6  # the state feature of our suite's finger opening (envs/tabletop.py)
GRIPPER = 3  # the action feature of the gripper command (x, y, z, gripper)


def probe(policy, episodes, finger_opening: float | None) -> dict:
    """{kind: {offset: {"n", "gripper_agrees", "xy_cm"}}} over the gripper turns of ``episodes``."""
    from training.keyframes import with_previous_action
    from training.tasks.base import action_chunk, gripper_turns

    rows = defaultdict(list)
    depth = policy.config.previous_action_depth
    for ep, marked in zip(episodes, with_previous_action(episodes, depth=depth)):
        grip = ep.action[:, 3]
        turns = np.flatnonzero(gripper_turns(grip))
        for t0 in turns[np.r_[True, np.diff(turns) > 1]]:  # the turn itself, not the frame after
            kind = "grasp" if grip[t0] > 0 else "release"
            for t in [t0 + k for k in OFFSETS if 0 <= t0 + k < len(grip)]:
                session = policy.new_session()
                for waypoint in marked.state[t, ep.state.shape[1] :].reshape(depth, -1)[::-1]:
                    session.set_reached_waypoint(waypoint)  # the oldest first
                state = ep.state[t].copy()
                if finger_opening is not None:
                    state[FINGER_OPENING] = finger_opening
                obs = {
                    "images": {"scene": ep.images["scene"][t]},
                    "state": state,
                    "instruction": ep.instruction,
                }
                label_p = label_probability(policy, session, obs, action_chunk(ep, t, policy.chunk_size))
                got = policy.predict_action_chunk_batch([obs], [session])[0][0]
                rows[(kind, t - t0)].append(
                    (
                        float(np.sign(got[3]) == np.sign(grip[t])),
                        100 * float(np.linalg.norm(got[:2] - ep.action[t, :2])),
                        label_p,
                    )
                )
    out: dict = defaultdict(dict)
    for (kind, k), r in sorted(rows.items()):
        r = np.array(r)
        out[kind][f"{k:+d}"] = {
            "n": len(r),
            "gripper_agrees": float(r[:, 0].mean()),
            "xy_cm": float(r[:, 1].mean()),
            "p_label": float(r[:, 2].mean()),
        }
    return dict(out)


def label_probability(policy, session, observation: dict, chunk: np.ndarray) -> float:
    """The model's probability of the demonstration's gripper label at the chunk's first step,
    teacher-forced on the demonstration's x, y, z before it: how far the decision has been learned
    (greedy decoding takes it only above about 0.5; seed 1 of the demo sat at 0.3 on releases)."""
    import torch

    from model.packing import collate

    example = session._action_example(observation)
    example.target_value = chunk.astype(np.float32)
    encoded = policy.processor.encode(example)
    with torch.inference_mode():
        _, info = policy.model(collate([encoded], policy.model.config, packed=False), return_logits=True)
    logits = info["logits"][0][GRIPPER]  # the first step's gripper token (x, y, z, gripper)
    start = policy.processor.vocab.segments["action"].start
    label = int(encoded.target_ids[GRIPPER]) - start
    return float(torch.softmax(logits, -1)[label])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--dataset", required=True, help="the folder holding one LeRobotDataset per task")
    parser.add_argument("--tasks", nargs="+", default=["pick_place", "stack"])
    parser.add_argument("--episodes", type=int, default=15)
    parser.add_argument("--finger-opening", type=float, default=None)
    parser.add_argument("--out", default=str(RESULTS / "gripper_turns.json"))
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    from agent.policy import Policy
    from training.configuration import DataConfig
    from training.sources import load_episodes

    torch.set_num_threads(1)
    policy = Policy.from_pretrained(args.checkpoint)
    result = {"checkpoint": args.checkpoint, "finger_opening": args.finger_opening, "tasks": {}}
    for task in args.tasks:
        cfg = DataConfig(dataset=str(Path(args.dataset) / task), control="waypoint", history=0)
        result["tasks"][task] = by_kind = probe(
            policy, load_episodes(cfg)[: args.episodes], args.finger_opening
        )
        for kind, offsets in by_kind.items():
            line = "  ".join(
                f"{k}: {v['gripper_agrees']:.0%} p {v['p_label']:.2f} ({v['xy_cm']:.1f} cm)"
                for k, v in offsets.items()
            )
            print(f"{task:10s} {kind:7s} gripper agrees at turn {line}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
