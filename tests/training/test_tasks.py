"""Task generators: every family makes valid Examples from real rollouts, with answers true to the scene."""

from __future__ import annotations

import numpy as np
import pytest

from model.example import Example
from model.tokenizers.locations import LocationTokenizer
from training.episodes import EpisodeData
from training.mixture import TaskMixture
from training.tasks import FAMILIES, TaskContext, select
from training.tasks.activity import activity_from_instruction
from training.tasks.base import ANNOTATIONS, AUDIO_TOKENIZER, DEPTH, IMAGE_TOKENIZER, SEGMENTATION, SPEECH
from training.tasks.geometry3d import project
from training.tasks.templates import TEMPLATES, prompt

ALL = {ANNOTATIONS, SPEECH, IMAGE_TOKENIZER, AUDIO_TOKENIZER, DEPTH, SEGMENTATION}
LOC = LocationTokenizer()


def first_example(family: str, episodes, ctx, seed=0) -> Example:
    rng = np.random.default_rng(seed)
    for ep in episodes:
        for t in range(len(ep)):
            ex = FAMILIES[family].make(ep, t, rng, ctx)
            if ex is not None:
                return ex
    raise AssertionError(f"family {family} made no example from {len(episodes)} episodes")


@pytest.fixture(scope="module")
def dense_episode():
    """A short episode with depth and segmentation maps, straight from the env's observations."""
    import envs
    from envs.experts import get_expert

    env = envs.make("uio2/Push-v0", image_size=32, cameras=("scene",), depth=True, segmentation=True)
    try:
        obs, _ = env.reset(seed=3)
        expert = get_expert(env)
        expert.reset()
        rows = []
        for _ in range(6):
            rows.append((obs, env.unwrapped.annotations("scene")))
            action = expert.act(obs)
            obs, *_ = env.step(action)
            rows[-1] = (*rows[-1], action)
    finally:
        env.close()
    return EpisodeData(
        source="test:dense",
        index=0,
        images={"scene": np.stack([o["images"]["scene"] for o, _, _ in rows])},
        state=np.stack([o["state"] for o, _, _ in rows]).astype(np.float32),
        action=np.stack([a for _, _, a in rows]).astype(np.float32),
        instruction=rows[0][0]["instruction"],
        speech=rows[0][0]["speech"],
        annotations=[a for _, a, _ in rows],
        depth={"scene": np.stack([o["depth"]["scene"] for o, _, _ in rows])},
        segmentation={"scene": np.stack([o["segmentation"]["scene"] for o, _, _ in rows])},
    ).validate()


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_every_family_makes_a_valid_example(family, rollouts, dense_episode):
    from envs.speech import synthesize

    ctx = TaskContext(history=2, chunk_size=4, capabilities=ALL, synthesize=synthesize)
    ex = first_example(family, [*rollouts, dense_episode], ctx)
    ex.validate()
    assert ex.meta["task"] == family
    assert ex.target == FAMILIES[family].target
    if ex.target == "action":
        assert ex.target_value.shape == (4, rollouts[0].action.shape[1])
        assert ex.state is not None and ex.image is not None
    if ex.image_history is not None:
        assert 1 <= len(ex.image_history) <= 2


def test_action_chunk_is_the_demonstration(rollouts):
    ep = rollouts[1]
    ctx = TaskContext(history=2, chunk_size=4)
    ex = FAMILIES["action"].make(ep, 5, np.random.default_rng(0), ctx)
    np.testing.assert_array_equal(ex.target_value, ep.action[5:9])
    np.testing.assert_array_equal(ex.image, ep.images["scene"][5])
    np.testing.assert_array_equal(ex.image_history, ep.images["scene"][3:5])  # oldest first
    # Past the end the last action repeats, never zeros or garbage.
    tail = FAMILIES["action"].make(ep, len(ep) - 2, np.random.default_rng(0), ctx).target_value
    np.testing.assert_array_equal(tail[1:], np.repeat(ep.action[-1:], 3, axis=0))


def test_random_shift_moves_the_frame_and_its_history_together():
    from training.tasks.base import random_shift

    image = np.zeros((16, 16, 3), np.uint8)
    image[8, 8] = 255
    past = np.zeros((2, 16, 16, 3), np.uint8)
    past[:, 8, 8] = 200
    moves = set()
    for seed in range(30):
        a, b = random_shift(image, past, np.random.default_rng(seed), 2)
        assert a.shape == image.shape and b.shape == past.shape
        (y, x), (yh, xh) = np.argwhere(a[..., 0] == 255)[0], np.argwhere(b[0, ..., 0] == 200)[0]
        assert (y, x) == (yh, xh) and abs(y - 8) <= 2 and abs(x - 8) <= 2  # one offset for the clip
        moves.add((int(y), int(x)))
    assert len(moves) > 5  # it does shift, by different amounts
    same, none = random_shift(image, None, np.random.default_rng(0), 0)
    assert same is image and none is None  # pad 0: untouched


