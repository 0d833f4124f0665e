"""The Policy contract: shapes, limits, history, chunking, bad input, adversarial model outputs."""

import numpy as np
import pytest
import torch

from agent.policy import Policy


def observation(seed=0, instruction="reach the red cube", size=64):
    rng = np.random.default_rng(seed)
    return {
        "images": {"scene": rng.integers(0, 255, (size, size, 3), dtype=np.uint8)},
        "state": rng.normal(size=7).astype(np.float32),
        "instruction": instruction,
    }


@pytest.fixture(scope="module")
def policy(tiny_checkpoint):
    return Policy.from_pretrained(tiny_checkpoint)


def test_select_action_is_finite_and_in_limits(policy):
    policy.reset()
    for t in range(6):
        a = policy.select_action(observation(t))
        assert a.shape == (policy.action_dim,) and a.dtype == np.float32
        assert np.isfinite(a).all()
        assert (a >= policy.action_low).all() and (a <= policy.action_high).all()


def test_predict_action_chunk_shape(policy):
    policy.reset()
    chunk = policy.predict_action_chunk(observation())
    assert chunk.shape == (policy.chunk_size, policy.action_dim)


def test_receding_horizon_queries_once_per_chunk(tiny_checkpoint, monkeypatch):
    policy = Policy.from_pretrained(tiny_checkpoint, n_action_steps=2)
    calls = []
    original = policy.model.generate_from_examples
    monkeypatch.setattr(
        policy.model, "generate_from_examples", lambda *a, **k: calls.append(1) or original(*a, **k)
    )
    for t in range(6):
        policy.select_action(observation(t))
    assert len(calls) == 3


def test_history_holds_previous_frames_oldest_first(policy):
    policy.reset()
    frames = [observation(t) for t in range(4)]
    for obs in frames:
        policy.predict_action_chunk(obs)
    history = list(policy._history)
    assert len(history) == policy.config.history
    np.testing.assert_array_equal(history[-1], frames[-1]["images"]["scene"])
    np.testing.assert_array_equal(history[0], frames[-policy.config.history]["images"]["scene"])


def test_batched_prediction_equals_one_by_one(policy):
    observations = [observation(s) for s in range(3)]
    one_by_one = np.stack([policy.new_session().predict_action_chunk(o) for o in observations])
    batched = policy.predict_action_chunk_batch(observations)
    np.testing.assert_allclose(batched, one_by_one, atol=1e-6)


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda o: o["images"].pop("scene"), "lacks camera 'scene'"),
        (
            lambda o: o["images"].update(scene=np.zeros((8, 8), np.float32)),
            r"HxWx3 uint8, got \(8, 8\) float32",
        ),
        (lambda o: o.update(instruction=""), "no instruction"),
        (lambda o: o.update(instruction="", speech=np.zeros(16000, np.float32)), "silent"),
        (lambda o: o.update(state=np.array([np.nan, 0.0], np.float32)), "state must be finite"),
    ],
)
def test_bad_observations_get_clear_errors(policy, change, message):
    obs = observation()
    change(obs)
    with pytest.raises(ValueError, match=message):
        policy.select_action(obs)


def test_speech_instruction_is_used_when_text_is_empty(policy):
    obs = observation(instruction="")
    obs["speech"] = (0.1 * np.sin(np.linspace(0, 2000, 32000))).astype(np.float32)
    policy.reset()
    assert np.isfinite(policy.select_action(obs)).all()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e9])
def test_adversarial_model_outputs_become_safe_commands(tiny_checkpoint, monkeypatch, bad):
    policy = Policy.from_pretrained(tiny_checkpoint)

    def adversarial(processor, examples, target, **kwargs):
        return [np.full((policy.chunk_size, policy.action_dim), bad, np.float32) for _ in examples]

    monkeypatch.setattr(policy.model, "generate_from_examples", adversarial)
    a = policy.select_action(observation())
    assert np.isfinite(a).all()
    assert (a >= policy.action_low).all() and (a <= policy.action_high).all()
    if not np.isfinite(bad):
        np.testing.assert_array_equal(a, policy.safe_action)
        assert policy.non_finite_count == policy.chunk_size * policy.action_dim


