"""Bad input: clear errors naming file, episode and key; a failed run writes over no checkpoint."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import h5py
import numpy as np
import pytest

from model.tokenizers.actions import ActionStats
from training.action_stats import check_action_stats, compute_action_stats
from training.checkpoint import LAST, PretrainedCheckpoint, latest_checkpoint
from training.episodes import DatasetError, EpisodeData
from training.finetune import add_arguments, finetune_config
from training.sources import load_dataset
from training.trainer import CheckpointExistsError, prepare, train


@pytest.fixture(scope="module")
def raw_episodes():
    """Two envs.rollout.Episode objects (what dataset writers take), Reach at 32x32."""
    import envs
    from envs.experts import get_expert
    from envs.rollout import record_episode

    env = envs.make("uio2/Reach-v0", image_size=32, cameras=("scene",))
    try:
        return [record_episode(env, get_expert(env), seed=s) for s in (0, 1)]
    finally:
        env.close()


def write_hdf5(path: Path, episodes) -> Path:
    from envs.hdf5 import write_robomimic

    write_robomimic(path, episodes)
    return path


def digest(folder: Path) -> dict[str, str]:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in folder.rglob("*")
        if p.is_file()
    }


def test_a_good_hdf5_file_loads(tmp_path, raw_episodes):
    eps = load_dataset(write_hdf5(tmp_path / "good.hdf5", raw_episodes))
    assert len(eps) == 2 and eps[1].action.shape[1] == 4 and eps[0].instruction


def test_a_list_of_datasets_pools_their_episodes(tmp_path, raw_episodes):
    from training.configuration import DataConfig
    from training.sources import load_episodes

    a, b = write_hdf5(tmp_path / "a.hdf5", raw_episodes), write_hdf5(tmp_path / "b.hdf5", raw_episodes[:1])
    eps = load_episodes(DataConfig(dataset=[str(a), str(b)]))
    assert [(Path(e.source).name, e.index) for e in eps] == [("a.hdf5", 0), ("a.hdf5", 1), ("b.hdf5", 0)]
    with pytest.raises(DatasetError, match="missing.hdf5"):  # a bad member is named, not skipped
        load_episodes(DataConfig(dataset=[str(a), str(tmp_path / "missing.hdf5")]))


def test_corrupt_file_is_named(tmp_path):
    bad = tmp_path / "corrupt.hdf5"
    bad.write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(range(256)) * 8)
    with pytest.raises(DatasetError, match="corrupt.hdf5"):
        load_dataset(bad)
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset(tmp_path / "nope.hdf5")
    text = tmp_path / "episodes.txt"
    text.write_text("not a dataset")
    with pytest.raises(DatasetError, match="episodes.txt: expected a LeRobotDataset v3 folder or"):
        load_dataset(text)


def test_truncated_lerobot_shard_names_file_and_episode(tmp_path, raw_episodes):
    from envs.dataset import LeRobotDatasetWriter

    root = tmp_path / "lerobot"
    writer = LeRobotDatasetWriter(root, use_videos=False)
    for ep in raw_episodes:
        writer.add_episode(ep)
    assert len(load_dataset(root)) == 2
    shard = sorted((root / "data").rglob("*.parquet"))[1]
    shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    with pytest.raises(DatasetError, match=r"lerobot, episode 1: cannot be read"):
        load_dataset(root)


def test_missing_key_is_named(tmp_path, raw_episodes):
    path = write_hdf5(tmp_path / "missing.hdf5", raw_episodes)
    with h5py.File(path, "a") as f:
        del f["data/demo_1/actions"]
    with pytest.raises(DatasetError, match=r"missing.hdf5, episode 1: .*actions"):
        load_dataset(path)


def test_missing_camera_is_named(tmp_path, raw_episodes):
    path = write_hdf5(tmp_path / "cams.hdf5", raw_episodes)
    with pytest.raises(
        DatasetError, match=r"cams.hdf5, episode 0, key 'wrist': no such camera; have \['scene'\]"
    ):
        load_dataset(path, camera="wrist")


def test_nan_actions_are_named(tmp_path, raw_episodes):
    path = write_hdf5(tmp_path / "nan.hdf5", raw_episodes)
    with h5py.File(path, "a") as f:
        a = f["data/demo_1/actions"]
        bad = a[()]
        bad[3, 2] = np.nan
        a[...] = bad
    with pytest.raises(
        DatasetError,
        match=r"nan.hdf5, episode 1, key 'action': NaN or inf in actions \(first at frame 3, dimension 2\)",
    ):
        load_dataset(path)


def test_episode_shapes_are_checked():
    ok = dict(
        source="x.h5",
        index=4,
        images={"scene": np.zeros((3, 8, 8, 3), np.uint8)},
        state=np.zeros((3, 2), np.float32),
        action=np.zeros((3, 4), np.float32),
    )
    EpisodeData(**ok).validate()
    with pytest.raises(DatasetError, match=r"x.h5, episode 4, key 'state': must be \(3, S\)"):
        EpisodeData(**{**ok, "state": np.zeros((2, 2), np.float32)}).validate()
    with pytest.raises(DatasetError, match=r"key 'images.scene': must be \(3, H, W, 3\) uint8"):
        EpisodeData(**{**ok, "images": {"scene": np.zeros((3, 8, 8, 3), np.float32)}}).validate()


def test_stats_of_the_wrong_dimension(raw_episodes):
    from training.sources import from_rollout

    eps = [from_rollout(e, i, source="demo.hdf5") for i, e in enumerate(raw_episodes)]
    stats = compute_action_stats(eps)
    check_action_stats(stats, eps, "ckpt")
    seven = ActionStats(q01=[-1.0] * 7, q99=[1.0] * 7)
    with pytest.raises(
        DatasetError,
        match=r"from checkpoint C have 7 dimensions but demo.hdf5, episode 0, key 'action' has 4",
    ):
        check_action_stats(seven, eps, "checkpoint C")
    odd = EpisodeData(
        source="other.h5", index=2, images=eps[0].images, state=eps[0].state, action=eps[0].action[:, :3]
    )
    with pytest.raises(DatasetError, match=r"other.h5, episode 2, key 'action': 3 action dimensions"):
        compute_action_stats([*eps, odd])


def test_a_failed_save_leaves_the_old_checkpoint_whole(tmp_path):
    """The atomic publish: a save that dies halfway leaves no partial folder and the old one intact."""
    root = tmp_path / "checkpoints"
    old = root / "step-0000003"
    old.mkdir(parents=True)
    (old / "model.safetensors").write_bytes(b"old weights")
    (old / "trainer_state.ckpt").write_bytes(b"old state")
    (root / LAST).write_text(old.name)

    class Trainer:  # just what PretrainedCheckpoint.save reads from a Lightning Trainer
        global_step, is_global_zero = 3, True
        lightning_module = None  # no weight average to swap in

        class strategy:
            @staticmethod
            def barrier(name):
                pass

        @staticmethod
        def save_checkpoint(path):
            Path(path).write_bytes(b"new state")

    def dies_halfway(directory: Path) -> None:
        (directory / "model.safetensors").write_bytes(b"half")
        raise OSError("disk full")

    before = digest(root)
    with pytest.raises(OSError, match="disk full"):
        PretrainedCheckpoint(root, dies_halfway, cfg=None, every_n_steps=1).save(Trainer())
    assert {k: v for k, v in digest(root).items() if not k.startswith(".tmp")} == before
    assert latest_checkpoint(root) == old


@pytest.mark.slow
def test_failed_runs_write_over_no_checkpoint(tmp_path, rollouts, make_config, raw_episodes):
    out = tmp_path / "run"
    ckpt = train(make_config(out, "trainer.max_steps=2"), rollouts)
    before = digest(out / "checkpoints")

    # A new run told not to resume refuses the folder instead of writing over it.
    with pytest.raises(CheckpointExistsError, match="already holds checkpoints"):
        prepare(make_config(out, "trainer.max_steps=2", "resume=false"), rollouts)

    # Fine-tuning with the checkpoint's 4-D statistics on 7-D actions fails before any write.
    seven = []
    for ep in raw_episodes:
        ep = type(ep)(**{**ep.__dict__, "action": np.concatenate([ep.action, ep.action[:, :3]], axis=1)})
        seven.append(ep)
    data = write_hdf5(tmp_path / "seven.hdf5", seven)
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    ft = tmp_path / "finetune"
    args = parser.parse_args(
        ["--checkpoint", str(ckpt), "--dataset", str(data), "--out-dir", str(ft), "--keep-stats"]
    )
    with pytest.raises(
        DatasetError,
        match=r"from checkpoint .*step-0000002 have 4 dimensions but .*seven.hdf5, episode 0, key 'action' has 7",
    ):
        train(finetune_config(args))
    assert not (ft / "checkpoints").exists()
    # Fine-tuning into the checkpoint's own folder is refused.
    args = parser.parse_args(["--checkpoint", str(ckpt), "--dataset", str(data), "--out-dir", str(ckpt)])
    with pytest.raises(ValueError, match="must not contain the checkpoint it starts from"):
        train(finetune_config(args))
    assert digest(out / "checkpoints") == before


def test_a_state_point_needs_the_camera_frame_and_three_features_it_reads(rollouts):
    """data.state_point (the hand's pixel for the pointer) is refused, naming the value, where it
    cannot mean a point: without camera-frame waypoints, or past the state features read."""
    from training.action_stats import action_frame_for

    with pytest.raises(ValueError, match=r"state_point=0 .* needs data.action_frame=camera \(got 'native'\)"):
        action_frame_for("native", "scene", rollouts, state_point=0, state_features=8)
    with pytest.raises(ValueError, match=r"state_point=6 .* of the 8 the model reads .*: 0..5"):
        action_frame_for("camera", "scene", rollouts, state_point=6, state_features=8)
    frame = action_frame_for("camera", "scene", rollouts, state_point=0, state_features=8)
    assert frame.state_point == 0
    assert action_frame_for("camera", "scene", rollouts).state_point is None