def test_action_examples_are_shifted_when_asked(rollouts):
    ep = rollouts[1]
    ctx = TaskContext(history=2, chunk_size=4, random_shift=4)
    shifted = [FAMILIES["action"].make(ep, 5, np.random.default_rng(s), ctx).image for s in range(4)]
    assert any(not np.array_equal(im, ep.images["scene"][5]) for im in shifted)
    np.testing.assert_array_equal(  # the label is untouched
        FAMILIES["action"].make(ep, 5, np.random.default_rng(0), ctx).target_value, ep.action[5:9]
    )


def test_spoken_instruction_is_not_written_in_the_prompt(rollouts):
    ep = rollouts[0]
    ex = FAMILIES["action_speech"].make(ep, 0, np.random.default_rng(0), TaskContext())
    assert ex.audio is not None and ep.instruction.lower() not in ex.text.lower()


def test_refexp_box_and_pointing_decode_to_the_annotation(rollouts):
    ctx = TaskContext(capabilities=ALL)
    for seed in range(5):
        box_ex = first_example("refexp", rollouts, ctx, seed)
        hw = box_ex.image.shape[:2]
        (decoded,) = LOC.decode_boxes(box_ex.target_value, hw)
        half_bin = hw[0] / 1000
        np.testing.assert_allclose(decoded, box_ex.meta["box"], atol=half_bin + 1e-6)
        pt_ex = first_example("pointing", rollouts, ctx, seed)
        (point,) = LOC.decode_points(pt_ex.target_value, pt_ex.image.shape[:2])
        np.testing.assert_allclose(point, pt_ex.meta["point"], atol=half_bin + 1e-6)


def test_pointing_speech_hears_the_name_and_points_at_it(rollouts):
    from envs.speech import synthesize

    ctx = TaskContext(capabilities=ALL, synthesize=synthesize)
    waves = []
    for seed in range(4):
        ex = first_example("pointing_speech", rollouts, ctx, seed)
        (point,) = LOC.decode_points(ex.target_value, ex.image.shape[:2])
        np.testing.assert_allclose(point, ex.meta["point"], atol=ex.image.shape[0] / 1000 + 1e-6)
        assert ex.meta["name"] not in ex.text  # heard, not read
        assert ex.audio is not None and np.abs(ex.audio).max() > 0.05  # somebody speaks
        waves.append(ex.audio)
    assert len({w.tobytes() for w in waves}) > 1  # voices, speeds or phrasings differ
    # Without a synthesiser the family makes nothing (and the mixture drops it with a reason).
    assert (
        FAMILIES["pointing_speech"].make(
            rollouts[0], 0, np.random.default_rng(0), TaskContext(capabilities=ALL)
        )
        is None
    )


@pytest.mark.parametrize("family", ["refexp", "pointing", "detection", "boxes3d", "camera_pose"])
def test_location_tokens_use_the_models_bins(family, rollouts):
    # A model with 64 location bins must never be handed <loc_N> with N >= 64 (training would stop).
    ctx = TaskContext(capabilities=ALL, locations=LocationTokenizer(64))
    for seed in range(3):
        ex = first_example(family, rollouts, ctx, seed=seed)
        bins = LocationTokenizer(1000).bins_in(ex.target_value)
        assert bins and max(bins) < 64
    if family == "pointing":  # and they decode with the same 64 bins inside the image
        ((x, y),) = LocationTokenizer(64).decode_points(ex.target_value, ex.image.shape[:2])
        assert 0 <= x <= ex.image.shape[1] and 0 <= y <= ex.image.shape[0]


def test_cuboid_has_12_tokens_and_projects_like_the_simulator(rollouts):
    ep = rollouts[1]
    ann = ep.annotations[0]
    hw = ep.images["scene"].shape[1:3]
    for obj in ann["objects"]:
        x, y, depth = project(obj["center"], ann["camera"], hw)
        assert depth > 0
        np.testing.assert_allclose([x, y], obj["point"], atol=1e-3)  # envs projects the same centre
    ex = first_example("boxes3d", rollouts, TaskContext(capabilities=ALL))
    assert len(LOC.bins_in(ex.target_value)) == 12
    cam = first_example("camera_pose", rollouts, TaskContext(capabilities=ALL))
    assert len(LOC.bins_in(cam.target_value)) == 9