def test_temporal_ensembling_stays_in_limits(tiny_checkpoint):
    policy = Policy.from_pretrained(tiny_checkpoint, temporal_ensemble=True)
    for t in range(5):
        a = policy.select_action(observation(t))
        assert (a >= policy.action_low).all() and (a <= policy.action_high).all()


def test_other_outputs_from_the_same_model(policy):
    obs = observation()
    torch.manual_seed(0)
    assert isinstance(policy.caption(obs), str)
    assert isinstance(policy.answer(obs, "What colour is the cube?"), str)
    box = policy.locate(obs, "red cube")
    assert box == [] or (len(box) == 4 and all(0 <= v <= 64 for v in box))
    with pytest.raises(ValueError, match="object name"):
        policy.locate(obs, "  ")


def test_questions_about_the_view_do_not_hear_the_instruction(policy, monkeypatch):
    # Every suite observation carries the spoken instruction; a caption or a point is trained
    # without audio, so the clip goes in only when asked for (listen=True).
    seen = []
    real = policy.model.generate_from_examples

    def spy(processor, examples, target, **kwargs):
        seen.extend(examples)
        return real(processor, examples, target, **kwargs)

    monkeypatch.setattr(policy.model, "generate_from_examples", spy)
    obs = observation()
    obs["speech"] = 0.1 * np.sin(np.linspace(0, 2000, 16000)).astype(np.float32)
    quiet = {k: v for k, v in obs.items() if k != "speech"}
    assert policy.generate(obs, "text", "Point to the red cube.") == policy.generate(
        quiet, "text", "Point to the red cube."
    )
    assert seen[0].audio is None and seen[1].audio is None
    policy.generate(obs, "text", "What does the speaker say?", listen=True)
    assert seen[2].audio is not None and len(seen[2].audio) == 16000


def test_a_transcribing_policy_acts_on_what_it_heard_as_on_typed_text(tiny_checkpoint, monkeypatch):
    # speech_input="transcribe": the model's own speech recognition (the clip, the ASR prompt, no
    # image, as trained) once per clip and episode, then the action call reads that transcript as
    # it reads a typed instruction; the clip is not an input of the action call.
    policy = Policy.from_pretrained(tiny_checkpoint, speech_input="transcribe")
    seen = []

    def fake(processor, examples, target, **kwargs):
        seen.extend((target, e) for e in examples)
        if target == "text":
            return ["reach the blue ball"]
        return np.zeros((len(examples), policy.chunk_size * policy.action_dim), np.float32)

    monkeypatch.setattr(policy.model, "generate_from_examples", fake)
    obs = observation(instruction="")
    obs["speech"] = (0.1 * np.sin(np.linspace(0, 2000, 32000))).astype(np.float32)
    policy.reset()
    for _ in range(2 * policy.chunk_size):
        policy.select_action(obs)
    asr = [e for t, e in seen if t == "text"]
    acts = [e for t, e in seen if t == "action"]
    assert len(asr) == 1 and asr[0].image is None and asr[0].audio is not None
    assert len(acts) == 2 and all(e.text == "reach the blue ball" and e.audio is None for e in acts)
    policy.reset()  # a new episode hears its clip afresh
    policy.select_action(obs)
    assert sum(t == "text" for t, _ in seen) == 2
    with pytest.raises(ValueError, match="speech_input must be one of"):
        Policy.from_pretrained(tiny_checkpoint, speech_input="lipread")


def test_state_dims_select_what_the_model_reads(tiny_checkpoint):
    # A checkpoint trained without the velocities (data.state_dims) is fed the same features.
    policy = Policy.from_pretrained(tiny_checkpoint, state_dims=[0, 1, 2, 6])
    obs = observation()
    example = policy._action_example(obs)
    np.testing.assert_array_equal(example.state, obs["state"][[0, 1, 2, 6]])
    assert np.isfinite(policy.select_action(obs)).all()
    bad = Policy.from_pretrained(tiny_checkpoint, state_dims=[0, 9])
    with pytest.raises(ValueError, match=r"state_dims \[0, 9\] name \[9\], but the state has 7"):
        bad.select_action(obs)


