"""Does a checkpoint find the object an instruction names? Two probes on held-out layouts, in seconds.

    python benchmarks/grounding.py --checkpoint runs/demo/train/checkpoints/step-0002600

The demo's policy fails when it heads the wrong way from the first step (README, Status). These
probes measure that directly, without closed-loop rollouts:

- pointing: "Point to the {name}." on a held-out frame, pixel error of the decoded point against
  the annotated one, beside the error of always answering the image centre (the baseline to beat);
- first move: the sign of the policy's first x / y command against the scripted expert's, on the
  tasks whose direction depends on the named object, beside the best constant guess (always the
  expert's commoner sign on these layouts: the hand starts in front, so +y is usually right).

Writes benchmarks/results/grounding.json.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

RESULTS = Path(__file__).parent / "results"
DIRECTED = ["reach", "button", "push", "pick_place", "stack"]  # the first move depends on the named object


def pointing_errors(policy, env, seeds) -> dict:
    """Pixel error of the decoded point per held-out frame (NaN when no point decodes), and the centre's."""
    errors, centre = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        h, w = obs["images"][policy.config.camera].shape[:2]
        visible = [o for o in env.unwrapped.annotations(policy.config.camera)["objects"] if o["visible"]]
        o = visible[seed % len(visible)]
        text = policy.generate(obs, "text", f"Point to the {o['name']}.")
        points = policy.processor.locations.decode_points(text, (h, w))
        truth = np.asarray(o["point"])
        errors.append(float(np.linalg.norm(np.asarray(points[0]) - truth)) if points else float("nan"))
        centre.append(float(np.linalg.norm(np.array([w / 2, h / 2]) - truth)))
    return {"errors": errors, "centre": centre}


def first_moves(policy, env, seeds) -> tuple[np.ndarray, np.ndarray]:
    """(len(seeds), 2) signs of the expert's and of the policy's first x / y command."""
    from envs.experts import get_expert

    want_signs, got_signs = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        expert = get_expert(env)
        expert.reset()
        want = expert.act(obs)[:2]
        policy.reset()
        got = policy.predict_action_chunk(obs)[0, :2]
        if getattr(policy, "control", "velocity") == "waypoint":  # a target: the move is toward it
            hand = env.unwrapped.scene.grasp_pos()[:2]
            want, got = want - hand, got - hand
        want_signs.append(np.sign(want))
        got_signs.append(np.sign(got))
    return np.asarray(want_signs), np.asarray(got_signs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--checkpoint", required=True, help="a checkpoint directory (uio2 train / demo)")
    parser.add_argument("--episodes", type=int, default=20, help="held-out layouts per task")
    parser.add_argument("--seed", type=int, default=10_000, help="first held-out seed")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--out", default=str(RESULTS / "grounding.json"))
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    from agent.policy import Policy
    from envs.tabletop import TabletopEnv

    policy = Policy.from_pretrained(args.checkpoint)
    seeds = range(args.seed, args.seed + args.episodes)
    t0 = time.perf_counter()
    per_task = {}
    for task in tqdm(DIRECTED, desc="grounding", unit="task"):
        env = TabletopEnv(
            task=task, image_size=args.image_size, cameras=(policy.config.camera,), control=policy.control
        )
        point = pointing_errors(policy, env, seeds)
        want, got = first_moves(policy, env, seeds)
        agree = want == got
        constant = np.maximum((want > 0).mean(0), (want < 0).mean(0))  # the best constant sign per axis
        env.close()
        decoded = [e for e in point["errors"] if np.isfinite(e)]
        per_task[task] = {
            "point_error_px": float(np.mean(decoded)) if decoded else None,
            "points_decoded": len(decoded) / len(seeds),
            "centre_error_px": float(np.mean(point["centre"])),
            "first_move_agreement_x": float(agree[:, 0].mean()),
            "first_move_agreement_y": float(agree[:, 1].mean()),
            "constant_agreement_x": float(constant[0]),
            "constant_agreement_y": float(constant[1]),
        }
        print(task, json.dumps(per_task[task]))
    errors = [v["point_error_px"] for v in per_task.values() if v["point_error_px"] is not None]
    summary = {
        "checkpoint": args.checkpoint,
        "episodes_per_task": args.episodes,
        "image_size": args.image_size,
        "point_error_px": float(np.mean(errors)) if errors else None,
        "centre_error_px": float(np.mean([v["centre_error_px"] for v in per_task.values()])),
        "points_decoded": float(np.mean([v["points_decoded"] for v in per_task.values()])),
        "first_move_agreement": float(
            np.mean(
                [(v["first_move_agreement_x"] + v["first_move_agreement_y"]) / 2 for v in per_task.values()]
            )
        ),
        "constant_first_move_agreement": float(
            np.mean([(v["constant_agreement_x"] + v["constant_agreement_y"]) / 2 for v in per_task.values()])
        ),
        "per_task": per_task,
        "seconds": time.perf_counter() - t0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(summary, indent=2))
    print(
        f"point error {summary['point_error_px']} px (image centre: {summary['centre_error_px']:.1f} px, "
        f"decoded {summary['points_decoded']:.0%}); first move agrees with the expert "
        f"{summary['first_move_agreement']:.0%} (best constant sign: "
        f"{summary['constant_first_move_agreement']:.0%}); wrote {args.out}"
    )


if __name__ == "__main__":
    main()