def test_vqa_answers_are_true(rollouts):
    ctx = TaskContext(capabilities=ALL)
    seen = set()
    for ep in rollouts:
        for t in range(0, len(ep), 3):
            rng = np.random.default_rng(t)
            ex = FAMILIES["vqa"].make(ep, t, rng, ctx)
            if ex is None:
                continue
            kind = ex.meta["question_type"]
            seen.add(kind)
            objs = [o for o in ep.annotations[t]["objects"] if o["visible"]]
            if kind == "count":
                shape = ex.text.split("How many ")[1].split("s are")[0]
                from training.tasks.vqa import NUMBERS

                assert ex.target_value == NUMBERS[sum(o["shape"] == shape for o in objs)]
            if kind == "colour":
                subject = ex.text.split("What colour is the ")[1].split("?")[0].split()
                same = sorted(
                    (o for o in objs if o["shape"] == subject[-1]), key=lambda o: o["box"][0] + o["box"][2]
                )
                obj = same[-1] if subject[0] == "rightmost" else same[0]
                assert len(same) == 1 or subject[0] in ("leftmost", "rightmost")
                assert ex.target_value == obj["colour"]
    assert {"count", "colour", "position"} <= seen


def test_templates_paraphrase():
    rng = np.random.default_rng(0)
    texts = {prompt("caption", rng) for _ in range(40)}
    assert len(texts) == len(TEMPLATES["caption"]) > 1
    assert "red cube" in prompt("refexp", rng, name="red cube")
    with pytest.raises(KeyError, match="no prompt templates"):
        prompt("nope", rng)


def test_activity_answer():
    assert activity_from_instruction("Push the red cube onto the mat.") == (
        "The robot is pushing the red cube onto the mat."
    )
    assert activity_from_instruction("pick the cube and drop it in the box") == (
        "The robot is picking the cube and dropping it in the box."
    )
    assert activity_from_instruction("twirl").startswith("The robot is working on")


def test_mixture_is_a_pure_function_of_the_index(rollouts):
    ctx = TaskContext(capabilities={ANNOTATIONS, SPEECH})
    a = TaskMixture(rollouts, {"action": 2, "caption": 1, "vqa": 1, "refexp": 1}, ctx, seed=3)
    b = TaskMixture(rollouts, {"action": 2, "caption": 1, "vqa": 1, "refexp": 1}, ctx, seed=3)
    for i in (0, 7, 123):
        ea, eb = a.example(i), b.example(i)
        assert ea.meta == eb.meta and ea.text == eb.text
        assert str(ea.target_value) == str(eb.target_value)
    tasks = [a.example(i).meta["task"] for i in range(200)]
    assert tasks.count("action") > tasks.count("caption") > 0  # weights are honoured


def test_families_without_what_they_need_are_dropped_with_a_reason():
    kept, dropped = select({"action": 1, "depth": 1, "tts": 1, "caption": 0}, {ANNOTATIONS})
    assert kept == {"action": 1.0}
    assert "image tokenizer" in dropped["depth"] and "depth maps" in dropped["depth"]
    assert "audio tokenizer" in dropped["tts"]
    with pytest.raises(ValueError, match="unknown task famil"):
        select({"actoin": 1}, set())
    with pytest.raises(ValueError, match="weight must be >= 0"):
        select({"action": -1}, set())


def test_speech_prob_resplits_the_action_weight():
    from training.mixture import mixture_weights

    w = mixture_weights({"action": 4.0, "action_speech": 1.0, "caption": 1.0}, speech_prob=0.3)
    assert w == pytest.approx({"action": 3.5, "action_speech": 1.5, "caption": 1.0})
    assert mixture_weights({"action": 4.0}, None) == {"action": 4.0}
    with pytest.raises(ValueError, match="speech_prob must be in"):
        mixture_weights({"action": 1.0}, 1.5)


def _waypoint_episode(n: int = 40) -> EpisodeData:
    """The hand closes in on one waypoint over the first 10 frames and waits there for the rest."""
    goal = np.array([0.1, -0.05, 0.12], np.float32)
    start = np.array([0.0, 0.2, 0.25], np.float32)
    alpha = np.clip(np.arange(n) / 10.0, 0.0, 1.0)[:, None]
    state = np.zeros((n, 8), np.float32)
    state[:, :3] = (1 - alpha) * start + alpha * goal
    action = np.concatenate([np.repeat(goal[None], n, 0), -np.ones((n, 1), np.float32)], -1)
    return EpisodeData(
        source="test", index=0, images={"scene": np.zeros((n, 8, 8, 3), np.uint8)}, state=state,
        action=action, instruction="touch the red cube",
    )  # fmt: skip


