"""What every task family shares: the context it runs in and the frame/geometry helpers.

A task family is a function ``(episode, t, rng, ctx) -> Example | None`` plus the
set of things it needs (``annotations``, ``speech``, ``image_tokenizer`` ...); it
returns None when frame ``t`` cannot make an example (nothing visible, say), and
the mixture draws again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from model.example import Example, select_state
from model.tokenizers.locations import LocationTokenizer
from training.episodes import EpisodeData

# Capabilities a family may need; TaskContext.capabilities says which this run has.
ANNOTATIONS = "annotations"  # per-frame ground truth from our simulator
SPEECH = "speech"  # the instruction as a waveform (recorded or synthesised)
IMAGE_TOKENIZER = "image_tokenizer"  # image targets need a VQ-GAN to become tokens
AUDIO_TOKENIZER = "audio_tokenizer"  # audio targets likewise
DEPTH = "depth"
SEGMENTATION = "segmentation"


WAYPOINT_DISTANCE_FLOOR = 0.02  # m: frames at their waypoint still count, as much as one 2 cm away
# m: the frames where the gripper's label turns (a grasp, a release, and the frame after) weigh as
# much as a frame this far from its waypoint (about the demonstrations' mean distance, 0.10-0.11 m).
# Their hand is at the waypoint, so by distance alone they were 1.2-1.6% of the frames drawn against
# 6-9% of a demonstration, and the demo's pick-and-place policy, at the bin with the cube, read
# "just placed" as "just grasped" and carried it off again instead of letting go.
GRIPPER_TURN_DISTANCE = 0.1


@dataclass
class TaskContext:
    history: int = 2  # previous frames as image_history
    chunk_size: int = 4  # K future actions
    capabilities: set[str] = field(default_factory=set)
    # (text, voice=, speed=) -> (N,) float32 16 kHz (envs.speech.synthesize): speech for episodes
    # without a recording, and the spoken names of ``pointing_speech``.
    synthesize: Callable[[str], np.ndarray] | None = None
    # Which state features the model reads (None: all). Leaving out velocities stops a policy from
    # copying the previous action out of them (the copycat problem of behaviour cloning).
    state_dims: tuple[int, ...] | None = None
    # Random-shift augmentation of the policy's frames, in pixels (0: off); see ``random_shift``.
    random_shift: int = 0
    # Which frames action examples use: "uniform" or "distance" (``action_frame_index``).
    action_frames: str = "uniform"
    gripper_turn_distance: float = GRIPPER_TURN_DISTANCE  # data.gripper_turn_distance
    # data.state_dropout: with this probability the selected state's features ``state_dropout_at``
    # (positions in the selected state) become ``state_fill`` (the middle of their range).
    state_dropout: float = 0.0
    state_dropout_at: tuple[int, ...] = ()
    state_fill: np.ndarray | None = None
    # The model's <loc_N> tokenizer (Processor.locations, ModelConfig.location_bins bins): boxes,
    # points and the 3D values are written with it.
    locations: LocationTokenizer = field(default_factory=LocationTokenizer)


@dataclass(frozen=True)
class TaskFamily:
    name: str
    make: Callable[[EpisodeData, int, np.random.Generator, TaskContext], Example | None]
    needs: frozenset[str] = frozenset()
    target: str = "text"


def meta(ep: EpisodeData, t: int, task: str, **extra) -> dict:
    """The metadata every generated example carries: its family and where in which episode it came from."""
    return {"task": task, "source": ep.source, "episode": ep.index, "frame": t, **extra}


def action_frame_index(ep: EpisodeData, t: int, rng: np.random.Generator, ctx: TaskContext) -> int:
    """The frame an action example is made from: ``t`` as drawn ("uniform"), or ("distance") a frame
    drawn in proportion to how far the grasp point (state[:3]) still is from its waypoint labels
    (action[:3] of the frame's chunk, the furthest of them), at least WAYPOINT_DISTANCE_FLOOR. Along
    a demonstration the hand closes in on each waypoint and waits there, so on most frames the label
    is where the hand already is; weighting by distance makes the frames where the waypoint must be
    found in the scene the common ones; the frames where the gripper's label turns weigh as a frame
    ``ctx.gripper_turn_distance`` away."""
    if ctx.action_frames == "uniform":
        return t
    if ctx.action_frames != "distance":
        raise ValueError(f"action_frames must be 'uniform' or 'distance', got {ctx.action_frames!r}")
    # Cached per episode and weighting.
    key = f"_frame_p_distance_{ctx.gripper_turn_distance}_{ctx.chunk_size}"
    p = ep.meta.get(key)
    if p is None:
        if not (np.isfinite(ctx.gripper_turn_distance) and ctx.gripper_turn_distance >= 0):
            raise ValueError(
                f"data.gripper_turn_distance must be a distance >= 0 (m), got {ctx.gripper_turn_distance}"
            )
        if ep.state.shape[-1] < 3 or ep.action.shape[-1] < 3:
            raise ValueError(
                f"action_frames='distance' needs a grasp position in state[:3] and a waypoint in action[:3]; "
                f"{ep.where('state')} has {ep.state.shape[-1]} state and {ep.action.shape[-1]} action features"
            )
        # How far the hand is from the furthest waypoint of the frame's chunk (the example's target),
        # not from the first alone: a drawer's stroke is led by a point 3 cm ahead of the hand
        # (envs/experts.py), so its frames weighed as frames at their waypoint, 6% of a drawer
        # demonstration's draws against 22% of its frames, and the demo's policy held the handle
        # where it grasped it. Its chunk of 4 reaches 7.5 cm ahead; waiting frames stay at the floor.
        chunk = np.minimum(np.arange(len(ep))[:, None] + np.arange(max(1, ctx.chunk_size)), len(ep) - 1)
        d = np.linalg.norm(ep.state[:, None, :3] - ep.action[chunk, :3], axis=-1).max(-1)
        w = np.maximum(d, WAYPOINT_DISTANCE_FLOOR)
        if ep.action.shape[-1] >= 4:  # x, y, z, gripper
            # From the open gripper "before the first" (data.previous_action's convention): a task
            # whose first label closes it (press a button, push) turns at its first frames. Without
            # them the demo's policy went for a button with open fingers, as if to pick it up
            # (gripper agreeing with the expert on 65% of the frames before the press).
            turns = gripper_turns(ep.action[:, 3], before=-1.0)
            w[turns] = np.maximum(w[turns], ctx.gripper_turn_distance)
        p = ep.meta[key] = w / w.sum()
    return int(rng.choice(len(p), p=p))


def gripper_turns(gripper: np.ndarray, frames: int = 2, before: float | None = None) -> np.ndarray:
    """(T,) bool: the frames whose gripper label (its sign) differs from one of the ``frames`` labels
    before; ``before`` is the label before the first frame (None: the first frames turn from nothing)."""
    sign = np.sign(gripper)
    if before is not None:
        sign = np.r_[np.sign(before), sign]
    turns = np.zeros(len(sign), bool)
    for k in range(1, frames + 1):
        turns[k:] |= sign[k:] != sign[:-k]
    return turns[1:] if before is not None else turns


def frame(ep: EpisodeData, t: int) -> np.ndarray:
    return ep.images[ep.main_camera][t]


def history(ep: EpisodeData, t: int, n: int) -> np.ndarray | None:
    """Up to ``n`` frames before ``t``, oldest first; None at the first frame."""
    if n <= 0 or t == 0:
        return None
    return ep.images[ep.main_camera][max(0, t - n) : t]


def random_shift(
    image: np.ndarray, image_history: np.ndarray | None, rng: np.random.Generator, pad: int
) -> tuple[np.ndarray, np.ndarray | None]:
    """Shift the frame and its history by one random offset of up to ``pad`` pixels (edges repeated).

    DrQ's augmentation (Kostrikov et al. 2020), which Diffusion Policy and most pixel behaviour
    cloning use as a random crop: with a few hundred demonstrations a policy otherwise memorises
    exact pixels. One offset for the whole clip keeps the motion between frames intact.
    """
    if pad <= 0:
        return image, image_history
    dy, dx = rng.integers(0, 2 * pad + 1, size=2)
    h, w = image.shape[:2]

    def shift(x: np.ndarray) -> np.ndarray:
        widths = [(0, 0)] * (x.ndim - 3) + [(pad, pad), (pad, pad), (0, 0)]
        return np.pad(x, widths, mode="edge")[..., dy : dy + h, dx : dx + w, :]

    return shift(image), None if image_history is None else shift(image_history)


def robot_state(ep: EpisodeData, t: int, ctx: TaskContext, rng: np.random.Generator) -> np.ndarray:
    """The state features at ``t`` the model reads (``ctx.state_dims``), float32; with probability
    ``ctx.state_dropout`` the copycat features among them hidden (set to the middle of their range)."""
    state = select_state(ep.state[t], ctx.state_dims)
    if ctx.state_dropout > 0 and ctx.state_dropout_at and rng.random() < ctx.state_dropout:
        at = list(ctx.state_dropout_at)
        state = state.copy()
        state[at] = ctx.state_fill[at]
    return state


def action_chunk(ep: EpisodeData, t: int, k: int) -> np.ndarray:
    """Actions t .. t+k-1; past the end the last action repeats (the arm keeps doing what it did)."""
    idx = np.minimum(np.arange(t, t + k), len(ep) - 1)
    return ep.action[idx].astype(np.float32)


def visible_objects(ep: EpisodeData, t: int) -> list[dict]:
    """Annotated objects visible at frame t with a box of at least 2x2 pixels, left to right."""
    if ep.annotations is None:
        return []
    objs = [
        o
        for o in ep.annotations[t].get("objects", [])
        if o.get("visible", True) and _box_area(o.get("box")) >= 4.0
    ]
    return sorted(objs, key=lambda o: o["box"][0] + o["box"][2])


def _box_area(box) -> float:
    if box is None or len(box) != 4:
        return 0.0
    return max(0.0, box[2] - box[0]) * max(0.0, box[3] - box[1])


def object_name(obj: dict) -> str:
    if obj.get("name"):
        return str(obj["name"])
    return f"{obj.get('colour', '')} {obj.get('shape', 'object')}".strip()


def unique_names(objs: list[dict]) -> list[dict]:
    """Objects whose name is unique in the scene: a referring expression must pick out one thing."""
    names = [object_name(o) for o in objs]
    return [o for o, n in zip(objs, names) if names.count(n) == 1]


def spoken(ctx: TaskContext, text: str, rng: np.random.Generator) -> np.ndarray | None:
    """``text`` said by a voice and at a speed drawn with ``rng`` (envs.speech's, as the simulator's
    instructions are), at the observation's length; None without a synthesiser."""
    from envs.speech import SPEEDS, VOICES, pad_or_cut

    if ctx.synthesize is None:
        return None
    voice, speed = VOICES[int(rng.integers(len(VOICES)))], int(SPEEDS[int(rng.integers(len(SPEEDS)))])
    return pad_or_cut(np.asarray(ctx.synthesize(text, voice=voice, speed=speed), dtype=np.float32))


def speech_of(ep: EpisodeData, ctx: TaskContext, text: str | None = None) -> np.ndarray | None:
    """The instruction as a waveform: the episode's own recording, else synthesised."""
    if text is None and ep.speech is not None:
        return ep.speech.astype(np.float32)
    if ctx.synthesize is None:
        return None
    return np.asarray(ctx.synthesize(text or ep.instruction), dtype=np.float32)


def join_names(names: list[str]) -> str:
    if not names:
        return "nothing"
    if len(names) == 1:
        return names[0]
    return ", ".join(names[:-1]) + " and " + names[-1]


def with_article(name: str) -> str:
    return ("an " if name[:1] in "aeiou" else "a ") + name
