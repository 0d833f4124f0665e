"""Where episodes come from: live expert rollouts in our suite, or a dataset file on disk.

- ``collect_rollouts(data_cfg)``: the scripted expert of each env in ``data.envs``,
  ``data.episodes_per_env`` episodes from seed ``data.rollout_seed`` (envs.rollout).
- ``load_dataset(path)``: a LeRobotDataset v3 folder or a robomimic/LIBERO HDF5 file
  (envs.dataset readers), each episode checked (EpisodeData.validate) so a bad file
  fails with its name, the episode and the key, before any training starts.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from training.configuration import DataConfig
from training.episodes import DatasetError, EpisodeData

log = logging.getLogger(__name__)


def load_episodes(cfg: DataConfig) -> list[EpisodeData]:
    if not cfg.dataset:
        return collect_rollouts(cfg)
    paths = [cfg.dataset] if isinstance(cfg.dataset, str) else cfg.dataset
    return [ep for path in paths for ep in load_dataset(path, cfg.camera, image_size=cfg.image_size)]


def from_rollout(ep: Any, index: int, source: str | None = None, camera: str = "scene") -> EpisodeData:
    """envs.rollout.Episode (from record_episode or a dataset reader) -> validated EpisodeData."""
    source = source or f"rollout:{ep.env_id or ep.task}"
    if not getattr(ep, "frames", None):
        raise DatasetError(f"{source}, episode {index}, key 'frames': no camera frames")
    if camera in ep.frames:
        cam = camera
    elif camera == "scene":  # the default: take a dataset's first camera (robomimic "agentview", ...)
        cam = next(iter(ep.frames))
    else:
        raise DatasetError(
            f"{source}, episode {index}, key {camera!r}: no such camera; have {sorted(ep.frames)}"
        )
    anns = [a.get(cam, a) for a in ep.annotations] if ep.annotations else None
    return EpisodeData(
        source=source,
        index=index,
        images={cam: np.asarray(ep.frames[cam])},  # the model reads one camera stream
        state=np.asarray(ep.state, np.float32),
        action=np.asarray(ep.action, np.float32),
        instruction=ep.instruction,
        speech=None if getattr(ep, "speech", None) is None else np.asarray(ep.speech, np.float32),
        annotations=anns or None,
        depth=getattr(ep, "depth", None) or None,
        segmentation=getattr(ep, "segmentation", None) or None,
        task=ep.task,
        success=bool(ep.success),
        meta={"seed": ep.seed, **dict(ep.meta)},
        extras={k: np.asarray(v, np.float32) for k, v in (getattr(ep, "extras", None) or {}).items()},
    ).validate()


def collect_rollouts(cfg: DataConfig) -> list[EpisodeData]:
    """Expert demonstrations recorded live, scene camera only (the model reads one image stream)."""
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    import envs
    from envs.experts import get_expert
    from envs.rollout import record_episode

    episodes: list[EpisodeData] = []
    for env_id in cfg.envs:
        env = envs.make(env_id, image_size=cfg.image_size, cameras=(cfg.camera,))
        try:
            expert = get_expert(env)
            for k in range(cfg.episodes_per_env):
                ep = record_episode(env, expert, seed=cfg.rollout_seed + k)
                if not ep.success:
                    log.warning(
                        "%s seed %d: the expert failed; episode kept out", env_id, cfg.rollout_seed + k
                    )
                    continue
                episodes.append(from_rollout(ep, len(episodes), camera=cfg.camera))
        finally:
            env.close()
    if not episodes:
        raise DatasetError(f"no successful expert episodes from {cfg.envs}")
    log.info("collected %d expert episodes from %s", len(episodes), cfg.envs)
    return episodes


def load_dataset(path: str | Path, camera: str = "scene", image_size: int | None = None) -> list[EpisodeData]:
    """Every episode of a LeRobotDataset v3 folder or a robomimic/LIBERO HDF5 file, validated.

    ``camera`` is a camera name (``top``) or lerobot's feature key (``observation.images.top``).
    ``image_size``: frames of another size are resized to it (square, as the model sees them) as they
    are read, so a dataset of 480x640 frames is not held in memory at full size; episodes with
    pixel-space labels (annotations, depth, segmentation: ours) keep their size, the processor resizes.
    """
    camera = camera.removeprefix("observation.images.")
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset {str(p)!r} does not exist")
    if p.is_dir():
        from envs.dataset import LeRobotDataset as reader
    elif p.suffix.lower() in (".hdf5", ".h5"):
        from envs.hdf5 import RobomimicDataset as reader
    else:
        raise DatasetError(f"{p}: expected a LeRobotDataset v3 folder or a robomimic/LIBERO .hdf5/.h5 file")
    try:
        ds = reader(p)
        n = len(ds)
    except Exception as e:  # a missing info.json, a truncated HDF5 header, a wrong layout
        raise DatasetError(f"{p}: cannot be opened as a dataset ({type(e).__name__}: {e})") from e
    if n == 0:
        raise DatasetError(f"{p}: the dataset holds no episodes")
    # Decode only the stream the model reads (video decoding is most of the load time); for a camera
    # the dataset lacks, decode all, and from_rollout names the camera and the ones there are.
    have = getattr(ds, "cameras", None) or []
    use = camera if camera in have else have[0] if (have and camera == "scene") else None
    only = {"cameras": [use]} if use else {}
    episodes = []
    for i in range(n):
        try:
            ep = ds.episode(i, **only)
        except Exception as e:  # a truncated parquet/mp4/HDF5 chunk, a missing key, surfaces per episode
            raise DatasetError(f"{p}, episode {i}: cannot be read ({type(e).__name__}: {e})") from e
        if image_size and not (ep.annotations or ep.depth or ep.segmentation):
            ep.frames = {cam: _resize(f, image_size) for cam, f in ep.frames.items()}
        episodes.append(from_rollout(ep, i, source=str(p), camera=camera))
    log.info("read %d episodes from %s", len(episodes), p)
    return episodes


def _resize(frames: np.ndarray, size: int) -> np.ndarray:
    """(T, H, W, 3) uint8 -> (T, size, size, 3), area-averaged (no aliasing when shrinking)."""
    if frames.ndim != 4 or frames.shape[1:3] == (size, size):
        return frames
    import cv2

    return np.stack([cv2.resize(f, (size, size), interpolation=cv2.INTER_AREA) for f in frames])