def test_distance_weighted_action_frames_favour_frames_away_from_the_waypoint():
    ep = _waypoint_episode()
    rng = np.random.default_rng(0)
    uniform = TaskContext(history=0, chunk_size=1, action_frames="uniform")
    distance = TaskContext(history=0, chunk_size=1, action_frames="distance")
    assert FAMILIES["action"].make(ep, 25, rng, uniform).meta["frame"] == 25
    drawn = np.array([FAMILIES["action"].make(ep, 25, rng, distance).meta["frame"] for _ in range(2000)])
    # 10 of 40 frames are on the way: uniformly a quarter of the draws, weighted by distance about 3 in 4.
    assert (drawn < 10).mean() > 0.6
    assert (drawn >= 10).any()  # frames at the waypoint still count (the 2 cm floor)


def test_a_grasp_or_release_weighs_as_much_as_a_frame_far_from_its_waypoint():
    """The hand waits at its waypoint while the gripper turns, so by distance alone the grasp and the
    release were drawn 5x less often than they happen (the demo's policy, at the bin with the cube,
    carried it off again instead of letting go). Frames where the label's gripper turns, and the
    frame after, weigh as a frame GRIPPER_TURN_DISTANCE away."""
    from training.tasks.base import GRIPPER_TURN_DISTANCE, WAYPOINT_DISTANCE_FLOOR

    ep = _waypoint_episode()
    ep.action[30:, 3] = 1.0  # the gripper closes at frame 30, with the hand at its waypoint
    shares = {}
    for weight in (GRIPPER_TURN_DISTANCE, 0.4):  # the default, and data.gripper_turn_distance=0.4
        rng = np.random.default_rng(0)
        ctx = TaskContext(history=0, chunk_size=1, action_frames="distance", gripper_turn_distance=weight)
        drawn = np.array([FAMILIES["action"].make(ep, 25, rng, ctx).meta["frame"] for _ in range(4000)])
        turn = np.isin(drawn, [30, 31]).mean()
        waiting = np.isin(drawn, [28, 29]).mean()  # two frames at the waypoint, no turn
        assert turn > 0.8 * (weight / WAYPOINT_DISTANCE_FLOOR) * waiting
        assert np.isin(drawn, [32]).any()  # the frames after still count, at the floor
        shares[weight] = turn
    assert shares[0.4] > 1.5 * shares[GRIPPER_TURN_DISTANCE]  # the setting is used, not a cached draw


def test_a_led_stroke_weighs_as_far_as_its_chunk_reaches():
    """A drawer's stroke is led by a point 3 cm ahead of the hand, so by the distance to the first
    label its frames weighed little more than waiting ones (the demo's policy then held the handle
    where it grasped it). The example's target is the whole chunk: weighed by its furthest waypoint
    (7.5 cm ahead with 4), the stroke is drawn more, and a chunk of 1 weighs as before."""
    n = 40
    state = np.zeros((n, 8), np.float32)
    state[:20, 1] = 0.015 * np.arange(20)  # the hand pulls 1.5 cm a step for 20 frames ...
    state[20:, 1] = state[19, 1]  # ... then waits where it stopped
    action = np.zeros((n, 4), np.float32)
    action[:, :3] = state[:, :3]
    action[:20, 1] += 0.03  # led 3 cm ahead
    action[:, 3] = 1.0
    ep = EpisodeData(
        source="test", index=0, images={"scene": np.zeros((n, 8, 8, 3), np.uint8)}, state=state,
        action=action, instruction="open the drawer",
    )  # fmt: skip
    shares = {}
    for chunk in (1, 4):
        rng = np.random.default_rng(0)
        ctx = TaskContext(history=0, chunk_size=chunk, action_frames="distance", gripper_turn_distance=0.0)
        drawn = np.array([FAMILIES["action"].make(ep, 25, rng, ctx).meta["frame"] for _ in range(3000)])
        shares[chunk] = (drawn < 20).mean()
    assert 0.55 < shares[1] < 0.65  # 0.03 against the 0.02 floor: 60%
    assert shares[4] > 0.72, shares  # 0.075 against 0.02: about 79%


