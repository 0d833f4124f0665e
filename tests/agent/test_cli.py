import subprocess
import sys

from agent.cli import COMMANDS, build_parser


def test_help_lists_every_subcommand():
    out = subprocess.run(
        [sys.executable, "-m", "agent.cli", "--help"], capture_output=True, text=True, check=True
    ).stdout
    for name in ["collect", "train", "finetune", "eval", "generate", "serve", "bridge", "demo"]:
        assert name in out
        assert name in COMMANDS


def test_unknown_command_is_a_usage_error():
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "fly"], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "invalid choice" in proc.stderr


def test_parser_builds_without_heavy_imports():
    before = set(sys.modules)
    build_parser()
    assert not {"torch", "mujoco", "roslibpy"} & (set(sys.modules) - before)
