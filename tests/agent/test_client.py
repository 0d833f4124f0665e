"""PolicyClient against a real server: the same actions as the local policy, async chunking, a closed loop."""

import numpy as np
import pytest

from agent.client import PolicyClient
from agent.server import ServerConfig, create_app
from agent.serving.launch import BackgroundServer
from agent.serving.runtime import new_session


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    from agent.policy import Policy

    return Policy.from_pretrained(tiny_checkpoint)


@pytest.fixture(scope="module")
def url(policy):
    with BackgroundServer(create_app(policy, ServerConfig())) as url:
        yield url


def observations(policy, n, seed=0):
    rng = np.random.default_rng(seed)
    cams = ("scene", "wrist")  # what our suite sends
    dim = 8
    return [
        {
            "images": {c: rng.integers(0, 256, (96, 96, 3), dtype=np.uint8) for c in cams},
            "state": rng.uniform(-1, 1, dim).astype(np.float32),
            "instruction": "put the red cube on the blue plate",
            "speech": rng.uniform(-0.5, 0.5, 16_000).astype(np.float32),
        }
        for _ in range(n)
    ]


def test_remote_actions_equal_local_actions(url, policy):
    """select_action and predict_action_chunk over the network are the local policy's, step for step."""
    obs = observations(policy, 2 * policy.chunk_size + 1)
    local = new_session(policy)
    with PolicyClient(url) as remote:
        for episode in range(2):  # the second one checks that reset() really restarts
            local.reset()
            remote.reset()
            for o in obs:
                a_local, a_remote = local.select_action(o), remote.select_action(o)
                assert a_remote.dtype == np.float32 and a_remote.shape == (policy.action_dim,)
                np.testing.assert_allclose(a_remote, a_local, atol=1e-6, err_msg=f"episode {episode}")
        local.reset()
        remote.reset()
        np.testing.assert_allclose(
            remote.predict_action_chunk(obs[0]), local.predict_action_chunk(obs[0]), atol=1e-6
        )


def test_async_chunking_overlaps_requests_and_stays_in_bounds(url, policy):
    threshold = policy.chunk_size // 2
    steps = 4 * policy.chunk_size
    with PolicyClient(url, async_threshold=threshold) as remote:
        remote.reset()
        requested = []
        original = remote.predict_action_chunk

        def counting(o):
            requested.append(1)
            return original(o)

        remote.predict_action_chunk = counting
        for o in observations(policy, steps, seed=1):
            a = remote.select_action(o)
            assert a.shape == (policy.action_dim,) and np.isfinite(a).all()
            assert (a >= remote.action_low).all() and (a <= remote.action_high).all()
        # A new chunk is asked for every (chunk_size - threshold) steps or so, i.e. before the queue runs dry:
        # more requests than plain chunk-by-chunk execution, fewer than one per step.
        assert steps // policy.chunk_size < len(requested) < steps
        remote.reset()
        assert len(remote._merger) == 0 and remote._pending is None


def test_async_threshold_must_leave_room(url, policy):
    with pytest.raises(ValueError, match=rf"async_threshold must be in \[0, {policy.chunk_size}\)"):
        PolicyClient(url, async_threshold=policy.chunk_size)


def _episode(env, policy, seed, max_steps):
    obs, _ = env.reset(seed=seed)
    policy.reset()
    actions = []
    for _ in range(max_steps):
        actions.append(policy.select_action(obs))
        obs, _, terminated, truncated, _ = env.step(actions[-1])
        if terminated or truncated:
            break
    return np.array(actions)


def test_closed_loop_remote_actions_match_local_in_the_suite(url, policy):
    """One seeded episode in our MuJoCo suite: the remote policy sends the same command at every step."""
    envs = pytest.importorskip("envs", reason="the MuJoCo suite (envs) is not installed")
    env = envs.make("uio2/Push-v0")
    try:
        local = _episode(env, new_session(policy), seed=3, max_steps=10)
        with PolicyClient(url) as remote:
            np.testing.assert_allclose(_episode(env, remote, seed=3, max_steps=10), local, atol=1e-6)
    finally:
        env.close()


def test_uio2_eval_gives_the_same_success_with_the_remote_policy(url, policy, tmp_path):
    """agent.evaluate, unchanged, over a seeded set of episodes: local (batched lockstep) == remote."""
    pytest.importorskip("envs", reason="the MuJoCo suite (envs) is not installed")
    from agent.evaluate import EvalConfig, run_task

    cfg = EvalConfig(
        env="tabletop", episodes=2, seed=10_000, num_envs=2, videos=0, max_steps=8, out=str(tmp_path)
    )
    local = run_task(policy, cfg, "reach", video_dir=None)
    with PolicyClient(url) as remote:
        served = run_task(remote, cfg, "reach", video_dir=None)
    keys = ("seed", "success", "steps")
    assert [{k: e[k] for k in keys} for e in served["rollouts"]] == [
        {k: e[k] for k in keys} for e in local["rollouts"]
    ]
    assert served["successes"] == local["successes"]


def test_the_client_knows_what_the_served_actions_mean(tiny_checkpoint):
    """A waypoint checkpoint's server says so; `uio2 eval --remote` then drives the env by waypoints."""
    from agent.evaluate import make_env
    from agent.policy import Policy

    waypoint_policy = Policy.from_pretrained(tiny_checkpoint, control="waypoint")
    app = create_app(waypoint_policy, ServerConfig())
    with BackgroundServer(app) as waypoint_url, PolicyClient(waypoint_url) as remote:
        assert remote.control == "waypoint"
        env = make_env("tabletop", "reach", 32, remote.control)
        assert env.unwrapped.control == "waypoint"
        assert env.action_space.high[2] > 0.2  # metres, not [-1, 1]
        env.close()
