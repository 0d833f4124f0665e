"""The main job, end to end at smoke size: collect -> train -> evaluate (text and speech) -> report."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
def test_demo_quick_runs_every_stage(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--quick", f"out={out}", "tasks=[reach, button]"],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((out / "report.json").read_text())
    assert set(report["success"]) == {"text", "speech"}
    assert set(report["per_task"]["text"]) == {"reach", "button"}
    for task in ("reach", "button"):  # one LeRobotDataset per task, collected in parallel
        assert (out / "dataset" / task / "meta" / "info.json").exists()
    assert (out / "report.md").read_text().count("|") > 10
    assert list((out / "eval_text" / "videos").glob("*.mp4"))
    assert list((out / "eval_speech" / "videos").glob("*.mp4"))
    assert "| **mean** |" in proc.stdout
    # Trained data-parallel in two processes (DDP over gloo), one `uio2 train` child command.
    assert report["train"]["processes"] == 2 and report["train"]["batch_size"] == 4
    assert (out / "train" / "train_config.yaml").exists()
    # The checkpoint says how training fed the model (state features, history) and the robot's limits.
    policy = json.loads((Path(report["train"]["checkpoint"]) / "policy.json").read_text())
    # The last command joins the state (8-11) and the policy feeds back its own.
    assert policy["state_dims"] == [0, 1, 2, 6, 8, 9, 10, 11] and policy["history"] == 0
    assert policy["previous_action"] is True
    # A spoken instruction is written down by the model's own speech recognition, then acted on.
    assert policy["speech_input"] == "transcribe"
    # Waypoint control: the commands are targets inside the arm's workspace, written in the scene camera.
    assert policy["control"] == "waypoint"
    assert policy["action_low"] == [-0.32, -0.3, 0.012, -1.0] and policy["action_high"] == [
        0.32,
        0.25,
        0.3,
        1.0,
    ]
    assert (Path(report["train"]["checkpoint"]) / "action_frame.json").exists()
    from envs.dataset import LeRobotDataset

    ds = LeRobotDataset(out / "dataset" / "reach")
    assert ds.info["features"]["action"]["names"] == ["x", "y", "z", "gripper"] and ds.extra_keys == [
        "velocity"
    ]


def test_a_rerun_reuses_its_demonstrations_and_never_mixes_in_others(tmp_path):
    from agent.demo import COLLECT_STAMP, DemoConfig, collect

    cfg = DemoConfig(
        out=str(tmp_path), tasks=["reach"], episodes_per_task=1, image_size=16, collect_workers=1
    )
    dataset = tmp_path / "dataset"
    first = collect(cfg, dataset)
    assert not first["reused"] and (dataset / COLLECT_STAMP).exists()
    again = collect(cfg, dataset)
    assert again["reused"] and again["seconds"] == 0.0
    other = DemoConfig(out=str(tmp_path), tasks=["reach"], episodes_per_task=2, image_size=16)
    with pytest.raises(FileExistsError, match="other settings"):
        collect(other, dataset)
    from envs.dataset import LeRobotDataset

    assert len(LeRobotDataset(dataset / "reach")) == 1  # nothing was appended


@pytest.mark.parametrize("processes", [0, 3])
def test_training_processes_must_share_the_batch_evenly(tmp_path, processes):
    from agent.demo import DemoConfig, train

    cfg = DemoConfig(out=str(tmp_path), train_processes=processes, train_overrides=["trainer.batch_size=4"])
    with pytest.raises(ValueError, match=f"train_processes={processes} .*trainer.batch_size=4"):
        train(cfg, tmp_path / "dataset")
    assert not (tmp_path / "train").exists()  # refused before anything was written


def test_a_failed_training_rank_stops_the_others():
    """A rank that dies must not leave its peer waiting in an all-reduce for ever: the demo stops it."""
    import time

    from agent.demo import supervise

    waiting = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    failing = subprocess.Popen([sys.executable, "-c", "import time, sys; time.sleep(0.5); sys.exit(3)"])
    t0 = time.monotonic()
    codes = supervise([waiting, failing], poll_s=0.05)  # the waiting one first: polled before the failure
    assert time.monotonic() - t0 < 30
    assert codes[1] == 3 and codes[0] != 0  # the waiting rank was terminated, not waited for
