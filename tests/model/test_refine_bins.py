"""Reading an action value between the bins (model/generation.py ``refine_bins``): a bin a pixel in
the camera frame is 1.2-2 cm of table, coarser than a stack's 2.5 cm success radius."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model.generation import refined_offsets


def test_offsets_are_the_local_mean_around_the_greedy_bin():
    logits = torch.full((1, 4, 10), -30.0)
    logits[0, 0, 3] = 0.0  # all the mass on one bin: no offset
    logits[0, 1, [3, 4]] = 0.0  # split between two neighbours: halfway
    logits[0, 2, [0, 1]] = torch.tensor(
        [0.0, float(np.log(3.0))]
    )  # at the segment's start: 3/4 of the way to bin 1
    logits[0, 3, [2, 9]] = 0.0  # mass far outside the window does not pull the value
    ids = torch.tensor([[103, 103, 101, 102]])  # bins 3, 3, 1, 2 (segment start 100)
    off = refined_offsets(logits, ids, start=100, window=2)
    torch.testing.assert_close(off, torch.tensor([[0.0, 0.5, -0.25, 0.0]]), atol=1e-5, rtol=0)


def test_a_policy_refines_within_its_limits_and_rejects_a_negative_window(tiny_checkpoint):
    from agent.policy import Policy
    from tests.agent.test_policy import observation

    plain = Policy.from_pretrained(tiny_checkpoint)
    refined = Policy.from_pretrained(tiny_checkpoint, refine_bins=2)
    obs = observation(3)
    a, b = plain.predict_action_chunk(obs), refined.predict_action_chunk(obs)
    assert np.isfinite(b).all() and (b >= refined.action_low).all() and (b <= refined.action_high).all()
    width = plain.processor.action_tokenizer.bin_width
    # The same greedy bins, each read at most the window away from its centre (an untrained model
    # spreads its mass, so some values move).
    assert (np.abs(a - b) <= 2 * width + 1e-5).all() and np.abs(a - b).max() > 0
    with pytest.raises(ValueError, match="refine_bins must be >= 0, got -1"):
        Policy.from_pretrained(tiny_checkpoint, refine_bins=-1)
