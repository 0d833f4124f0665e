"""The real lerobot, for tests: run scripts/lerobot_fixtures.py in .venv-lerobot (built by `make test`)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "lerobot_fixtures.py"
LEROBOT_PYTHON = REPO / ".venv-lerobot" / "bin" / "python"
FIXTURES = REPO / "tests" / "fixtures" / "lerobot"

_spec = importlib.util.spec_from_file_location("lerobot_fixtures", SCRIPT)
formulas = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(formulas)  # the fixtures' formulas only: lerobot is imported inside its functions


def run_lerobot(tmp_path: Path, *args: str) -> str:
    """``python scripts/lerobot_fixtures.py ARGS`` with the real lerobot (its own venv), offline."""
    if not LEROBOT_PYTHON.exists():
        pytest.fail(f"{LEROBOT_PYTHON} is missing: run `bash scripts/setup_lerobot.sh` (`make test` does)")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1")
    res = subprocess.run(
        [str(LEROBOT_PYTHON), str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, (res.stdout + res.stderr)[-4000:]
    return res.stdout
