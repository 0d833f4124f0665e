"""A LeRobot user's path: a dataset the real lerobot recorded, `uio2 finetune --camera`, then `uio2 eval`."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent.cli import main
from envs.dataset import LeRobotDataset
from tests.lerobot_venv import run_lerobot
from training.trainer import train


@pytest.mark.slow
def test_finetune_on_a_dataset_lerobot_recorded_then_eval(tmp_path, rollouts, make_config):
    base = train(make_config(tmp_path / "base", "trainer.max_steps=2"), rollouts)
    # Demonstrations of our push task in lerobot's own files: collected, then read and recorded again by
    # lerobot's writer (AV1 video, both episodes in one parquet and one mp4 per camera, pandas tasks).
    ours = tmp_path / "collected"
    assert (
        main(
            [
                "collect",
                "--env",
                "push",
                "--episodes",
                "2",
                "--seed",
                "7",
                "--out",
                str(ours),
                "--image-size",
                "32",
            ]
        )
        == 0
    )
    ds_root = tmp_path / "lerobot" / "user" / "push"
    run_lerobot(tmp_path, "rewrite", str(ours), str(ds_root))
    ds = LeRobotDataset(ds_root)
    assert (
        ds.info["features"]["observation.images.scene"]["info"]["video.codec"] == "av1"
        and "uio2" not in ds.info
    )
    assert {r["data/file_index"] for r in ds.episodes} == {0} and len(ds) == 2

    out = tmp_path / "ft"
    argv = [
        "finetune",
        "--checkpoint",
        str(base),
        "--dataset",
        str(ds_root),
        "--camera",
        "observation.images.scene",
    ]
    argv += [
        "--out-dir",
        str(out),
        "--max-steps",
        "2",
        "trainer.checkpoint_every_n_steps=1",
        "logger.name=csv",
    ]
    assert main(argv) == 0
    final = out / "checkpoints" / "step-0000002"
    stats = json.loads((final / "action_stats.json").read_text())
    actions = np.concatenate([ds.episode(i).action for i in range(len(ds))])
    np.testing.assert_allclose(stats["q99"], np.quantile(actions, 0.99, axis=0), rtol=1e-5, atol=1e-6)
    assert json.loads((final / "policy.json").read_text())["camera"] == "scene"

    report = tmp_path / "eval"
    argv = ["eval", "--checkpoint", str(final), "--env", "tabletop", "--tasks", "push", "--episodes", "1"]
    argv += [
        "--num-envs",
        "1",
        "--max-steps",
        "5",
        "--videos",
        "0",
        "--image-size",
        "32",
        "--out",
        str(report),
    ]
    assert main(argv) == 0
    assert "push" in json.dumps(json.loads((report / "report.json").read_text()))


def test_finetune_reads_at_the_models_image_size_with_the_chosen_camera(tmp_path):
    import argparse

    from training.finetune import add_arguments, finetune_config

    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    (ckpt / "config.json").write_text(json.dumps({"image_size": 48}))
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(
        ["--checkpoint", str(ckpt), "--dataset", "d", "--camera", "observation.images.top"]
    )
    cfg = finetune_config(args)
    assert cfg.data.image_size == 48 and cfg.data.camera == "top"
    assert (
        finetune_config(parser.parse_args(["--checkpoint", str(ckpt), "--dataset", "d"])).data.camera
        == "scene"
    )
