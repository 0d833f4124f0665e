"""Demonstration datasets in the LeRobotDataset v3.0 layout: a writer that only ever lists whole episodes.

The real ``lerobot`` (>= 0.4) loads what this writes (``LeRobotDataset(repo_id, root=DIR)``: frames,
states, actions, tasks); envs.lerobot_reader reads it back, and reads what lerobot writes. Layout::

    meta/info.json                               codebase_version v3.0, features, fps, totals, path templates
    meta/stats.json                              per feature: min max mean std count q01 q10 q50 q90 q99
    meta/tasks.parquet                           task_index, with the task strings as the pandas index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: length, tasks, file indices, per-episode stats
    data/chunk-CCC/file-FFF.parquet              frames: observation.state, action, next.*, indices, annotations (JSON)
    videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4   (lossless H.264 4:4:4; lerobot decodes it)
    speech/chunk-CCC/file-FFF.npy                the episode's spoken instruction, (65536,) float32 16 kHz (uio2 extra)
    maps/chunk-CCC/file-FFF.npz                  depth_<cam> (T,H,W) float32 m, segmentation_<cam> int32 (if recorded)

Our extras live where lerobot does not look (speech/, maps/, ``info["uio2"]``, extra episode columns) or
are features it accepts (``annotations`` strings, float32 ``Episode.extras`` vectors such as ``waypoint``).

Each episode gets its own data/video/speech file (LeRobot's size-based file rollover with one episode per
file), so an episode is added without rewriting earlier ones. Every file is written to a temporary name and
renamed; ``meta/info.json`` is renamed last and is the commit point: the reader lists only the first
``info["total_episodes"]`` episodes, so a writer killed at any moment leaves a dataset of whole episodes.
Re-opening a root resumes after its last committed episode and deletes files a killed writer left past it
(lerobot, which globs data/*/*.parquet, would otherwise read them).
"""

from __future__ import annotations

import io
import json
import os
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from envs.hdf5 import RobomimicDataset, write_robomimic
from envs.lerobot_reader import LeRobotDataset, LeRobotFormatError
from envs.rollout import Episode
from envs.stats import aggregate, array_stats, image_stats
from envs.video import write_video

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
SPEECH_PATH = "speech/chunk-{chunk_index:03d}/file-{file_index:03d}.npy"
MAPS_PATH = "maps/chunk-{chunk_index:03d}/file-{file_index:03d}.npz"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
LOW_DIM = ("observation.state", "action", "next.reward")
# Columns every dataset has; any other float32 feature is an Episode extra (e.g. ``waypoint``).
_BUILTIN = (*LOW_DIM, "timestamp")
__all__ = [
    "LeRobotDataset",
    "LeRobotDatasetWriter",
    "LeRobotFormatError",
    "RobomimicDataset",
    "write_robomimic",
]


