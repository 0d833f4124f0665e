"""The BC reference benchmark's policy: trains on real rollouts, listens to the instruction, stays in limits."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="module")
def bench(load_benchmark):
    return load_benchmark("bc_reference")


def test_reference_fits_the_demonstrations_and_reads_the_instruction(bench, rollouts):
    ref = bench.Reference(rollouts, steps=150, batch=16, seed=0)
    assert np.mean(ref.losses[-20:]) < 0.5 * np.mean(ref.losses[:5])  # it learns
    obs = {
        "images": {"scene": rollouts[0].images["scene"][0]},
        "state": rollouts[0].state[0],
        "instruction": rollouts[0].instruction,
    }
    a = ref.act(obs)
    assert a.shape == (rollouts[0].action.shape[1],) and np.isfinite(a).all() and np.abs(a).max() <= 1.0
    other = next(e.instruction for e in rollouts if e.instruction != rollouts[0].instruction)
    assert not np.allclose(a, ref.act({**obs, "instruction": other}))  # FiLM: the words change the act
