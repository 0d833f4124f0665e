"""Reads any LeRobotDataset v3.0 folder: the ones ``lerobot`` (>= 0.4) writes and the ones our writer makes.

What lerobot's v3.0 files hold (lerobot/datasets/lerobot_dataset.py, utils.py, video_utils.py):

- ``meta/info.json``: ``codebase_version``, ``fps``, ``features`` (name -> dtype, shape, names),
  ``total_episodes``, ``data_path`` and ``video_path`` templates.
- ``meta/tasks.parquet``: the task strings are the pandas index (arrow column ``__index_level_0__``)
  beside a ``task_index`` column.
- ``meta/episodes/chunk-*/file-*.parquet``: a row per episode: ``dataset_from_index`` /
  ``dataset_to_index`` (global frame indices), ``data/chunk_index``, ``data/file_index`` and per camera
  ``videos/<key>/chunk_index``, ``file_index``, ``from_timestamp``, ``to_timestamp``; flattened
  ``stats/<feature>/<stat>`` columns (not read here: datasets carry ``meta/stats.json``).
- ``data/chunk-*/file-*.parquet``: many episodes per file; images as ``{bytes, path}`` structs (PNG)
  unless the camera is a video; videos hold many episodes back to back, AV1 by default.

Our own extras (speech/, maps/, annotations, success, per-frame ``Episode.extras``) are read when the
dataset has them; a foreign dataset simply has none. Anything malformed raises ``LeRobotFormatError``
naming the file, the episode and the key, never a silently wrong episode.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from envs.rollout import Episode
from envs.video import VideoTimestampError, read_video_at

CAMERA_PREFIX = "observation.images."
TIMESTAMP_TOLERANCE_S = 1e-4  # lerobot's default tolerance_s: a frame must lie this close to its timestamp
CONVERT_V21 = (
    "python -m lerobot.datasets.v30.convert_dataset_v21_to_v30 --repo-id=<your repo id> "
    "(lerobot/datasets/v30/convert_dataset_v21_to_v30.py, shipped with lerobot >= 0.4)"
)
# Columns every dataset of ours has; any other float32 vector feature is an Episode extra (e.g. ``waypoint``).
_BUILTIN = ("observation.state", "action", "next.reward", "timestamp")
_EPISODE_KEYS = (
    "episode_index",
    "dataset_from_index",
    "dataset_to_index",
    "data/chunk_index",
    "data/file_index",
)


class LeRobotFormatError(ValueError):
    """A dataset that is not LeRobotDataset v3.0 as lerobot writes it; the message names file, episode and key."""


def _read_parquet(path: Path, what: str, columns: list[str] | None = None) -> pa.Table:
    if not path.is_file():
        raise LeRobotFormatError(f"{path} ({what}): the file does not exist")
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as e:  # truncated, not parquet
        raise LeRobotFormatError(
            f"{path} ({what}): cannot be read as parquet ({type(e).__name__}: {e})"
        ) from e


def _need(mapping: dict, key: str, where: str) -> Any:
    if key not in mapping:
        raise LeRobotFormatError(f"{where}: missing key {key!r} (have {sorted(mapping)})")
    return mapping[key]


class LeRobotDataset:
    """Reads a LeRobotDataset v3 folder: ``len(ds)`` episodes, ``ds.episode(i) -> Episode``, ``.stats``, ``.meta``."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        info_path = self.root / "meta" / "info.json"
        if not info_path.exists():
            raise FileNotFoundError(f"not a LeRobotDataset: {info_path} does not exist")
        self.info = json.loads(info_path.read_text())
        version = str(self.info.get("codebase_version", ""))
        if version.startswith("v2"):
            raise LeRobotFormatError(
                f"{info_path}: codebase_version {version!r} is LeRobotDataset v2; this reads v3.0. "
                f"Convert it with lerobot's script: {CONVERT_V21}"
            )
        if not version.startswith("v3"):
            raise LeRobotFormatError(f"{info_path}: expected codebase_version v3.x, got {version or None!r}")
        for key in ("fps", "features", "total_episodes", "data_path"):
            _need(self.info, key, str(info_path))
        features = self.info["features"]
        n = self.info["total_episodes"]
        if n and "action" not in features:
            raise LeRobotFormatError(f"{info_path}: no 'action' feature (features: {sorted(features)})")
        if n and "observation.state" not in features:
            raise LeRobotFormatError(
                f"{info_path}: no 'observation.state' feature (features: {sorted(features)})"
            )
        if n and any(features[k]["dtype"] == "video" for k in self.camera_keys):
            _need(self.info, "video_path", str(info_path))
        self.episodes = self._read_episodes(n) if n else []
        self.tasks = self._read_tasks() if n else []
        stats_path = self.root / "meta" / "stats.json"
        self.stats = json.loads(stats_path.read_text()) if n and stats_path.exists() else {}
        self._cache: tuple[Path, pa.Table] | None = None  # the last data file read (many episodes share one)

    def _read_episodes(self, n: int) -> list[dict]:
        files = sorted((self.root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
        if not files:
            raise LeRobotFormatError(
                f"{self.root / 'meta' / 'episodes'}: no chunk-*/file-*.parquet episode files"
            )
        rows: list[dict] = []
        for path in files:
            # lerobot's per-episode stats are many columns nobody reads here; ours (uio2) are kept for resume
            table = _read_parquet(path, "episode metadata")
            if "uio2" not in self.info:
                table = table.select([c for c in table.column_names if not c.startswith("stats/")])
            for key in _EPISODE_KEYS:
                if key not in table.column_names:
                    raise LeRobotFormatError(f"{path}: episode metadata has no column {key!r}")
            rows.extend(table.to_pylist())
        # Only committed episodes: a writer killed before info.json (the commit) may have listed one more.
        rows = sorted((r for r in rows if r["episode_index"] < n), key=lambda r: r["episode_index"])
        if [r["episode_index"] for r in rows] != list(range(n)):
            have = [r["episode_index"] for r in rows]
            raise LeRobotFormatError(
                f"{self.root}: meta/info.json lists {n} episodes, meta/episodes holds episodes {have[:20]}"
            )
        return rows

    def _read_tasks(self) -> list[str]:
        path = self.root / "meta" / "tasks.parquet"
        table = _read_parquet(path, "tasks")
        # lerobot: the task strings are the pandas index (``__index_level_0__``); older uio2 writers: ``task``
        key = next((k for k in ("__index_level_0__", "task") if k in table.column_names), None)
        if key is None or "task_index" not in table.column_names:
            raise LeRobotFormatError(
                f"{path}: expected the task strings (pandas index '__index_level_0__') and 'task_index', "
                f"got columns {table.column_names}"
            )
        by_index = dict(
            zip(table.column("task_index").to_pylist(), table.column(key).to_pylist(), strict=True)
        )
        if sorted(by_index) != list(range(len(by_index))):
            raise LeRobotFormatError(
                f"{path}: task_index must run 0..{len(by_index) - 1}, got {sorted(by_index)}"
            )
        return [by_index[i] for i in range(len(by_index))]

    @property
    def meta(self) -> dict:
        return self.info

    @property
    def fps(self) -> int:
        return self.info["fps"]

    @property
    def num_frames(self) -> int:
        return self.info.get(
            "total_frames", sum(r["dataset_to_index"] - r["dataset_from_index"] for r in self.episodes)
        )

    @property
    def camera_keys(self) -> list[str]:
        return [k for k, f in self.info["features"].items() if f["dtype"] in ("video", "image")]

    @property
    def cameras(self) -> list[str]:
        """Camera names: ``observation.images.top`` -> ``top`` (other image keys stay whole)."""
        return [k.removeprefix(CAMERA_PREFIX) for k in self.camera_keys]

    @property
    def extra_keys(self) -> list[str]:
        """Per-frame float32 vectors beyond state, action and reward (Episode.extras), e.g. ``waypoint``."""
        return [
            k
            for k, f in self.info["features"].items()
            if k not in _BUILTIN
            and not k.startswith("observation.")
            and f["dtype"] == "float32"
            and len(f["shape"]) == 1
        ]

    def __len__(self) -> int:
        return len(self.episodes)

    def __iter__(self):
        return (self.episode(i) for i in range(len(self)))

    def _where(self, path: Path, i: int) -> str:
        return f"{path}, episode {i}"

    def _data_path(self, i: int) -> Path:
        row = self.episodes[i]
        return self.root / self.info["data_path"].format(
            chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
        )

    def _data_table(self, i: int) -> pa.Table:
        """Episode ``i``'s rows of its data file, checked against the episode's index range."""
        path, row = self._data_path(i), self.episodes[i]
        if self._cache is None or self._cache[0] != path:
            self._cache = (path, _read_parquet(path, f"data of episode {i}"))
        table = self._cache[1]
        for key in ("index", "episode_index"):
            if key not in table.column_names:
                raise LeRobotFormatError(f"{self._where(path, i)}: the data file has no column {key!r}")
        start, stop = row["dataset_from_index"], row["dataset_to_index"]
        index = table.column("index").to_numpy()
        mask = (index >= start) & (index < stop)
        rows = table.filter(pa.array(mask))
        got = rows.column("index").to_numpy()
        if len(got) != stop - start or not np.array_equal(got, np.arange(start, stop)):
            span = f"{index.min()}..{index.max()}" if len(index) else "empty"
            raise LeRobotFormatError(
                f"{self._where(path, i)}: the episode spans frames {start}..{stop - 1} (dataset_from_index/"
                f"dataset_to_index) but the file holds {len(got)} of them (its index column covers {span})"
            )
        if not (rows.column("episode_index").to_numpy() == i).all():
            raise LeRobotFormatError(
                f"{self._where(path, i)}: rows {start}..{stop - 1} carry episode_index "
                f"{sorted(set(rows.column('episode_index').to_pylist()))}, expected {i}"
            )
        if "length" in row and row["length"] != stop - start:
            raise LeRobotFormatError(
                f"{self._where(path, i)}: length {row['length']} disagrees with frames {start}..{stop - 1}"
            )
        return rows

    def _column(self, table: pa.Table, key: str, path: Path, i: int) -> pa.ChunkedArray:
        if key not in table.column_names:
            raise LeRobotFormatError(f"{self._where(path, i)}: no column {key!r} (have {table.column_names})")
        return table.column(key)

    def _vectors(self, table: pa.Table, key: str, path: Path, i: int) -> np.ndarray:
        """A (T, n) float32 array of a fixed-size-list (or scalar) column, values exact."""
        col = self._column(table, key, path, i).combine_chunks()
        if pa.types.is_fixed_size_list(col.type) or pa.types.is_list(col.type):
            flat = col.flatten().to_numpy(zero_copy_only=False)
            return np.asarray(flat, np.float32).reshape(len(col), -1)
        return np.asarray(col.to_numpy(zero_copy_only=False), np.float32).reshape(len(col), 1)

    def _video_frames(self, key: str, i: int, timestamps: np.ndarray) -> np.ndarray:
        row = self.episodes[i]
        cols = [f"videos/{key}/{k}" for k in ("chunk_index", "file_index", "from_timestamp", "to_timestamp")]
        for c in cols:
            _need(row, c, f"{self.root / 'meta' / 'episodes'}, episode {i}")
        path = self.root / self.info["video_path"].format(
            video_key=key, chunk_index=row[cols[0]], file_index=row[cols[1]]
        )
        if not path.is_file():
            raise LeRobotFormatError(f"{self._where(path, i)}: the video file does not exist")
        start, stop = row[cols[2]], row[cols[3]]
        tol = TIMESTAMP_TOLERANCE_S
        if timestamps.min() < -tol or start + timestamps.max() >= stop - tol:
            bad = timestamps[(timestamps < -tol) | (start + timestamps >= stop - tol)][0]
            raise LeRobotFormatError(
                f"{self._where(path, i)}: timestamp {bad:.4f} s ({start + bad:.4f} s in the video) lies outside "
                f"the episode's part of it "
                f"[{start:.4f}, {stop:.4f}) s (from_timestamp/to_timestamp of {key})"
            )
        try:
            return read_video_at(path, start + timestamps.astype(np.float64), tol)
        except VideoTimestampError as e:
            raise LeRobotFormatError(f"{self._where(path, i)}: {e}") from e
        except Exception as e:  # a truncated or corrupt mp4
            raise LeRobotFormatError(
                f"{self._where(path, i)}: cannot decode ({type(e).__name__}: {e})"
            ) from e

    def _image_frames(self, table: pa.Table, key: str, path: Path, i: int) -> np.ndarray:
        from PIL import Image

        out = []
        for t, v in enumerate(self._column(table, key, path, i).to_pylist()):
            if v is None or (v.get("bytes") is None and not v.get("path")):
                raise LeRobotFormatError(
                    f"{self._where(path, i)}: frame {t} of {key!r} has no image bytes or path"
                )
            src = io.BytesIO(v["bytes"]) if v.get("bytes") is not None else self.root / v["path"]
            try:
                out.append(np.asarray(Image.open(src).convert("RGB")))
            except Exception as e:
                raise LeRobotFormatError(
                    f"{self._where(path, i)}: frame {t} of {key!r} is not a readable image ({e})"
                ) from e
        return np.stack(out)

    def episode(self, i: int, cameras: list[str] | None = None) -> Episode:
        """Episode ``i`` with decoded frames, exact state/action, its task, and our extras where present.

        ``cameras`` limits which streams are decoded (video decoding is most of the cost); None: all.
        """
        if not 0 <= i < len(self):
            raise IndexError(f"episode index {i} out of range for a dataset of {len(self)} episodes")
        row, path = self.episodes[i], self._data_path(i)
        table = self._data_table(i)
        n = table.num_rows
        timestamps = (
            table.column("timestamp").to_numpy().astype(np.float64)
            if "timestamp" in table.column_names
            else np.arange(n) / self.fps
        )
        frames = {}
        for key, cam in zip(self.camera_keys, self.cameras, strict=True):
            if cameras is not None and cam not in cameras and key not in cameras:
                continue
            if self.info["features"][key]["dtype"] == "video":
                frames[cam] = self._video_frames(key, i, timestamps)
            else:
                frames[cam] = self._image_frames(table, key, path, i)
        task_index = (
            self._column(table, "task_index", path, i).to_pylist()
            if "task_index" in table.column_names
            else []
        )
        if task_index and not 0 <= task_index[0] < len(self.tasks):
            raise LeRobotFormatError(
                f"{self._where(path, i)}: task_index {task_index[0]} not in meta/tasks.parquet ({len(self.tasks)} tasks)"
            )
        instruction = self.tasks[task_index[0]] if task_index else (row.get("tasks") or [""])[0]
        ours = self.info.get("uio2", {})
        speech = depth = segmentation = None
        if "speech_path" in ours and "speech/chunk_index" in row:
            speech_path = self.root / ours["speech_path"].format(
                chunk_index=row["speech/chunk_index"], file_index=row["speech/file_index"]
            )
            speech = np.load(speech_path, allow_pickle=False)
        if row.get("maps"):
            maps_path = self.root / ours["maps_path"].format(
                chunk_index=row["data/chunk_index"], file_index=row["data/file_index"]
            )
            with np.load(maps_path, allow_pickle=False) as z:
                depth = {k.removeprefix("depth_"): z[k] for k in z.files if k.startswith("depth_")} or None
                segmentation = {
                    k.removeprefix("segmentation_"): z[k] for k in z.files if k.startswith("segmentation_")
                } or None
        has = table.column_names
        seed = row.get("seed")
        return Episode(
            depth=depth,
            segmentation=segmentation,
            frames=frames,
            state=self._vectors(table, "observation.state", path, i),
            action=self._vectors(table, "action", path, i),
            reward=self._vectors(table, "next.reward", path, i)[:, 0]
            if "next.reward" in has
            else np.zeros(n, np.float32),
            instruction=instruction,
            speech=speech,
            success=bool(row.get("success", True)),
            task=row.get("task_name", ""),
            env_id=row.get("env_id", ""),
            seed=None if seed is None or seed < 0 else seed,
            annotations=[json.loads(a) for a in table.column("annotations").to_pylist()]
            if "annotations" in has
            else [],
            meta=json.loads(row["extra"]) if row.get("extra") else {},
            extras={key: self._vectors(table, key, path, i) for key in self.extra_keys},
        )

    def timestamps(self, i: int) -> np.ndarray:
        """Episode ``i``'s ``timestamp`` column (seconds from the episode's start), float32 as stored."""
        return self._column(self._data_table(i), "timestamp", self._data_path(i), i).to_numpy()
