"""`uio2 finetune` on a robomimic HDF5 file: starts from the checkpoint, freezes encoders, new action statistics."""

from __future__ import annotations

import json

import numpy as np
import pytest
from safetensors.torch import load_file

from agent.cli import main
from training.trainer import ENCODER_PREFIXES, train


@pytest.mark.slow
def test_finetune_cli_freezes_encoders_and_recomputes_stats(tmp_path, rollouts, make_config):
    import envs
    from envs.experts import get_expert
    from envs.hdf5 import write_robomimic
    from envs.rollout import record_episode

    base = train(make_config(tmp_path / "base", "trainer.max_steps=2"), rollouts)
    env = envs.make("uio2/Push-v0", image_size=32, cameras=("scene",))
    try:
        demos = [record_episode(env, get_expert(env), seed=s) for s in (5, 6)]
    finally:
        env.close()
    for d in demos:
        d.action = d.action * 0.5  # another robot's scale: statistics must be recomputed
    write_robomimic(tmp_path / "demos.hdf5", demos)

    out = tmp_path / "ft"
    code = main(
        [
            "finetune",
            "--checkpoint",
            str(base),
            "--dataset",
            str(tmp_path / "demos.hdf5"),
            "--out-dir",
            str(out),
            "--max-steps",
            "2",
            "--freeze-encoders",
            "trainer.checkpoint_every_n_steps=1",
            "logger.name=csv",
        ]
    )
    assert code == 0
    final = out / "checkpoints" / "step-0000002"
    before, after = load_file(base / "model.safetensors"), load_file(final / "model.safetensors")
    frozen = [k for k in before if k.startswith(ENCODER_PREFIXES)]
    trained = [k for k in before if k.startswith("decoder.")]
    assert frozen and trained
    assert all(np.array_equal(before[k].numpy(), after[k].numpy()) for k in frozen)
    assert any(not np.array_equal(before[k].numpy(), after[k].numpy()) for k in trained)
    stats = json.loads((final / "action_stats.json").read_text())
    all_actions = np.concatenate([d.action for d in demos])
    np.testing.assert_allclose(stats["q99"], np.quantile(all_actions, 0.99, axis=0), rtol=1e-5, atol=1e-6)
    assert (base / "model.safetensors").is_file()  # the source checkpoint is untouched
