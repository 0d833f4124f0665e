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
    return load_dataset(cfg.dataset) if cfg.dataset else collect_rollouts(cfg)


def from_rollout(ep: Any, index: int, camera: str = "scene") -> EpisodeData:
    """envs.rollout.Episode -> EpisodeData (annotations of the main camera only)."""
    cam = camera if camera in ep.frames else next(iter(ep.frames))
    anns = [a.get(cam, a) for a in ep.annotations] if ep.annotations else None
    return EpisodeData(
        source=f"rollout:{ep.env_id or ep.task}",
        index=index,
        images=dict(ep.frames),
        state=np.asarray(ep.state, np.float32),
        action=np.asarray(ep.action, np.float32),
        instruction=ep.instruction,
        speech=None if ep.speech is None else np.asarray(ep.speech, np.float32),
        annotations=anns or None,
        depth=getattr(ep, "depth", None) or None,
        segmentation=getattr(ep, "segmentation", None) or None,
        task=ep.task,
        success=bool(ep.success),
        meta={"seed": ep.seed, **dict(ep.meta)},
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
        env = envs.make(env_id, image_size=cfg.image_size, cameras=("scene",))
        try:
            expert = get_expert(env)
            for k in range(cfg.episodes_per_env):
                ep = record_episode(env, expert, seed=cfg.rollout_seed + k)
                if not ep.success:
                    log.warning("%s seed %d: the expert failed; episode kept out", env_id, cfg.rollout_seed + k)
                    continue
                episodes.append(from_rollout(ep, len(episodes)))
        finally:
            env.close()
    if not episodes:
        raise DatasetError(f"no successful expert episodes from {cfg.envs}")
    log.info("collected %d expert episodes from %s", len(episodes), cfg.envs)
    return episodes


def load_dataset(path: str | Path) -> list[EpisodeData]:
    """Every episode of a LeRobotDataset v3 folder or a robomimic/LIBERO HDF5 file, validated."""
    p = Path(path)
    if not p.exists():
        raise DatasetError(f"dataset {str(p)!r} does not exist")
    if p.is_dir():
        from envs.dataset import LeRobotDataset

        try:
            ds = LeRobotDataset(p)
        except DatasetError:
            raise
        except Exception as e:
            raise DatasetError(f"{p}: not a readable LeRobotDataset v3 folder ({type(e).__name__}: {e})") from e
        return [_from_record(_read(ds, i, p), str(p), i) for i in range(len(ds))]
    if p.suffix.lower() in (".hdf5", ".h5"):
        from envs.dataset import read_hdf5_episodes

        try:
            records = read_hdf5_episodes(p)
        except Exception as e:
            raise DatasetError(f"{p}: not a readable robomimic/LIBERO HDF5 file ({type(e).__name__}: {e})") from e
        return [_from_record(r, str(p), i) for i, r in enumerate(records)]
    raise DatasetError(f"{p}: expected a LeRobotDataset v3 folder or a .hdf5/.h5 file")


def _read(ds, i: int, path: Path) -> dict:
    try:
        return ds.episode(i)
    except Exception as e:  # a truncated parquet/mp4 shard surfaces here, per episode
        raise DatasetError(f"{path}, episode {i}: cannot be read ({type(e).__name__}: {e})") from e


def _from_record(rec: dict, source: str, index: int) -> EpisodeData:
    """A reader's episode dict -> EpisodeData; a missing key is named with file and episode."""

    def need(key: str):
        if key not in rec or rec[key] is None:
            raise DatasetError(f"{source}, episode {index}, key {key!r}: missing (keys present: {sorted(rec)})")
        return rec[key]

    images = need("frames") if "frames" in rec else need("images")
    if not isinstance(images, dict) or not images:
        raise DatasetError(f"{source}, episode {index}, key 'images': no cameras")
    return EpisodeData(
        source=source,
        index=index,
        images={k: np.asarray(v) for k, v in images.items()},
        state=np.asarray(need("state"), np.float32),
        action=np.asarray(need("action"), np.float32),
        instruction=str(rec.get("instruction") or rec.get("task") or ""),
        speech=None if rec.get("speech") is None else np.asarray(rec["speech"], np.float32),
        annotations=None,
        task=str(rec.get("task", "")),
        success=bool(rec.get("success", True)),
    ).validate()
