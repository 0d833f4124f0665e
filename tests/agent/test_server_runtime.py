"""What the server reads from the policy: sessions, the observation spec, the outputs it can generate."""

import re
from collections import deque
from pathlib import Path

import pytest
import torch

from agent.serving.runtime import generation_targets, new_session, observation_spec


class _PolicyWithoutSessions:
    """A policy that clears its state in place on reset(), the case a shallow copy gets wrong."""

    def __init__(self):
        self.model = torch.nn.Linear(2, 2)
        self.queue = deque()

    def reset(self):
        self.queue.clear()


def test_fallback_sessions_share_the_model_but_not_the_state():
    base = _PolicyWithoutSessions()
    a, b = new_session(base), new_session(base)
    assert a.model is base.model and b.model is base.model
    a.queue.append(1)
    assert list(b.queue) == [] and list(base.queue) == []


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


def test_sessions_of_the_real_policy_are_independent(policy):
    a, b = new_session(policy), new_session(policy)
    assert a.model is policy.model
    assert a._queue is not b._queue and a._history is not b._history


def test_spec_and_targets_come_from_the_policy(policy):
    spec = observation_spec(policy)
    assert spec.cameras == tuple(policy.cameras)
    assert spec.max_state_dim == policy.state_dim
    assert generation_targets(policy) == ["text", "boxes"]  # the tiny checkpoint has no VQ-GANs


def test_no_pickle_in_the_serving_code():
    root = Path(__file__).resolve().parents[2] / "agent"
    files = [root / "server.py", root / "client.py", *(root / "serving").glob("*.py")]
    for f in files:
        assert not re.search(r"^\s*(import|from)\s+(c?pickle|dill|joblib|shelve)\b", f.read_text(), re.M), f
