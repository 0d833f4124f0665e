"""The acting proxy benchmark at smoke size: trains a variant on waypoint demonstrations, probes the
first waypoint on held-out layouts, rolls out in closed loop, and writes its figures."""

from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys

import pytest

from envs.collect import add_arguments, run


@pytest.mark.slow
def test_waypoint_proxy_smoke(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = [
        "--env",
        "reach",
        "--episodes",
        "2",
        "--out",
        str(tmp_path / "data" / "reach"),
        "--image-size",
        "64",
    ]
    assert run(parser.parse_args([*args, "--control", "waypoint"])) == 0
    out = tmp_path / "proxy.json"
    cmd = [sys.executable, "benchmarks/waypoint_proxy.py", "--dataset", str(tmp_path / "data"), "--tasks", "reach",
           "--steps", "3", "--probe", "2", "--episodes", "1", "--pointing-frames", "6", "--variant", "camera",
           "trainer.batch_size=4",
           "--work", str(tmp_path / "work"), "--out", str(out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    result = json.loads(out.read_text())["results"]["camera"]
    assert math.isfinite(result["mean_xy_cm"]) and 0.0 <= result["mean_success"] <= 1.0
    assert set(result["first_waypoint"]) == {"reach"} and "first waypoint" in proc.stdout
    assert 0.0 <= result["pointing"]["within_3px"] <= 1.0 and math.isfinite(result["pointing"]["mean_px"])
    # The same checkpoint, per phase of the expert's plan (benchmarks/waypoint_phases.py).
    checkpoint = next((tmp_path / "work" / "camera" / "train" / "checkpoints").glob("step-*"))
    phases_out = tmp_path / "phases.json"
    cmd = [sys.executable, "benchmarks/waypoint_phases.py", "--checkpoint", str(checkpoint), "--tasks", "reach",
           "--episodes", "1", "--max-steps", "12", "--pointing-frames", "6", "--stroke-episodes", "2",
           "--out", str(phases_out)]  # fmt: skip
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    measured = json.loads(phases_out.read_text())["results"]
    assert 0.0 <= measured["pointing"]["within_3px"] <= 1.0
    phases = measured["reach"]
    assert phases and all(math.isfinite(p["xy_cm"]) and 0.0 <= p["gripper"] <= 1.0 for p in phases.values())
    assert sum(p["n"] for p in phases.values()) == 3  # steps 0, 4 and 8 of 12
    stroke = measured["drawer_stroke"]  # every step of the expert's two strokes asked
    assert set(stroke) <= {"open", "close"} and sum(s["n"] for s in stroke.values()) >= 4
    assert all(0.0 <= s["right"] <= 1.0 for s in stroke.values()) and "drawer stroke" in proc.stdout