def test_a_first_label_that_closes_the_gripper_is_a_turn():
    """A button press or a push closes the gripper from its first label; the gripper starts open
    (data.previous_action's "before the first"), so those first frames turn it. Without them the
    demo's policy went for a button with open fingers, as if to pick it up."""
    from training.tasks.base import gripper_turns

    closes_first = np.array([1.0, 1.0, 1.0, -1.0, -1.0])
    assert gripper_turns(closes_first).tolist() == [False, False, False, True, True]
    assert gripper_turns(closes_first, before=-1.0).tolist() == [True, True, False, True, True]
    assert not gripper_turns(-closes_first, before=-1.0)[:3].any()  # opens first: no turn at the start

    ep = _waypoint_episode()
    ep.state[:, :3] = ep.action[:, :3]  # the hand at its waypoint throughout: distance alone is flat
    ep.action[:, 3] = 1.0  # closed from the first label
    rng = np.random.default_rng(0)
    ctx = TaskContext(history=0, chunk_size=1, action_frames="distance", gripper_turn_distance=0.4)
    drawn = np.array([FAMILIES["action"].make(ep, 25, rng, ctx).meta["frame"] for _ in range(2000)])
    assert np.isin(drawn, [0, 1]).mean() > 5 * np.isin(drawn, [2, 3]).mean()


def test_distance_weighted_action_frames_need_a_position_and_a_waypoint():
    for bad in (-0.1, float("nan")):
        ctx = TaskContext(history=0, action_frames="distance", gripper_turn_distance=bad)
        with pytest.raises(ValueError, match="gripper_turn_distance"):
            FAMILIES["action"].make(_waypoint_episode(), 0, np.random.default_rng(0), ctx)
    ep = _waypoint_episode()
    ep.state = ep.state[:, :2]
    with pytest.raises(ValueError, match=r"state\[:3\]"):
        FAMILIES["action"].make(
            ep, 0, np.random.default_rng(0), TaskContext(history=0, action_frames="distance")
        )
    with pytest.raises(ValueError, match="uniform' or 'distance"):
        FAMILIES["action"].make(
            _waypoint_episode(), 0, np.random.default_rng(0), TaskContext(action_frames="far")
        )


def test_distance_weighted_frames_refuse_actions_that_are_not_waypoints(make_config, tmp_path):
    """Velocity actions are no waypoints: weighting frames by a 'distance' to them would be noise."""
    from training.trainer import train

    cfg = make_config(tmp_path, "data.action_frames=distance")  # control=velocity, action_labels=action
    with pytest.raises(ValueError, match="action_frames=distance"):
        train(cfg, episodes=[])


def test_previous_action_refuses_actions_that_are_not_waypoints(make_config, tmp_path):
    """A previous velocity in the state is the copycat trap; only a waypoint command is fed back."""
    from training.trainer import train

    cfg = make_config(tmp_path, "data.previous_action=true")  # control=velocity, action_labels=action
    with pytest.raises(ValueError, match="previous_action feeds the last waypoint"):
        train(cfg, episodes=[])
    # A depth the policy cannot keep would train a checkpoint that cannot act.
    deep = make_config(
        tmp_path, "data.previous_action=true", "data.control=waypoint", "data.previous_action_depth=5"
    )
    with pytest.raises(ValueError, match=r"previous_action_depth .*1\.\.4 \(a policy keeps no more\), got 5"):
        train(deep, episodes=[])


def test_state_dropout_hides_the_copycat_features_of_a_share_of_action_examples(rollouts):
    ep = rollouts[1]
    fill = np.full(3, 7.0, np.float32)
    ctx = TaskContext(state_dims=(0, 6, 7), state_dropout=0.5, state_dropout_at=(1, 2), state_fill=fill)
    states = [FAMILIES["action"].make(ep, 5, np.random.default_rng(s), ctx).state for s in range(40)]
    hidden = [s for s in states if s[1] == 7.0]
    assert 8 < len(hidden) < 32  # about half
    for s in states:
        assert s[0] == ep.state[5, 0]  # the hand's position always stays
        assert (s[1:] == 7.0).all() or np.array_equal(s[1:], ep.state[5, [6, 7]])  # both or neither
    never = TaskContext(state_dims=(0, 6, 7))
    np.testing.assert_array_equal(
        FAMILIES["action"].make(ep, 5, np.random.default_rng(0), never).state, ep.state[5, [0, 6, 7]]
    )


@pytest.mark.parametrize(
    "overrides, match",
    [
        (("data.state_dropout=1.5", "data.state_dropout_dims=[6]"), "probability"),
        (("data.state_dropout=0.5", "data.state_dropout_dims=[6]", "data.state_dims=[0,1,2]"), "features"),
    ],
)
def test_state_dropout_refuses_a_bad_probability_or_a_feature_not_read(
    overrides, match, rollouts, make_config, tmp_path
):
    from training.trainer import train

    with pytest.raises(ValueError, match=match):
        train(make_config(tmp_path, *overrides), episodes=rollouts)