def _atomic(path: Path, write) -> None:
    """Call ``write(tmp_path)`` then rename onto ``path`` (atomic on POSIX within one filesystem)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    write(tmp)
    os.replace(tmp, path)


def _write_json(path: Path, obj: Any) -> None:
    _atomic(path, lambda p: p.write_text(json.dumps(obj, indent=2)))


def _write_parquet(path: Path, table: pa.Table) -> None:
    _atomic(path, lambda p: pq.write_table(table, p))


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object: np.save would append ".npy" to a temporary name
        np.save(f, array)


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    with open(path, "wb") as f:
        np.savez_compressed(f, **arrays)


def _vector(x: np.ndarray) -> pa.Array:
    x = np.ascontiguousarray(x, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(x.reshape(-1)), x.shape[1])


def _png(frame: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(frame).save(buf, format="PNG")
    return buf.getvalue()


def _tasks_table(tasks: dict[str, int]) -> pa.Table:
    """meta/tasks.parquet as lerobot writes it (``DataFrame.to_parquet``): task strings as the pandas index."""
    names = sorted(tasks, key=tasks.get)
    pandas_meta = {
        "index_columns": ["__index_level_0__"],
        "column_indexes": [
            {
                "name": None,
                "field_name": None,
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": {"encoding": "UTF-8"},
            }
        ],
        "columns": [
            {
                "name": "task_index",
                "field_name": "task_index",
                "pandas_type": "int64",
                "numpy_type": "int64",
                "metadata": None,
            },
            {
                "name": None,
                "field_name": "__index_level_0__",
                "pandas_type": "unicode",
                "numpy_type": "object",
                "metadata": None,
            },
        ],
        "attributes": {},
        "creator": {"library": "pyarrow", "version": pa.__version__},
        "pandas_version": "2.3.3",
    }
    table = pa.table(
        {
            "task_index": pa.array([tasks[t] for t in names], pa.int64()),
            "__index_level_0__": pa.array(names, pa.string()),
        }
    )
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


class LeRobotDatasetWriter:
    """Appends ``Episode``s to a LeRobotDataset v3 folder (creating it, or resuming an existing one)."""

    def __init__(
        self,
        root: str | Path,
        fps: int = 50,
        robot_type: str = "uio2_tabletop",
        use_videos: bool = True,
        state_names: list[str] | None = None,
        action_names: list[str] | None = None,
    ):
        self.root = Path(root)
        self.fps, self.robot_type, self.use_videos = fps, robot_type, use_videos
        self.state_names, self.action_names = state_names, action_names
        self.info: dict | None = None
        self.episodes: list[dict] = []
        self.tasks: dict[str, int] = {}
        self._low_dim: dict[str, list[np.ndarray]] = {k: [] for k in LOW_DIM}
        if (self.root / "meta" / "info.json").exists():
            self._resume()
            self._remove_uncommitted()
        else:  # an empty, valid dataset from the start: a writer killed in its first episode leaves this
            _write_json(self.root / "meta" / "info.json", self._empty_info())

    def _resume(self) -> None:
        ds = LeRobotDataset(self.root)
        if len(ds) == 0:
            return  # nothing committed yet: start afresh (features come from the first episode)
        self.info, self.episodes = ds.info, ds.episodes
        self.fps, self.use_videos = ds.info["fps"], ds.info["uio2"]["use_videos"]
        self.tasks = {t: i for i, t in enumerate(ds.tasks)}
        for row in self.episodes:  # stats of datasets written before they were nested lists: JSON strings
            row.update(
                {k: json.loads(v) for k, v in row.items() if k.startswith("stats/") and isinstance(v, str)}
            )
        for i in range(len(ds)):
            table = ds._data_table(i)
            for k in (*LOW_DIM, *ds.extra_keys):
                self._low_dim.setdefault(k, []).append(np.asarray(table.column(k).to_pylist(), np.float32))

    def _remove_uncommitted(self) -> None:
        """Delete the files of episodes past the commit point, which a writer killed mid-episode left.

        Our reader never lists them, but lerobot globs every data/*/*.parquet and would read their frames.
        With one episode per file, ``chunk-CCC/file-FFF`` is episode CCC * CHUNKS_SIZE + FFF.
        """
        n = len(self.episodes)
        for top in ("data", "videos", "speech", "maps"):
            for path in sorted((self.root / top).rglob("*")):
                m = re.fullmatch(r"chunk-(\d+)/\.?file-(\d+)\..*", f"{path.parent.name}/{path.name}")
                if m and path.is_file() and int(m[1]) * CHUNKS_SIZE + int(m[2]) >= n:
                    path.unlink()

    def _empty_info(self) -> dict:
        return {
            "codebase_version": CODEBASE_VERSION,
            "robot_type": self.robot_type,
            "total_episodes": 0,
            "total_frames": 0,
            "total_tasks": 0,
            "chunks_size": CHUNKS_SIZE,
            "data_files_size_in_mb": 100,
            "video_files_size_in_mb": 500,
            "fps": self.fps,
            "splits": {"train": "0:0"},
            "data_path": DATA_PATH,
            "video_path": VIDEO_PATH if self.use_videos else None,
            "features": {},
            "uio2": {
                "speech_path": SPEECH_PATH,
                "maps_path": MAPS_PATH,
                "speech_sample_rate": 16000,
                "use_videos": self.use_videos,
            },
        }

    def _new_info(self, ep: Episode) -> dict:
        features: dict[str, dict] = {}
        for cam, frames in ep.frames.items():
            h, w, c = frames.shape[1:]
            feat = {
                "dtype": "video" if self.use_videos else "image",
                "shape": [h, w, c],
                "names": ["height", "width", "channels"],
            }
            if self.use_videos:
                feat["info"] = {
                    "video.height": h,
                    "video.width": w,
                    "video.codec": "h264",
                    "video.pix_fmt": "yuv444p",
                    "video.is_depth_map": False,
                    "video.fps": self.fps,
                    "video.channels": c,
                    "has_audio": False,
                }
            features[f"observation.images.{cam}"] = feat
        s, a = ep.state.shape[1], ep.action.shape[1]
        features["observation.state"] = {
            "dtype": "float32",
            "shape": [s],
            "names": self.state_names or [f"state_{i}" for i in range(s)],
        }
        features["action"] = {
            "dtype": "float32",
            "shape": [a],
            "names": self.action_names or [f"action_{i}" for i in range(a)],
        }
        for key, arr in sorted(ep.extras.items()):
            features[key] = {"dtype": "float32", "shape": [arr.shape[1]], "names": None}
        for key, dtype in (
            ("next.reward", "float32"),
            ("next.done", "bool"),
            ("next.success", "bool"),
            ("timestamp", "float32"),
            ("frame_index", "int64"),
            ("episode_index", "int64"),
            ("index", "int64"),
            ("task_index", "int64"),
        ):
            features[key] = {"dtype": dtype, "shape": [1], "names": None}
        features["annotations"] = {"dtype": "string", "shape": [1], "names": None}
        return {**self._empty_info(), "features": features}

    def _check_compatible(self, ep: Episode) -> None:
        feats = self.info["features"]
        cams = sorted(
            k.removeprefix("observation.images.") for k in feats if k.startswith("observation.images.")
        )
        if sorted(ep.frames) != cams:
            raise ValueError(f"episode cameras {sorted(ep.frames)} differ from the dataset's {cams}")
        for cam, frames in ep.frames.items():
            if list(frames.shape[1:]) != feats[f"observation.images.{cam}"]["shape"]:
                raise ValueError(
                    f"camera {cam!r} frames are {frames.shape[1:]}, the dataset's are "
                    f"{feats[f'observation.images.{cam}']['shape']}"
                )
        extras = sorted(k for k, f in feats.items() if k not in _BUILTIN and f["dtype"] == "float32")
        if sorted(ep.extras) != extras:
            raise ValueError(f"episode extras {sorted(ep.extras)} differ from the dataset's {extras}")
        for key, arr in (("observation.state", ep.state), ("action", ep.action), *ep.extras.items()):
            if arr.ndim != 2 or list(arr.shape) != [len(ep), *feats[key]["shape"]]:
                raise ValueError(f"{key} must be (T, {feats[key]['shape'][0]}), got {arr.shape}")

    def add_episode(self, ep: Episode) -> int:
        """Write one whole episode and commit it; returns its episode index."""
        n = len(ep)
        if n == 0:
            raise ValueError("cannot write an empty episode")
        if not (np.isfinite(ep.state).all() and np.isfinite(ep.action).all()):
            raise ValueError("episode state and action must be finite (NaN or inf found)")
        for key, arr in ep.extras.items():
            if not np.isfinite(arr).all():
                raise ValueError(f"episode extra {key!r} must be finite (NaN or inf found)")
        if self.info is None or not self.info["features"]:
            self.info = self._new_info(ep)
        self._check_compatible(ep)
        index = len(self.episodes)
        loc = {"chunk_index": index // CHUNKS_SIZE, "file_index": index % CHUNKS_SIZE}
        start = self.info["total_frames"]
        task_index = self.tasks.setdefault(ep.instruction, len(self.tasks))
        annotations = ep.annotations or [{}] * n
        done = np.zeros(n, dtype=bool)
        done[-1] = True
        columns: dict[str, pa.Array] = {
            "observation.state": _vector(ep.state),
            "action": _vector(ep.action),
            "next.reward": pa.array(ep.reward.astype(np.float32)),
            "next.done": pa.array(done),
            "next.success": pa.array(done & ep.success),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / self.fps),
            "frame_index": pa.array(np.arange(n, dtype=np.int64)),
            "episode_index": pa.array(np.full(n, index, dtype=np.int64)),
            "index": pa.array(np.arange(start, start + n, dtype=np.int64)),
            "task_index": pa.array(np.full(n, task_index, dtype=np.int64)),
            "annotations": pa.array([json.dumps(a) for a in annotations], pa.string()),
            **{key: _vector(arr) for key, arr in ep.extras.items()},
        }
        row: dict[str, Any] = {
            "episode_index": index,
            "tasks": [ep.instruction],
            "length": n,
            "data/chunk_index": loc["chunk_index"],
            "data/file_index": loc["file_index"],
            "dataset_from_index": start,
            "dataset_to_index": start + n,
            "meta/episodes/chunk_index": 0,
            "meta/episodes/file_index": 0,
            "success": bool(ep.success),
            "task_name": ep.task,
            "env_id": ep.env_id,
            "seed": -1 if ep.seed is None else int(ep.seed),
            "extra": json.dumps(ep.meta),
            "speech/chunk_index": loc["chunk_index"],
            "speech/file_index": loc["file_index"],
        }
        ep_stats: dict[str, dict] = {}
        for cam, frames in ep.frames.items():
            key = f"observation.images.{cam}"
            if self.use_videos:
                write_video(self.root / VIDEO_PATH.format(video_key=key, **loc), frames, self.fps)
                row.update(
                    {
                        f"videos/{key}/chunk_index": loc["chunk_index"],
                        f"videos/{key}/file_index": loc["file_index"],
                        f"videos/{key}/from_timestamp": 0.0,
                        f"videos/{key}/to_timestamp": n / self.fps,
                    }
                )
            else:
                columns[key] = pa.array(
                    [{"bytes": _png(f), "path": None} for f in frames],
                    pa.struct([("bytes", pa.binary()), ("path", pa.string())]),
                )
            ep_stats[key] = image_stats(frames, seed=index)
        _write_parquet(self.root / DATA_PATH.format(**loc), pa.table(columns))
        speech = np.asarray(ep.speech, dtype=np.float32)
        _atomic(self.root / SPEECH_PATH.format(**loc), lambda p: _save_npy(p, speech))
        maps = {f"depth_{c}": v for c, v in (ep.depth or {}).items()}
        maps.update({f"segmentation_{c}": v for c, v in (ep.segmentation or {}).items()})
        row["maps"] = bool(maps)
        if maps:
            _atomic(self.root / MAPS_PATH.format(**loc), lambda p: _save_npz(p, maps))
        low_dim = (("observation.state", ep.state), ("action", ep.action), ("next.reward", ep.reward))
        low_dim += tuple(ep.extras.items())
        for key, arr in low_dim:
            ep_stats[key] = array_stats(arr)
        for key, st in ep_stats.items():
            for name, value in st.items():
                row[f"stats/{key}/{name}"] = value  # nested lists, as lerobot writes them
        self.episodes.append(row)
        for k, arr in low_dim:
            self._low_dim.setdefault(k, []).append(np.asarray(arr, dtype=np.float32))
        self.info["total_episodes"] = index + 1
        self.info["total_frames"] = start + n
        self._commit()
        return index

    def _stats(self) -> dict:
        stats = {k: array_stats(np.concatenate(v)) for k, v in self._low_dim.items()}
        for key in self.info["features"]:
            if key.startswith("observation.images."):
                per = [{n: r[f"stats/{key}/{n}"] for n in stats["action"]} for r in self.episodes]
                stats[key] = aggregate(per)
        return stats

    def _commit(self) -> None:
        """Metadata for every written episode; info.json last, as the commit point."""
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{self.info['total_episodes']}"}
        _write_parquet(self.root / "meta" / "tasks.parquet", _tasks_table(self.tasks))
        _write_json(self.root / "meta" / "stats.json", self._stats())
        _write_parquet(self.root / EPISODES_PATH, pa.Table.from_pylist(self.episodes))
        _write_json(self.root / "meta" / "info.json", self.info)
