"""Runs under .venv-lerobot (scripts/setup_lerobot.sh): the real lerobot 0.4.4 writes and reads datasets.

    python scripts/lerobot_fixtures.py write OUT      # regenerate tests/fixtures/lerobot/{image,video}
    python scripts/lerobot_fixtures.py read ROOT NPZ  # lerobot loads ROOT; every frame's values -> NPZ
    python scripts/lerobot_fixtures.py rewrite ROOT OUT  # lerobot loads ROOT and writes it anew (AV1, its layout)

``write`` makes two small LeRobotDataset v3.0 folders with ``LeRobotDataset.create``, ``add_frame``,
``save_episode`` and ``finalize``: one with PNG images in the parquet, one with AV1 videos (lerobot's
default codec), several episodes per data file and per mp4, a camera (``top``), state and action
sizes (6, 7) and fps (10) unlike ours. Every value is given by the formulas below, which the tests
(tests/envs/test_lerobot_compat.py) recompute. ``read`` is how a test has lerobot load a dataset that
we wrote: ``LeRobotDataset(repo_id, root=ROOT)[i]`` for every frame.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

FPS, HEIGHT, WIDTH, STATE_DIM, ACTION_DIM, CAMERA = 10, 30, 40, 6, 7, "top"
LENGTHS = (5, 7, 6, 8)  # episode lengths
TASKS = ("pick up the red block", "open the drawer")


def task(ep: int) -> str:
    return TASKS[ep % 2]


def state(ep: int, t: int) -> np.ndarray:
    return (ep + 0.125 * t + 0.5 ** np.arange(1, STATE_DIM + 1)).astype(np.float32)


def action(ep: int, t: int) -> np.ndarray:
    return (-ep - 0.25 * t + 0.0625 * np.arange(ACTION_DIM)).astype(np.float32)


def frame(ep: int, t: int) -> np.ndarray:
    """A smooth image (codecs keep it within a few levels): a colour per (episode, step) plus a ramp."""
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH]
    base = np.array([40 + 30 * ep, 200 - 20 * t, 60 + 10 * (ep + t)], dtype=np.float64)
    img = base[None, None, :] + (x[..., None] + y[..., None]) * 1.0
    return np.clip(img, 0, 255).astype(np.uint8)


def _lerobot():
    """lerobot's LeRobotDataset, imported after the torchvision shim (scripts/lerobot_shim.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import lerobot_shim  # noqa: F401  (before anything imports torchvision)
    from lerobot.datasets.lerobot_dataset import LeRobotDataset

    return LeRobotDataset


def write(out: Path) -> None:
    LeRobotDataset = _lerobot()

    for kind in ("image", "video"):
        root = out / kind
        if root.exists():
            shutil.rmtree(root)
        features = {
            f"observation.images.{CAMERA}": {
                "dtype": kind,
                "shape": (HEIGHT, WIDTH, 3),
                "names": ["height", "width", "channels"],
            },
            "observation.state": {
                "dtype": "float32",
                "shape": (STATE_DIM,),
                "names": [f"joint_{i}" for i in range(STATE_DIM)],
            },
            "action": {
                "dtype": "float32",
                "shape": (ACTION_DIM,),
                "names": [f"motor_{i}" for i in range(ACTION_DIM)],
            },
        }
        ds = LeRobotDataset.create(
            f"uio2/fixture_{kind}",
            fps=FPS,
            root=root,
            features=features,
            robot_type="so100",
            use_videos=kind == "video",
        )
        for ep, n in enumerate(LENGTHS):
            for t in range(n):
                ds.add_frame(
                    {
                        f"observation.images.{CAMERA}": frame(ep, t),
                        "observation.state": state(ep, t),
                        "action": action(ep, t),
                        "task": task(ep),
                    }
                )
            ds.save_episode(parallel_encoding=False)
        ds.finalize()
        print(f"wrote {root}: {ds.meta.total_episodes} episodes, {ds.meta.total_frames} frames")


def read(root: Path, out: Path) -> None:
    """lerobot loads ``root``: per frame its index, episode, timestamp, task, state, action and images."""
    LeRobotDataset = _lerobot()

    ds = LeRobotDataset("uio2/under_test", root=root)
    items = [ds[i] for i in range(len(ds))]
    numeric = [k for k, f in ds.features.items() if f["dtype"] in ("float32", "float64", "int64", "bool")]
    arrays = {key: np.stack([it[key].numpy() for it in items]) for key in numeric}
    for key in ds.meta.camera_keys:  # (C, H, W) float in [0, 1] -> (H, W, C) uint8
        arrays[key] = np.stack(
            [(it[key].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8) for it in items]
        )
    arrays["task"] = np.array([it["task"] for it in items])
    arrays["camera_keys"] = np.array(ds.meta.camera_keys)
    np.savez(out, **arrays)
    print(f"lerobot read {len(ds)} frames, {ds.num_episodes} episodes, cameras {ds.meta.camera_keys}")


def rewrite(root: Path, out: Path) -> None:
    """What a LeRobot user's dataset looks like: lerobot reads ``root`` and records it again with its own
    writer (default AV1 video, every episode in one data file and one mp4 per camera)."""
    LeRobotDataset = _lerobot()
    src = LeRobotDataset("uio2/source", root=root)
    keep = ("observation.state", "action", *src.meta.camera_keys)
    features = {
        k: {**src.features[k], "dtype": "video" if k in src.meta.camera_keys else src.features[k]["dtype"]}
        for k in keep
    }
    for k in src.meta.camera_keys:
        features[k].pop("info", None)
    dst = LeRobotDataset.create(
        "uio2/rewritten", fps=src.fps, root=out, features=features, robot_type="uio2_tabletop"
    )
    episode = None
    for i in range(len(src)):
        item = src[i]
        if episode is not None and item["episode_index"].item() != episode:
            dst.save_episode(parallel_encoding=False)
        episode = item["episode_index"].item()
        frame = {k: item[k].numpy() for k in ("observation.state", "action")}
        for k in src.meta.camera_keys:  # (C, H, W) float in [0, 1] -> (H, W, C) uint8
            frame[k] = (item[k].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        dst.add_frame({**frame, "task": item["task"]})
    dst.save_episode(parallel_encoding=False)
    dst.finalize()
    print(f"lerobot rewrote {root} as {out}: {dst.meta.total_episodes} episodes")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "write":
        write(Path(sys.argv[2]))
    elif len(sys.argv) == 4 and sys.argv[1] == "read":
        read(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 4 and sys.argv[1] == "rewrite":
        rewrite(Path(sys.argv[2]), Path(sys.argv[3]))
    else:
        sys.exit(__doc__)
