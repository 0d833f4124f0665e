"""LeRobotDataset v3 writing and reading: exact round trip, layout, atomicity under SIGKILL, resume, HDF5, collect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest

from envs.dataset import LeRobotDataset, LeRobotDatasetWriter
from envs.experts import get_expert
from envs.hdf5 import RobomimicDataset, write_robomimic
from envs.rollout import record_episode
from envs.tabletop import TabletopEnv

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def episodes():
    env = TabletopEnv(None, image_size=32)
    expert = get_expert(env)
    eps = [record_episode(env, expert, seed=s) for s in range(3)]
    env.close()
    return eps


def _assert_same(a, b, frames_atol=0):
    assert a.instruction == b.instruction and a.task == b.task and a.success == b.success and a.seed == b.seed
    np.testing.assert_array_equal(a.state, b.state)
    np.testing.assert_array_equal(a.action, b.action)
    np.testing.assert_array_equal(a.reward, b.reward)
    np.testing.assert_array_equal(a.speech, b.speech)
    assert a.annotations == b.annotations and a.meta == b.meta
    for cam in a.frames:
        assert a.frames[cam].shape == b.frames[cam].shape
        assert np.abs(a.frames[cam].astype(int) - b.frames[cam]).max() <= frames_atol


@pytest.mark.parametrize("use_videos, atol", [(True, 2), (False, 0)])
def test_round_trip_exact(tmp_path, episodes, use_videos, atol):
    w = LeRobotDatasetWriter(tmp_path, use_videos=use_videos, state_names=TabletopEnv.state_names)
    for ep in episodes:
        w.add_episode(ep)
    ds = LeRobotDataset(tmp_path)
    assert len(ds) == 3 and ds.num_frames == sum(len(e) for e in episodes)
    for i, ep in enumerate(episodes):
        _assert_same(ds.episode(i), ep, frames_atol=atol)  # lossless h264 4:4:4: RGB<->YUV rounding only
    assert ds.info["features"]["observation.state"]["names"][0] == "grasp_x"
    assert ds.cameras == list(episodes[0].frames)
    one = ds.episode(0, cameras=[ds.cameras[-1]])  # decode just one stream, the same frames
    assert list(one.frames) == ds.cameras[-1:]
    np.testing.assert_array_equal(one.frames[ds.cameras[-1]], ds.episode(0).frames[ds.cameras[-1]])
    assert set(ds.tasks) == {e.instruction for e in episodes}


def test_layout_and_stats(tmp_path, episodes):
    w = LeRobotDatasetWriter(tmp_path)
    for ep in episodes:
        w.add_episode(ep)
    for rel in [
        "meta/info.json",
        "meta/stats.json",
        "meta/tasks.parquet",
        "meta/episodes/chunk-000/file-000.parquet",
        "data/chunk-000/file-000.parquet",
        "videos/observation.images.scene/chunk-000/file-000.mp4",
        "videos/observation.images.wrist/chunk-000/file-002.mp4",
    ]:
        assert (tmp_path / rel).is_file(), rel
    info = json.loads((tmp_path / "meta/info.json").read_text())
    assert info["codebase_version"] == "v3.0" and info["total_episodes"] == 3 and info["fps"] == 50
    assert info["features"]["observation.images.scene"]["dtype"] == "video"
    data = pq.read_table(tmp_path / "data/chunk-000/file-001.parquet")
    assert data.column("index").to_pylist()[0] == len(episodes[0])  # global frame index continues
    assert json.loads(data.column("annotations")[0].as_py())["scene"]["objects"]
    stats = LeRobotDataset(tmp_path).stats
    actions = np.concatenate([e.action for e in episodes])
    np.testing.assert_allclose(stats["action"]["q01"], np.quantile(actions, 0.01, axis=0), rtol=1e-6)
    np.testing.assert_allclose(stats["action"]["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-6)
    np.testing.assert_allclose(
        stats["observation.state"]["mean"],
        np.concatenate([e.state for e in episodes]).mean(0),
        rtol=1e-5,
        atol=1e-7,
    )
    img = stats["observation.images.scene"]
    assert np.asarray(img["mean"]).shape == (3, 1, 1)
    assert (np.asarray(img["q01"]) >= 0).all() and (np.asarray(img["q01"]) < np.asarray(img["mean"])).all()
    assert (np.asarray(img["mean"]) < np.asarray(img["q99"])).all() and (np.asarray(img["q99"]) <= 1).all()
    ep_rows = pq.read_table(tmp_path / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["length"] for r in ep_rows] == [len(e) for e in episodes]


def test_resume_appends_after_the_last_episode(tmp_path, episodes):
    w = LeRobotDatasetWriter(tmp_path)
    w.add_episode(episodes[0])
    w2 = LeRobotDatasetWriter(tmp_path)
    assert w2.add_episode(episodes[1]) == 1
    ds = LeRobotDataset(tmp_path)
    assert len(ds) == 2
    _assert_same(ds.episode(1), episodes[1], frames_atol=2)
    both = np.concatenate([episodes[0].action, episodes[1].action])
    np.testing.assert_allclose(ds.stats["action"]["q99"], np.quantile(both, 0.99, axis=0), rtol=1e-6)


def test_writer_rejects_mismatched_episodes(tmp_path, episodes):
    w = LeRobotDatasetWriter(tmp_path)
    w.add_episode(episodes[0])
    bad = episodes[1]
    with pytest.raises(ValueError, match="cameras"):
        w.add_episode(type(bad)(**{**bad.__dict__, "frames": {"scene": bad.frames["scene"]}}))
    with pytest.raises(ValueError, match="finite"):
        w.add_episode(type(bad)(**{**bad.__dict__, "action": bad.action * np.nan}))
    assert len(LeRobotDataset(tmp_path)) == 1


_KILLER = textwrap.dedent(
    """
    import os, signal, sys
    import envs.dataset as D
    from envs.experts import get_expert
    from envs.rollout import record_episode
    from envs.tabletop import TabletopEnv

    root, stage = sys.argv[1], sys.argv[2]
    kill = lambda: os.kill(os.getpid(), signal.SIGKILL)
    if stage == "first-episode":    # before anything was committed
        def write_video(path, frames, fps):
            kill()
        D.write_video = write_video
    elif stage == "video":          # mid-episode, while its first video file is being encoded
        real = D.write_video
        def write_video(path, frames, fps):
            if "file-002" in str(path):
                kill()
            real(path, frames, fps)
        D.write_video = write_video
    elif stage == "before-commit":  # episode files and episode list written, info.json (the commit) not yet
        real = D._write_json
        def _write_json(path, obj):
            if path.name == "info.json" and obj["total_episodes"] == 3:
                kill()
            real(path, obj)
        D._write_json = _write_json
    env = TabletopEnv(None, image_size=24)
    expert = get_expert(env)
    w = D.LeRobotDatasetWriter(root)
    for seed in range(100):
        w.add_episode(record_episode(env, expert, seed=seed))
        print(seed, flush=True)
    """
)


@pytest.mark.parametrize("stage", ["first-episode", "video", "before-commit", "from-outside"])
def test_sigkill_mid_write_leaves_whole_episodes(tmp_path, stage):
    root = tmp_path / "ds"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLER, str(root), stage],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    if (
        stage == "from-outside"
    ):  # SIGKILL from the parent, while the third episode is being recorded or written
        for line in proc.stdout:
            if line.strip() == "1":
                break
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    ds = LeRobotDataset(root)
    if stage == "first-episode":  # an empty but valid dataset, which a new writer fills
        assert len(ds) == 0 and ds.num_frames == 0
        w = LeRobotDatasetWriter(root)
        env_ = TabletopEnv(None, image_size=24)
        w.add_episode(record_episode(env_, get_expert(env_), seed=0))
        env_.close()
        assert len(LeRobotDataset(root)) == 1 and LeRobotDataset(root).episode(0).success
        return
    assert len(ds) == 2
    for i in range(len(ds)):
        ep = ds.episode(i)
        assert len(ep) == ds.episodes[i]["length"] and ep.success
    # the recorder resumes where the whole episodes end, deleting any partial files (lerobot, which globs
    # data/*/*.parquet, would read them)
    w = LeRobotDatasetWriter(root)
    left = sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "meta" not in p.parts
    )
    assert all("file-000" in p or "file-001" in p for p in left), left
    env_ = TabletopEnv(None, image_size=24)
    w.add_episode(record_episode(env_, get_expert(env_), seed=2))
    env_.close()
    ds = LeRobotDataset(root)
    assert len(ds) == 3 and ds.episode(2).seed == 2 and ds.num_frames == sum(r["length"] for r in ds.episodes)


def test_hdf5_round_trip(tmp_path, episodes):
    path = tmp_path / "demo.hdf5"
    write_robomimic(path, episodes, env_name="uio2_tabletop")
    ds = RobomimicDataset(path)
    assert len(ds) == 3 and ds.image_keys == ["scene_image", "wrist_image"] and ds.state_keys == ["state"]
    for i, ep in enumerate(episodes):
        got = ds.episode(i)
        np.testing.assert_array_equal(got.action, ep.action)
        np.testing.assert_array_equal(got.state, ep.state)
        np.testing.assert_array_equal(got.frames["scene"], ep.frames["scene"])
        assert got.instruction == ep.instruction and got.task == "uio2_tabletop" and got.success == ep.success
        assert got.speech.shape == (65536,) and np.abs(got.speech).max() > 0.05
    ds.close()


def test_hdf5_libero_instruction_and_bad_keys(tmp_path, episodes):
    import h5py

    path = tmp_path / "libero.hdf5"
    write_robomimic(path, episodes[:1], language=False)
    with h5py.File(path, "a") as f:
        f["data"].attrs["problem_info"] = json.dumps({"language_instruction": "open the top drawer"})
    ds = RobomimicDataset(path, flip_images=True)
    ep = ds.episode(0)
    assert ep.instruction == "open the top drawer"
    np.testing.assert_array_equal(ep.frames["scene"], episodes[0].frames["scene"][:, ::-1, ::-1])
    ds.close()
    with pytest.raises(ValueError, match="'joint_pos'"):
        RobomimicDataset(path, state_keys=["joint_pos"])
    with pytest.raises(FileNotFoundError, match="nothing.hdf5"):
        RobomimicDataset(tmp_path / "nothing.hdf5")


def test_collect_command(tmp_path):
    out = tmp_path / "collected"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
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
        str(out),
        "--image-size",
        "24",
    ]
    res = subprocess.run(cmd, env=env, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "2/2" in res.stderr or "100%" in res.stderr  # the tqdm bar
    ds = LeRobotDataset(out)
    assert len(ds) == 2 and all(r["task_name"] == "push" for r in ds.episodes)
    res = subprocess.run(
        [*cmd[:-4], "--env", "juggle", "--out", str(out)],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert res.returncode != 0 and "juggle" in res.stderr


def test_depth_and_segmentation_are_recorded_and_round_trip(tmp_path):
    env = TabletopEnv("push", image_size=24, depth=True, segmentation=True)
    ep = record_episode(env, get_expert(env), seed=0)
    env.close()
    assert ep.depth["scene"].shape == (len(ep), 24, 24) and ep.segmentation["wrist"].dtype == np.int32
    ids = {o["id"] for o in ep.annotations[0]["scene"]["objects"]}
    assert ids & set(np.unique(ep.segmentation["scene"][0]))
    LeRobotDatasetWriter(tmp_path).add_episode(ep)
    got = LeRobotDataset(tmp_path).episode(0)
    for cam in ("scene", "wrist"):
        np.testing.assert_array_equal(got.depth[cam], ep.depth[cam])
        np.testing.assert_array_equal(got.segmentation[cam], ep.segmentation[cam])


def test_waypoint_control_records_velocity_beside_and_round_trips(tmp_path):
    """Waypoint mode: the action is the expert's absolute target; executing it retraces the velocity run."""
    runs = {}
    for control in ("velocity", "waypoint"):
        env = TabletopEnv("pick_place", image_size=16, cameras=("scene",), control=control)
        runs[control] = record_episode(env, get_expert(env), seed=3, annotate=False, action_noise=0.3)
        env.close()
    vel, wp = runs["velocity"], runs["waypoint"]
    assert vel.success and wp.success and len(vel) == len(wp)
    np.testing.assert_allclose(wp.state, vel.state, atol=1e-5)  # same law, same path, same DART noise
    np.testing.assert_allclose(wp.action, vel.extras["waypoint"], atol=1e-5)
    np.testing.assert_allclose(wp.extras["velocity"], vel.action, atol=1e-5)
    w = LeRobotDatasetWriter(tmp_path, use_videos=False)
    w.add_episode(wp)
    ds = LeRobotDataset(tmp_path)
    assert ds.extra_keys == ["velocity"] and "velocity" in ds.stats
    np.testing.assert_array_equal(ds.episode(0).extras["velocity"], wp.extras["velocity"])
    with pytest.raises(ValueError, match="extras"):
        w.add_episode(vel)  # a velocity-mode episode carries 'waypoint', not 'velocity'
