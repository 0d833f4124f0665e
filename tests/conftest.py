"""Shared test set-up: offline wandb, offscreen MuJoCo, a GPU marker that skips with a reason."""

from __future__ import annotations

import os

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
# Tests start servers, ROS nodes and subprocesses beside the test process; with two intra-op
# threads each on two cores, the tiny models spend their time waiting on each other (measured:
# 2.6-17 s vs 0.4-0.6 s a training step under load). One thread each keeps the suite fast.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip_gpu = pytest.mark.skip(reason="needs a CUDA GPU; torch.cuda.is_available() is False here")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip_gpu)


@pytest.fixture(autouse=True)
def _offline_wandb(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path_factory.getbasetemp()))
    monkeypatch.setenv("WANDB_SILENT", "true")


TINY_TEXTS = [
    "reach the red cube",
    "push the blue ball to the left",
    "pick up the green cube and place it in the bowl",
    "stack the yellow cube on the red cube",
    "open the drawer",
    "press the blue button",
    "Describe the image. A red cube and a blue ball on a table.",
    "Locate the red cube. What colour is the ball?",
] * 4


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """An untrained tiny checkpoint (every file a real one has) for the 4-D tabletop action space."""
    import numpy as np

    from agent.checkpoints import build_untrained_checkpoint

    return build_untrained_checkpoint(
        tmp_path_factory.mktemp("tiny_checkpoint"),
        TINY_TEXTS,
        -np.ones(4, np.float32),
        np.ones(4, np.float32),
    )
