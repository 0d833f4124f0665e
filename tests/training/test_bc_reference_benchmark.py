"""The BC reference benchmark: reads both label kinds of a waypoint dataset, learns, listens, acts in limits."""

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bc_reference")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three Reach demonstrations recorded in waypoint mode (the velocity rides along), 32 px."""
    from envs.collect import add_arguments, run

    out = tmp_path_factory.mktemp("bc") / "reach_wp"
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        [
            "--env",
            "reach",
            "--episodes",
            "3",
            "--out",
            str(out),
            "--image-size",
            "32",
            "--control",
            "waypoint",
        ]
    )
    assert run(args) == 0
    return out


def test_both_label_kinds_come_from_one_waypoint_dataset(bench, dataset):
    wp = bench.load_demos([str(dataset)], "waypoint")
    vel = bench.load_demos([str(dataset)], "velocity")
    assert len(wp) == len(vel) == 3 and wp[0].task == "reach"
    assert np.abs(vel[0].label).max() <= 1.0  # velocities in action units
    # Waypoints are absolute grasp-point targets (metres): the label is not the per-step move.
    assert not np.allclose(wp[0].label[:, :3], vel[0].label[:, :3])
    assert bench.dataset_control(__import__("envs.dataset").dataset.LeRobotDataset(dataset)) == "waypoint"


@pytest.mark.parametrize("labels", ["waypoint", "velocity"])
def test_reference_fits_the_demonstrations_and_reads_the_instruction(bench, dataset, labels):
    demos = bench.load_demos([str(dataset)], labels)
    ref = bench.Reference(demos, labels, batch=16, seed=0).fit(150)
    assert np.mean(ref.losses[-20:]) < 0.5 * np.mean(ref.losses[:5])  # it learns
    obs = {
        "images": {"scene": demos[0].images[0]},
        "state": demos[0].state[0],
        "instruction": demos[0].instruction,
    }
    a = ref.act(obs)
    assert a.shape == (4,) and np.isfinite(a).all()
    if labels == "velocity":
        assert np.abs(a).max() <= 1.0
    else:
        from envs.scene import WORKSPACE_HIGH, WORKSPACE_LOW

        assert (a[:3] >= WORKSPACE_LOW - 1e-6).all() and (a[:3] <= WORKSPACE_HIGH + 1e-6).all()
    other = "reach the " + ("blue" if "red" in obs["instruction"] else "red") + " ball"
    assert not np.allclose(a, ref.act({**obs, "instruction": other}))  # FiLM: the words change the act


def test_quick_run_writes_finite_success_figures(bench, dataset, tmp_path):
    out = tmp_path / "bc.json"
    summary = bench.main(["--dataset", str(dataset), "--labels", "waypoint", "--quick", "--out", str(out)])
    written = json.loads(out.read_text())
    assert written["labels"] == written["control"] == "waypoint" and written["quick"]
    marks = written["success"]["reference_cnn"]
    assert len(marks) == 1 and marks[0]["steps"] > 0 and math.isfinite(marks[0]["train_loss"])
    reach = marks[0]["success"]["reach"]
    assert 0.0 <= reach["success_rate"] <= 1.0 and reach["episodes"] == 2
    assert math.isfinite(summary["steps_per_s"]) and math.isfinite(summary["final_loss"])


def test_clock_cooldown_takes_the_lr_to_zero_over_the_last_minutes(bench):
    import torch

    w = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.Adam([w], lr=0.1)
    cool = bench.ClockCooldown(opt, minutes=1.0, fraction=0.5)  # the last 30 of 60 s
    cool.step(20.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)
    cool.step(25.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)  # 15 of 30 s left
    cool.step(30.0)
    assert opt.param_groups[0]["lr"] == 0.0
    # Under a scheduler it scales what the scheduler sets (here its warmup), not its own last value.
    opt = torch.optim.Adam([w], lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 4))
    cool = bench.ClockCooldown(opt, minutes=1.0, fraction=0.5, scheduler=sched)
    for _ in range(3):
        opt.step()
        sched.step()
        cool.step(15.0)
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1 * 1.0 * 0.5)  # warmed up, half cooled
    # wrap: a step function that counts its own time.
    cool = bench.ClockCooldown(opt, minutes=1e-12, fraction=1.0)
    assert cool.wrap(lambda: 0.25)() == 0.25 and cool.elapsed > 0
    assert opt.param_groups[0]["lr"] == 0.0  # the whole (tiny) budget spent
    with pytest.raises(ValueError, match="cooldown fraction"):
        bench.ClockCooldown(opt, 1.0, 1.5)