def test_previous_action_feeds_back_the_last_waypoint_reached(tiny_checkpoint):
    # data.previous_action: the model reads the last waypoint the hand reached after the state's own
    # features; before the first, the hand where it started with the gripper open.
    policy = Policy.from_pretrained(tiny_checkpoint, previous_action=True, state_dims=[0, 1, 2, 7, 8, 9, 10])
    obs = observation()
    start = np.r_[obs["state"][:3], -1.0]
    policy._observe(obs)
    np.testing.assert_array_equal(policy._action_example(obs).state, np.r_[obs["state"][:3], start])
    # Commands the hand has not got to leave it there, wherever the model sent the arm.
    command = policy.select_action(obs)
    far = dict(obs, state=obs["state"] + np.r_[np.full(3, 0.5), np.zeros(4)].astype(np.float32))
    policy.select_action(far)
    np.testing.assert_array_equal(policy._action_example(far).state[3:], start)
    assert np.isfinite(command).all()
    policy.reset()  # a new episode starts from the hand again
    policy._observe(far)
    np.testing.assert_array_equal(policy._action_example(far).state[3:], np.r_[far["state"][:3], -1.0])
    # When something else drove the robot, the caller says what it commanded; once the hand is
    # within reach_tolerance of it, that is the waypoint reached.
    policy.reset()
    policy._observe(obs)
    goal = np.r_[obs["state"][:3] + 0.1, -1.0].astype(np.float32)
    policy.set_last_command(goal)
    there = dict(obs, state=np.r_[goal[:3] + 0.003, obs["state"][3:]].astype(np.float32))
    policy._observe(there)
    np.testing.assert_allclose(policy._action_example(there).state[3:], goal)
    # Or the caller says which waypoint was reached (a demonstrator that moved on).
    policy.set_reached_waypoint([0.1, 0.2, 0.3, 1.0])
    np.testing.assert_allclose(policy._action_example(obs).state[3:], [0.1, 0.2, 0.3, 1.0])
    np.testing.assert_allclose(policy.reached_waypoint, [0.1, 0.2, 0.3, 1.0])  # what a trace reads
    policy.reset()
    assert policy.reached_waypoint is None  # nothing reached before the episode's first observation
    with pytest.raises(ValueError, match="last command must be 4 finite values"):
        policy.set_last_command([0.1, np.nan, 0.3, 1.0])


def test_previous_action_depth_two_feeds_back_the_last_two_waypoints_reached(tiny_checkpoint):
    # previous_action_depth 2 (training's data.previous_action_depth): the last waypoint reached,
    # then the one before it; before there are two, the start fills the slot, as in training.
    policy = Policy.from_pretrained(
        tiny_checkpoint,
        previous_action=True,
        previous_action_depth=2,
        state_dims=list(range(3)) + list(range(7, 15)),
    )
    obs = observation()
    start = np.r_[obs["state"][:3], -1.0]
    policy._observe(obs)
    np.testing.assert_array_equal(policy._action_example(obs).state[3:], np.r_[start, start])
    grasp = np.r_[obs["state"][:3] + 0.05, 1.0].astype(np.float32)
    policy.set_last_command(grasp)
    there = dict(obs, state=np.r_[grasp[:3], obs["state"][3:]].astype(np.float32))
    for _ in range(3):  # the fingers take gripper_steps to close
        policy.set_last_command(grasp)
        policy._observe(there)
    np.testing.assert_allclose(policy._action_example(there).state[3:], np.r_[grasp, start])
    # A command refined by millimetres is the same waypoint: it does not push the grasp out.
    policy.set_reached_waypoint(grasp + np.r_[0.002, 0, 0, 0].astype(np.float32))
    np.testing.assert_allclose(policy._action_example(there).state[7:], start)
    carried = np.r_[-0.1, 0.1, 0.09, 1.0].astype(np.float32)
    policy.set_reached_waypoint(carried)
    np.testing.assert_allclose(
        policy._action_example(there).state[3:], np.r_[carried, grasp + [0.002, 0, 0, 0]]
    )
    with pytest.raises(ValueError, match="previous_action_depth must be in 1..4, got 0"):
        Policy.from_pretrained(tiny_checkpoint, previous_action=True, previous_action_depth=0)
