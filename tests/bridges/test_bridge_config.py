"""The bridge configs load and validate; bad values are named; docker-compose.yml validates."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bridges.config import load_bridge_config
from training.config import ConfigError

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("name", ["bridge.yaml", "bridge_sim.yaml"])
def test_shipped_configs_load(name):
    cfg = load_bridge_config(str(ROOT / "configs" / name))
    assert cfg.cameras and cfg.commands and cfg.safety.max_age > 0


@pytest.mark.parametrize(
    "override, words",
    [
        ("rate_hz=0", "rate_hz must be a finite number > 0"),
        ("safety.max_age=.nan", "safety.max_age must be a finite number > 0"),
        ("safety.max_delta=[0.1, -1]", "max_delta must be > 0"),
        ("safety.action_high=[1, .inf]", "safety.action_high must be finite"),
        ("commands=[{type: geometry_msgs/Pose}]", "commands[0].type must be one of"),
        ("commands=[{dims: [0, 1], twist_fields: [linear.x]}]", "twist_fields needs one field per dim"),
        ("commands=[{dims: [0], scale: [.inf]}]", "scale must be finite"),
        ("cameras=[{encoding: rgb8}]", "unknown key"),
        ("cameras=[{name: a}, {name: a}]", "names must be unique"),
        ("state.fields=[torque]", "state.fields must be one of"),
    ],
)
def test_bad_values_are_named(override, words):
    with pytest.raises(ConfigError) as e:
        load_bridge_config(str(ROOT / "configs" / "bridge.yaml"), [override])
    assert words in str(e.value)


def test_docker_compose_config_validates():
    exe = shutil.which("docker-compose")
    if exe is None:  # scripts/setup.sh installs it; a machine without it cannot check the file
        pytest.skip("docker-compose is not installed (apt-get install docker-compose)")
    out = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode == 0, out.stderr
    services = subprocess.run(
        [exe, "-f", str(ROOT / "docker-compose.yml"), "config", "--services"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    ).stdout.split()
    assert sorted(services) == ["policy-bridge", "rosbridge", "sim-robot"]
