"""Demonstration datasets in the LeRobotDataset v3 layout: a writer that only ever lists whole episodes, and a reader.

Layout under ``root``::

    meta/info.json                               codebase_version v3.0, features, fps, totals, path templates
    meta/stats.json                              per feature: min max mean std count q01 q10 q50 q90 q99
    meta/tasks.parquet                           task (the instruction) -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: length, tasks, file indices, per-episode stats
    data/chunk-CCC/file-FFF.parquet              frames: observation.state, action, next.*, indices, annotations (JSON)
    videos/observation.images.<cam>/chunk-CCC/file-FFF.mp4
    speech/chunk-CCC/file-FFF.npy                the episode's spoken instruction, (65536,) float32 16 kHz (uio2 extra)
    maps/chunk-CCC/file-FFF.npz                  depth_<cam> (T,H,W) float32 m, segmentation_<cam> int32 (if recorded)

Each episode gets its own data/video/speech file (LeRobot's size-based file rollover with one episode per
file), so an episode is added without rewriting earlier ones. Every file is written to a temporary name and
renamed; ``meta/info.json`` is renamed last and is the commit point: the reader lists only the first
``info["total_episodes"]`` episodes, so a writer killed at any moment leaves a dataset of whole episodes.
Re-opening a root resumes after its last committed episode.
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from envs.hdf5 import RobomimicDataset, write_robomimic
from envs.rollout import Episode
from envs.stats import aggregate, array_stats, image_stats
from envs.video import read_video, write_video

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
__all__ = ["LeRobotDataset", "LeRobotDatasetWriter", "RobomimicDataset", "write_robomimic"]


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
        else:  # an empty, valid dataset from the start: a writer killed in its first episode leaves this
            _write_json(self.root / "meta" / "info.json", self._empty_info())

    def _resume(self) -> None:
        ds = LeRobotDataset(self.root)
        if len(ds) == 0:
            return  # nothing committed yet: start afresh (features come from the first episode)
        self.info, self.episodes = ds.info, ds.episodes
        self.fps, self.use_videos = ds.info["fps"], ds.info["uio2"]["use_videos"]
        self.tasks = {t: i for i, t in enumerate(ds.tasks)}
        for i in range(len(ds)):
            table = ds._data_table(i)
            for k in (*LOW_DIM, *ds.extra_keys):
                self._low_dim.setdefault(k, []).append(np.asarray(table.column(k).to_pylist(), np.float32))

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
                row[f"stats/{key}/{name}"] = json.dumps(value)
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
                per = [{n: json.loads(r[f"stats/{key}/{n}"]) for n in stats["action"]} for r in self.episodes]
                stats[key] = aggregate(per)
        return stats

    def _commit(self) -> None:
        """Metadata for every written episode; info.json last, as the commit point."""
        self.info["total_tasks"] = len(self.tasks)
        self.info["splits"] = {"train": f"0:{self.info['total_episodes']}"}
        tasks = sorted(self.tasks, key=self.tasks.get)
        _write_parquet(
            self.root / "meta" / "tasks.parquet",
            pa.table(
                {
                    "task_index": pa.array([self.tasks[t] for t in tasks], pa.int64()),
                    "task": pa.array(tasks, pa.string()),
                }
            ),
        )
        _write_json(self.root / "meta" / "stats.json", self._stats())
        _write_parquet(self.root / EPISODES_PATH, pa.Table.from_pylist(self.episodes))
        _write_json(self.root / "meta" / "info.json", self.info)


class LeRobotDataset:
    """Reads a LeRobotDataset v3 folder: ``len(ds)`` episodes, ``ds.episode(i) -> Episode``, ``.stats``, ``.meta``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.exists():
            raise FileNotFoundError(f"not a LeRobotDataset: {info_path} does not exist")
        self.info = json.loads(info_path.read_text())
        if not str(self.info.get("codebase_version", "")).startswith("v3"):
            raise ValueError(
                f"expected a LeRobotDataset v3.x, got codebase_version {self.info.get('codebase_version')!r}"
            )
        n = self.info["total_episodes"]
        rows = pq.read_table(self.root / EPISODES_PATH).to_pylist() if n else []
        # Only committed episodes: a writer killed after writing the episode list but before info.json
        # may have listed one more.
        self.episodes = [r for r in rows if r["episode_index"] < n]
        tasks = pq.read_table(self.root / "meta" / "tasks.parquet").to_pylist() if n else []
        self.tasks = [t["task"] for t in sorted(tasks, key=lambda t: t["task_index"])]
        stats_path = self.root / "meta" / "stats.json"
        self.stats = json.loads(stats_path.read_text()) if n else {}
        if len(self.episodes) != n:
            raise ValueError(
                f"{self.root}: info.json lists {n} episodes, meta/episodes has {len(self.episodes)}"
            )

    @property
    def meta(self) -> dict:
        return self.info

    @property
    def fps(self) -> int:
        return self.info["fps"]

    @property
    def num_frames(self) -> int:
        return self.info["total_frames"]

    @property
    def camera_keys(self) -> list[str]:
        return [k for k in self.info["features"] if k.startswith("observation.images.")]

    @property
    def extra_keys(self) -> list[str]:
        """Per-frame float32 features beyond state, action and reward (Episode.extras), e.g. ``waypoint``."""
        return [k for k, f in self.info["features"].items() if k not in _BUILTIN and f["dtype"] == "float32"]

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self):
        return (self.episode(i) for i in range(len(self)))

    def _data_table(self, i: int) -> pa.Table:
        row = self.episodes[i]
        path = self.root / self.info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )
        table = pq.read_table(path)
        mask = np.asarray(table.column("episode_index").to_numpy() == i)
        return table.filter(pa.array(mask))

    @property
    def cameras(self) -> list[str]:
        return [k.removeprefix("observation.images.") for k in self.camera_keys]

    def episode(self, i: int, cameras: list[str] | None = None) -> Episode:
        """Episode ``i`` with decoded frames, exact state/action/reward, annotations and speech.

        ``cameras`` limits which streams are decoded (video decoding is most of the cost); None: all.
        """
        if not 0 <= i < len(self):
            raise IndexError(f"episode index {i} out of range for a dataset of {len(self)} episodes")
        row = self.episodes[i]
        table = self._data_table(i)
        frames = {}
        for key in self.camera_keys:
            cam = key.removeprefix("observation.images.")
            if cameras is not None and cam not in cameras:
                continue
            if self.info["features"][key]["dtype"] == "video":
                path = self.root / self.info["video_path"].format(
                    video_key=key,
                    chunk_index=row[f"videos/{key}/chunk_index"],
                    file_index=row[f"videos/{key}/file_index"],
                )
                first = round(row[f"videos/{key}/from_timestamp"] * self.fps)
                frames[cam] = read_video(path, first, first + row["length"])
            else:
                from PIL import Image

                frames[cam] = np.stack(
                    [
                        np.asarray(Image.open(io.BytesIO(v["bytes"])).convert("RGB"))
                        for v in table.column(key).to_pylist()
                    ]
                )
        speech_path = self.root / self.info["uio2"]["speech_path"].format(
            chunk_index=row["speech/chunk_index"], file_index=row["speech/file_index"]
        )
        depth = segmentation = None
        if row.get("maps"):
            path = self.root / self.info["uio2"]["maps_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            with np.load(path, allow_pickle=False) as z:
                depth = {k.removeprefix("depth_"): z[k] for k in z.files if k.startswith("depth_")} or None
                segmentation = {
                    k.removeprefix("segmentation_"): z[k] for k in z.files if k.startswith("segmentation_")
                } or None
        return Episode(
            depth=depth,
            segmentation=segmentation,
            frames=frames,
            state=np.asarray(table.column("observation.state").to_pylist(), dtype=np.float32),
            action=np.asarray(table.column("action").to_pylist(), dtype=np.float32),
            reward=table.column("next.reward").to_numpy().astype(np.float32),
            instruction=row["tasks"][0],
            speech=np.load(speech_path, allow_pickle=False),
            success=bool(row["success"]),
            task=row["task_name"],
            env_id=row["env_id"],
            seed=None if row["seed"] < 0 else row["seed"],
            annotations=[json.loads(a) for a in table.column("annotations").to_pylist()],
            meta=json.loads(row["extra"]),
            extras={key: np.asarray(table.column(key).to_pylist(), np.float32) for key in self.extra_keys},
        )
