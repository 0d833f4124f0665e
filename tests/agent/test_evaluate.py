import json
import math

import pytest

from agent.evaluate import EvalConfig, evaluate, wilson_interval
from agent.policy import Policy


def test_wilson_interval_known_values():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)
    assert wilson_interval(0, 10)[0] == 0.0 and wilson_interval(10, 10)[1] == 1.0
    assert wilson_interval(0, 0) == (0.0, 1.0)


@pytest.mark.slow
@pytest.mark.parametrize("instruction", ["text", "speech"])
def test_closed_loop_report_and_videos(tiny_checkpoint, tmp_path, instruction):
    policy = Policy.from_pretrained(tiny_checkpoint)
    cfg = EvalConfig(
        env="tabletop",
        tasks=["reach", "button"],
        episodes=2,
        num_envs=2,
        max_steps=6,
        videos=1,
        instruction=instruction,
        out=str(tmp_path),
    )
    report = evaluate(policy, cfg)
    saved = json.loads((tmp_path / "report.json").read_text())
    assert saved["config"]["instruction"] == instruction
    assert [t["task"] for t in saved["tasks"]] == ["reach", "button"]
    for task in saved["tasks"]:
        assert task["episodes"] == 2
        assert [r["seed"] for r in task["rollouts"]] == [cfg.seed, cfg.seed + 1]
        assert all(1 <= r["steps"] <= 6 for r in task["rollouts"])
        # How each failed episode ended, counted: six steps end none of them done.
        assert all(r["stage"] and r["stage"] != "done" for r in task["rollouts"] if not r["success"])
        assert sum(task["failures"].values()) == task["episodes"] - task["successes"]
        lo, hi = task["ci95"]
        assert 0.0 <= lo <= task["success_rate"] <= hi <= 1.0
        videos = [r["video"] for r in task["rollouts"] if r["video"]]
        assert len(videos) == 1
    assert math.isclose(report["mean_success_rate"], saved["mean_success_rate"])
    table = (tmp_path / "report.md").read_text()
    assert "| reach | 2 |" in table and "**mean**" in table and "failed episodes ended" in table
    mp4s = list((tmp_path / "videos").glob("*.mp4"))
    assert len(mp4s) == 2 and all(p.stat().st_size > 1000 for p in mp4s)
