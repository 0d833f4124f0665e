"""Make the real lerobot 0.4.4 importable next to a CPU torch 2.13 (used by .venv-lerobot only).

The only torchvision for torch 2.13 is a CUDA build: its C ops (``_C.so``) do not load on a CPU
torch, torchvision then skips registering them, except ``register_fake("torchvision::nms")`` and
``"torchvision::qnms"``, which run unconditionally and fail with "operator torchvision::nms does not
exist". Declaring those schemas (no kernels) with ``torch.library`` before the import lets it succeed.
Writing and reading a LeRobotDataset calls no torchvision op; calling one raises "no kernel".

Use: ``import lerobot_shim`` (this folder on sys.path) before anything imports torchvision, or run
this file to check that lerobot's dataset module imports.
"""

from __future__ import annotations

import os

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # nothing reaches for the hub; datasets are read by root=
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

_SCHEMAS = {
    "nms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}


def declare_torchvision_ops() -> None:
    """Declare torchvision's always-registered op schemas when its C extension is absent."""
    global _LIB
    missing = {}
    for name, schema in _SCHEMAS.items():
        try:
            getattr(torch.ops.torchvision, name)
        except (AttributeError, RuntimeError):
            missing[name] = schema
    if missing:
        _LIB = torch.library.Library("torchvision", "DEF")  # kept alive: dropping it removes the defs
        for name, schema in missing.items():
            _LIB.define(name + schema)


_LIB = None
declare_torchvision_ops()

if __name__ == "__main__":
    import lerobot
    import torchvision
    from lerobot.datasets.lerobot_dataset import LeRobotDataset  # noqa: F401

    print(f"lerobot {lerobot.__version__}, torch {torch.__version__}, torchvision {torchvision.__version__}")
