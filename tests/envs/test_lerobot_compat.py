"""LeRobotDataset v3.0 as the real lerobot (0.4.4) writes and reads it.

The fixtures under tests/fixtures/lerobot/ were written by lerobot itself (scripts/lerobot_fixtures.py,
values given by formulas); lerobot runs in its own venv (.venv-lerobot, scripts/setup_lerobot.sh, built
by `make test`) in a subprocess.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from envs.dataset import LeRobotDataset, LeRobotFormatError
from tests.lerobot_venv import FIXTURES, REPO, run_lerobot
from tests.lerobot_venv import formulas as fx
from training.episodes import DatasetError
from training.sources import load_dataset

VIDEO_ATOL_MAX, VIDEO_ATOL_MEAN = 16, 3.0  # AV1 (lerobot's default, crf 30) on smooth 30x40 frames


def _check_fixture(ds: LeRobotDataset, kind: str) -> None:
    assert len(ds) == len(fx.LENGTHS) and ds.fps == fx.FPS and ds.cameras == [fx.CAMERA]
    assert ds.tasks == list(fx.TASKS) and ds.extra_keys == []
    for ep, n in enumerate(fx.LENGTHS):
        e = ds.episode(ep)
        assert len(e) == n and e.instruction == fx.task(ep)
        np.testing.assert_array_equal(e.state, np.stack([fx.state(ep, t) for t in range(n)]))
        np.testing.assert_array_equal(e.action, np.stack([fx.action(ep, t) for t in range(n)]))
        np.testing.assert_array_equal(ds.timestamps(ep), (np.arange(n) / fx.FPS).astype(np.float32))
        want = np.stack([fx.frame(ep, t) for t in range(n)])
        got = e.frames[fx.CAMERA]
        assert got.shape == (n, fx.HEIGHT, fx.WIDTH, 3) and got.dtype == np.uint8
        diff = np.abs(got.astype(int) - want)
        if kind == "image":
            assert diff.max() == 0  # PNG in the parquet: exact
        else:
            assert diff.max() <= VIDEO_ATOL_MAX and diff.mean() <= VIDEO_ATOL_MEAN, (
                ep,
                diff.max(),
                diff.mean(),
            )
        assert e.speech is None and e.depth is None and e.extras == {} and e.annotations == []


@pytest.mark.parametrize("kind", ["image", "video"])
def test_reads_datasets_lerobot_wrote(kind):
    root = FIXTURES / kind
    ds = LeRobotDataset(root)
    # what makes them lerobot's and not ours: every episode in one data file (and one mp4), AV1, pandas tasks
    assert {(r["data/chunk_index"], r["data/file_index"]) for r in ds.episodes} == {(0, 0)}
    assert "__index_level_0__" in pq.read_table(root / "meta" / "tasks.parquet").column_names
    if kind == "video":
        assert ds.info["features"]["observation.images.top"]["info"]["video.codec"] == "av1"
        assert {r["videos/observation.images.top/file_index"] for r in ds.episodes} == {0}
    else:
        assert pq.read_schema(root / "data/chunk-000/file-000.parquet").field(
            "observation.images.top"
        ).type == (pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
    _check_fixture(ds, kind)


def test_fixture_script_regenerates_the_fixtures(tmp_path):
    """lerobot itself writes them again (scripts/lerobot_fixtures.py write): the same values come back."""
    run_lerobot(tmp_path, "write", str(tmp_path / "fx"))
    for kind in ("image", "video"):
        _check_fixture(LeRobotDataset(tmp_path / "fx" / kind), kind)


def test_finetune_source_picks_the_camera_resizes_and_names_the_choices():
    eps = load_dataset(FIXTURES / "video", camera="top", image_size=32)
    assert [len(e) for e in eps] == list(fx.LENGTHS) and [e.instruction for e in eps] == [
        fx.task(i) for i in range(4)
    ]
    assert eps[0].images["top"].shape == (5, 32, 32, 3) and eps[0].speech is None
    # a 30x40 frame of a colour and a ramp, area-resized: its mean colour stays
    np.testing.assert_allclose(eps[0].images["top"][0].mean((0, 1)), fx.frame(0, 0).mean((0, 1)), atol=3)
    same = load_dataset(FIXTURES / "image", camera="observation.images.top")  # lerobot's key works too
    assert same[1].images["top"].shape == (7, 30, 40, 3)
    with pytest.raises(DatasetError, match=r"'front': no such camera; have \['top'\]"):
        load_dataset(FIXTURES / "image", camera="front")


# -- bad input: a clear error naming the file and the episode ---------------------------------------


@pytest.fixture
def video_copy(tmp_path):
    root = tmp_path / "ds"
    shutil.copytree(FIXTURES / "video", root)
    return root


def _edit_episodes(root: Path, edit) -> None:
    path = root / "meta/episodes/chunk-000/file-000.parquet"
    rows = pq.read_table(path).to_pylist()
    edit(rows)
    pq.write_table(pa.Table.from_pylist(rows, schema=pq.read_schema(path)), path)


def test_truncated_parquet_names_the_file_and_episode(video_copy):
    path = video_copy / "data/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(
        LeRobotFormatError, match=r"data/chunk-000/file-000.parquet \(data of episode 0\): cannot be"
    ):
        LeRobotDataset(video_copy).episode(0)
    with pytest.raises(DatasetError, match=r"episode 0.*file-000.parquet"):
        load_dataset(video_copy, camera="top")


def test_truncated_episode_metadata_names_the_file(video_copy):
    path = video_copy / "meta/episodes/chunk-000/file-000.parquet"
    path.write_bytes(path.read_bytes()[:1000])
    with pytest.raises(
        LeRobotFormatError, match=r"meta/episodes/chunk-000/file-000.parquet \(episode metadata\)"
    ):
        LeRobotDataset(video_copy)


def test_missing_video_file_names_the_file_and_episode(video_copy):
    (video_copy / "videos/observation.images.top/chunk-000/file-000.mp4").unlink()
    with pytest.raises(
        LeRobotFormatError, match=r"top/chunk-000/file-000.mp4, episode 1: the video file does not"
    ):
        LeRobotDataset(video_copy).episode(1)


def test_truncated_video_names_the_file_and_episode(video_copy):
    path = video_copy / "videos/observation.images.top/chunk-000/file-000.mp4"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(LeRobotFormatError, match=r"file-000.mp4, episode 3: "):
        LeRobotDataset(video_copy).episode(3)


def test_episode_index_range_past_its_file(video_copy):
    def edit(rows):
        rows[3]["dataset_to_index"] += 4  # 18..29, the file ends at 25

    _edit_episodes(video_copy, edit)
    ds = LeRobotDataset(video_copy)
    np.testing.assert_array_equal(ds.episode(2).action[0], fx.action(2, 0))  # the others still read
    with pytest.raises(
        LeRobotFormatError,
        match=r"data/chunk-000/file-000.parquet, episode 3: the episode spans frames 18..29 .* holds 8 of them "
        r"\(its index column covers 0..25\)",
    ):
        ds.episode(3)


def test_timestamp_outside_its_video(video_copy):
    def edit(rows):  # the video holds 2.6 s; episode 3 claims 2.8-3.6 s of it
        rows[3]["videos/observation.images.top/from_timestamp"] += 1.0
        rows[3]["videos/observation.images.top/to_timestamp"] += 1.0

    _edit_episodes(video_copy, edit)
    with pytest.raises(
        LeRobotFormatError, match=r"file-000.mp4, episode 3: timestamp 2.8000 s is past the end"
    ):
        LeRobotDataset(video_copy).episode(3)


def test_timestamp_outside_its_episode_part_of_the_video(video_copy):
    path = video_copy / "data/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    ts = table.column("timestamp").to_numpy().copy()
    ts[table.column("episode_index").to_numpy() == 1] += 0.5  # into episode 2's frames
    pq.write_table(table.set_column(table.column_names.index("timestamp"), "timestamp", pa.array(ts)), path)
    with pytest.raises(
        LeRobotFormatError,
        match=r"file-000.mp4, episode 1: timestamp 0.7000 s \(1.2000 s in the video\) lies outside "
        r"the episode's part of it \[0.5000, 1.2000\)",
    ):
        LeRobotDataset(video_copy).episode(1)


def test_v21_names_lerobots_conversion_script(video_copy):
    info = json.loads((video_copy / "meta/info.json").read_text())
    (video_copy / "meta/info.json").write_text(json.dumps({**info, "codebase_version": "v2.1"}))
    with pytest.raises(LeRobotFormatError, match=r"'v2.1'.*lerobot.datasets.v30.convert_dataset_v21_to_v30"):
        LeRobotDataset(video_copy)
    with pytest.raises(DatasetError, match="convert_dataset_v21_to_v30"):
        load_dataset(video_copy)


@pytest.mark.parametrize("missing", ["features", "fps", "data_path"])
def test_missing_info_key_is_named(video_copy, missing):
    info = json.loads((video_copy / "meta/info.json").read_text())
    del info[missing]
    (video_copy / "meta/info.json").write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match=f"missing key '{missing}'"):
        LeRobotDataset(video_copy)


def test_missing_episode_column_is_named(video_copy):
    path = video_copy / "meta/episodes/chunk-000/file-000.parquet"
    table = pq.read_table(path)
    pq.write_table(table.drop_columns(["dataset_from_index"]), path)
    with pytest.raises(LeRobotFormatError, match="no column 'dataset_from_index'"):
        LeRobotDataset(video_copy)


# -- what we write, the real lerobot loads -----------------------------------------------------------


@pytest.mark.parametrize("video", [True, False], ids=["video", "image"])
def test_lerobot_loads_what_uio2_collect_writes(tmp_path, video):
    root = tmp_path / "collected"
    cmd = [
        sys.executable,
        "-m",
        "agent.cli",
        "collect",
        "--env",
        "push",
        "--episodes",
        "2",
        "--out",
        str(root),
    ]
    cmd += ["--image-size", "32", "--control", "waypoint", *([] if video else ["--no-video"])]
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    ours = LeRobotDataset(root)
    eps = [ours.episode(i) for i in range(len(ours))]
    run_lerobot(tmp_path, "read", str(root), str(tmp_path / "lerobot.npz"))
    got = np.load(tmp_path / "lerobot.npz")
    assert list(got["camera_keys"]) == ["observation.images.scene", "observation.images.wrist"]
    assert len(got["index"]) == sum(len(e) for e in eps) == ours.num_frames
    for i, e in enumerate(eps):
        sel = got["episode_index"] == i
        np.testing.assert_array_equal(got["observation.state"][sel], e.state)
        np.testing.assert_array_equal(got["action"][sel], e.action)
        np.testing.assert_array_equal(got["velocity"][sel], e.extras["velocity"])  # our extra, a feature
        np.testing.assert_array_equal(got["timestamp"][sel], ours.timestamps(i))
        assert set(got["task"][sel]) == {e.instruction}
        for cam in ("scene", "wrist"):
            diff = np.abs(got[f"observation.images.{cam}"][sel].astype(int) - e.frames[cam])
            assert diff.max() <= (2 if video else 0), (cam, diff.max())  # lossless H.264 4:4:4 / PNG
    # lerobot's reading left our extras in place
    assert LeRobotDataset(root).episode(1).speech.shape == (65536,)
