"""The policy: camera frames, audio, an instruction and robot state in; safe control commands out.

    policy = Policy.from_pretrained("runs/demo/checkpoint")
    policy.reset()
    action = policy.select_action(obs)      # (D,) float32, finite, inside [action_low, action_high]

The same loaded model answers questions, captions the view, locates objects and
generates images or speech (:meth:`answer`, :meth:`caption`, :meth:`locate`,
:meth:`generate`). One object, one checkpoint.

An observation is the envs contract: ``{"images": {camera: (H, W, 3) uint8}, "state": (S,) float32,
"instruction": str, "speech": (N,) float32 at 16 kHz (optional)}``. With an empty instruction the
policy listens to ``speech`` instead; with neither it raises (never guesses).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import json
from collections import deque
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from agent.action_processing import ActionQueue, TemporalEnsembler, WaypointProgress, make_safe
from model.checkpoint import load_pretrained
from model.example import AUDIO_SAMPLE_RATE, Example, check_image, previous_command, select_state
from model.frame_cache import FrameCache

POLICY_FILE = "policy.json"
# The RMS below which a "spoken" instruction counts as silence.
SILENCE_RMS = 1e-4
# Deterministic prompts at inference: the first paraphrase of each training template family.
PROMPTS = {
    "action": "{instruction}",
    "action_speech": "Follow the spoken instruction.",
    "caption": "Describe the image.",
    "refexp": "Locate the {name}.",
    "pointing": "Point to the {name}.",
    "asr": "What does the speaker say?",
}
SPEECH_INPUTS = ("direct", "transcribe")


@dataclass
class PolicyConfig:
    """How the policy turns chunks into commands; saved as ``policy.json`` next to the weights."""

    camera: str = "scene"  # the camera whose frames are the model's image input
    # What a command means: "velocity" (per-step deltas) or "waypoint" (absolute targets the env's
    # controller moves toward); evaluation builds the env in this mode.
    control: str = "velocity"
    history: int = 2  # previous frames given as image history (oldest first)
    state_dims: list[int] | None = None  # the state features the model reads (None: all), as in training
    # The state ends with the last waypoint the robot reached (as training's data.previous_action:
    # the hand where it started, gripper open, before the first), then state_dims select. A command
    # is reached within reach_tolerance metres (or where the hand stops near it), a gripper change
    # once commanded for gripper_steps steps (agent/action_processing.py WaypointProgress).
    previous_action: bool = False
    # How many waypoints reached, the latest first (training's data.previous_action_depth).
    previous_action_depth: int = 1
    reach_tolerance: float = 0.006
    gripper_steps: int = 3
    # A command also counts as reached when the policy's next one leaves it this near (m; None: off),
    # as a demonstrator moving on marks it in training (WaypointProgress). Replayed over the experts'
    # own episodes the record then agrees with training's marks on 66-100% of frames (push the least;
    # one frame late at each switch counted right), by hand position alone on 41-74%.
    switch_radius: float | None = 0.03
    n_action_steps: int | None = None  # receding horizon; None: the whole chunk
    temporal_ensemble: bool = False  # ACT-style: re-plan every step and average overlapping chunks
    ensemble_coeff: float = 0.01
    instruction: str = "auto"  # "auto": text if given, else speech; "text" or "speech" to force one
    # How a spoken instruction reaches the action: "direct", the clip is an input of the action
    # call (UIO-2's way); "transcribe", the model first writes down what it heard (its own speech
    # recognition, once per clip) and acts on that as on a typed instruction. Within the demo's
    # budget the action loss alone did not teach the audio encoder words (its transcripts were one
    # sentence for every clip), while speech recognition, a direct signal, learns them in minutes.
    speech_input: str = "direct"
    action_low: list[float] | None = None  # the robot's limits; default: the action statistics' min/max
    action_high: list[float] | None = None
    safe_action: list[float] | None = None  # replaces non-finite values; default: zeros clipped to limits
    seed: int = 0
    # Intra-op threads during a model call (restored after). 1 is fastest for the tiny and small
    # models: their ops are too small to split, and on a busy 2-core machine every OpenMP barrier
    # waits for a descheduled thread (1 thread: 17-20 calls/s, 2 threads: 1.6-4). None: torch's setting.
    threads: int | None = 1

    @classmethod
    def load(cls, directory: str | Path) -> PolicyConfig:
        path = Path(directory) / POLICY_FILE
        return cls(**json.loads(path.read_text())) if path.exists() else cls()

    def save(self, directory: str | Path) -> None:
        (Path(directory) / POLICY_FILE).write_text(json.dumps(asdict(self), indent=2))


@contextlib.contextmanager
def intra_op_threads(n: int | None):
    """Run the block with ``n`` intra-op threads (None: unchanged), then restore the old count."""
    old = torch.get_num_threads()
    if n is None or n == old:
        yield
        return
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Policy:
    """reset / select_action / predict_action_chunk over a Unified-IO model, plus its other outputs."""

    def __init__(self, model, processor, config: PolicyConfig | None = None):
        self.model = model.eval()
        self.processor = processor
        self.config = config or PolicyConfig()
        if processor.action_tokenizer is None:
            raise ValueError("this checkpoint has no action statistics (action_stats.json): it cannot act")
        stats = processor.action_tokenizer.stats
        self.action_dim = stats.dim
        self.chunk_size = model.config.action_chunk_size
        # Default limits: the training data's range, in the robot's frame (camera-frame waypoints
        # keep theirs beside the calibration; their statistics are in pixels).
        frame = processor.action_frame
        data_low = frame.low if frame is not None and frame.low is not None else stats.min
        data_high = frame.high if frame is not None and frame.high is not None else stats.max
        low = self.config.action_low if self.config.action_low is not None else data_low
        high = self.config.action_high if self.config.action_high is not None else data_high
        self.action_low = np.asarray(low, np.float32)
        self.action_high = np.asarray(high, np.float32)
        for name, v in (("action_low", self.action_low), ("action_high", self.action_high)):
            if v.shape != (self.action_dim,) or not np.isfinite(v).all():
                raise ValueError(f"{name} must be {self.action_dim} finite values, got {v.tolist()}")
        if (self.action_low > self.action_high).any():
            raise ValueError(f"action_low {self.action_low} exceeds action_high {self.action_high}")
        safe = self.config.safe_action if self.config.safe_action is not None else np.zeros(self.action_dim)
        self.safe_action = np.clip(np.asarray(safe, np.float32), self.action_low, self.action_high)
        if self.config.speech_input not in SPEECH_INPUTS:
            raise ValueError(f"speech_input must be one of {SPEECH_INPUTS}, got {self.config.speech_input!r}")
        if self.config.n_action_steps is not None and not 1 <= self.config.n_action_steps <= self.chunk_size:
            raise ValueError(
                f"n_action_steps must be in 1..{self.chunk_size}, got {self.config.n_action_steps}"
            )
        if not 1 <= self.config.previous_action_depth <= WaypointProgress.DEPTH:
            raise ValueError(
                f"previous_action_depth must be in 1..{WaypointProgress.DEPTH}, got "
                f"{self.config.previous_action_depth}"
            )
        self.cameras = (self.config.camera,)
        self.image_size = model.config.image_size
        self.state_dim = model.config.max_state_dim
        self.non_finite_count = 0  # model outputs replaced by the safe action, over the policy's life
        # Shared by sessions (content-keyed): each camera frame goes through the ViT once, not once
        # as the current image and again as each later call's history.
        self.frame_cache = FrameCache(max_frames=64)
        self.reset()

    @property
    def control(self) -> str:
        """What a command means: "velocity" (per-step deltas) or "waypoint" (absolute targets)."""
        return self.config.control

    # -- loading -----------------------------------------------------------------------------------
    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", **overrides: Any) -> Policy:
        """Load a checkpoint directory; keyword arguments override fields of its policy.json."""
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"checkpoint directory {str(path)!r} does not exist")
        model, processor = load_pretrained(path, map_location=device)
        config = replace(PolicyConfig.load(path), **overrides)
        return cls(model, processor, config)

    def save_pretrained(self, path: str | Path) -> Path:
        self.model.save_pretrained(path, self.processor)
        self.config.save(path)
        return Path(path)

    # -- per-episode state -------------------------------------------------------------------------
    def reset(self) -> None:
        """Forget the episode: image history, queued actions, ensembled chunks."""
        self._history: deque[np.ndarray] = deque(maxlen=max(self.config.history, 1))
        self._queue = ActionQueue(self.config.n_action_steps or self.chunk_size)
        self._ensembler = TemporalEnsembler(self.chunk_size, self.config.ensemble_coeff)
        # The last waypoint reached, from the commands given and the hand (config.previous_action).
        self._heard: dict[str, str] = {}  # transcripts of this episode's clips (speech_input "transcribe")
        self._progress = WaypointProgress(
            self.config.reach_tolerance, self.config.gripper_steps, self.config.switch_radius
        )
        torch.manual_seed(self.config.seed)

    def new_session(self) -> Policy:
        """A policy sharing this one's model and settings with fresh per-episode state."""
        session = copy.copy(self)
        session.reset()
        return session

    def set_last_command(self, action) -> None:
        """Tell the policy what the robot was commanded this step when something else drove it (an
        expert, a teleoperator): a ``previous_action`` policy follows whether it gets there."""
        self._progress.commanded(self._check_command(action, "last command"))

    def set_reached_waypoint(self, waypoint) -> None:
        """Tell a ``previous_action`` policy which waypoint the robot reached last, when something
        else decided it (a demonstrator that moved on)."""
        self._progress.reach(self._check_command(waypoint, "reached waypoint"))

    @property
    def reached_waypoint(self) -> np.ndarray | None:
        """The last waypoint the robot reached, as this policy keeps it (``previous_action``; what the
        model reads after the state); None before the episode's first observation."""
        reached = self._progress.reached
        return None if reached is None else reached.copy()

    def _check_command(self, action, name: str) -> np.ndarray:
        a = np.asarray(action, np.float32)
        if a.shape != (self.action_dim,) or not np.isfinite(a).all():
            raise ValueError(
                f"{name} must be {self.action_dim} finite values, got {np.asarray(action).tolist()}"
            )
        return a

    # -- acting ------------------------------------------------------------------------------------
    def select_action(self, observation: dict) -> np.ndarray:
        """The command for this step: (D,) float32, finite, inside [action_low, action_high]."""
        return self.select_action_batch([observation], [self])[0]

    def predict_action_chunk(self, observation: dict) -> np.ndarray:
        """(K, D) float32 commands predicted from this observation (all finite and inside the limits)."""
        return self.predict_action_chunk_batch([observation], [self])[0]

    def predict_action_chunk_batch(
        self, observations: list[dict], sessions: list[Policy] | None = None
    ) -> np.ndarray:
        """One batched model call for B observations -> (B, K, D). ``sessions[i]`` keeps observation i's history."""
        sessions = sessions if sessions is not None else [self.new_session() for _ in observations]
        if len(sessions) != len(observations):
            raise ValueError(f"got {len(observations)} observations but {len(sessions)} sessions")
        for session, obs in zip(sessions, observations):
            session._observe(obs)
        out = self._chunks(observations, sessions)
        for session, chunk in zip(sessions, out):
            for command in chunk:  # a caller of the chunk runs it
                session._progress.commanded(command)
        return out

    def _chunks(self, observations: list[dict], sessions: list[Policy]) -> np.ndarray:
        examples = [s._action_example(o) for s, o in zip(sessions, observations)]
        with torch.inference_mode(), intra_op_threads(self.config.threads):
            chunks = self.model.generate_from_examples(
                self.processor, examples, target="action", frame_cache=self.frame_cache
            )
        out = np.empty((len(chunks), self.chunk_size, self.action_dim), np.float32)
        for i, (session, obs, chunk) in enumerate(zip(sessions, observations, chunks)):
            out[i] = self._safe_chunk(np.asarray(chunk).reshape(-1, self.action_dim)[: self.chunk_size])
            session._remember(obs)
        return out

    def select_action_batch(self, observations: list[dict], sessions: list[Policy]) -> np.ndarray:
        """The step's command for each session; only sessions that need a new chunk query the model."""
        if len(sessions) != len(observations):
            raise ValueError(f"got {len(observations)} observations but {len(sessions)} sessions")
        for session, obs in zip(sessions, observations):
            session._observe(obs)
        need = [i for i, s in enumerate(sessions) if s.config.temporal_ensemble or len(s._queue) == 0]
        chunks = {}
        if need:
            batch = self._chunks([observations[i] for i in need], [sessions[i] for i in need])
            chunks = dict(zip(need, batch))
        actions = np.empty((len(sessions), self.action_dim), np.float32)
        for i, (session, obs) in enumerate(zip(sessions, observations)):
            if i not in chunks:
                session._remember(obs)
                actions[i] = session._queue.pop()
            elif session.config.temporal_ensemble:
                actions[i], _ = make_safe(
                    session._ensembler.update(chunks[i]), self.action_low, self.action_high, self.safe_action
                )
            else:
                session._queue.push_chunk(chunks[i])
                actions[i] = session._queue.pop()
            session._progress.commanded(actions[i])
        return actions

    def _safe_chunk(self, chunk: np.ndarray) -> np.ndarray:
        if chunk.shape != (self.chunk_size, self.action_dim):
            raise RuntimeError(
                f"the model decoded a chunk of shape {chunk.shape}, expected ({self.chunk_size}, {self.action_dim})"
            )
        safe = np.empty_like(chunk, dtype=np.float32)
        for k, row in enumerate(chunk):
            safe[k], bad = make_safe(row, self.action_low, self.action_high, self.safe_action)
            self.non_finite_count += bad
        return safe

    def _remember(self, observation: dict) -> None:
        if self.config.history > 0:
            self._history.append(self._frame(observation))

    # -- building the model's inputs -----------------------------------------------------------------
    def _frame(self, observation: dict) -> np.ndarray:
        if not isinstance(observation, dict):
            raise ValueError(f"observation must be a dict, got {type(observation).__name__}")
        images = observation.get("images")
        if not isinstance(images, dict) or self.config.camera not in images:
            have = sorted(images) if isinstance(images, dict) else None
            raise ValueError(
                f"observation lacks camera {self.config.camera!r} under 'images' (cameras given: {have})"
            )
        frame = images[self.config.camera]
        check_image(frame, f"images[{self.config.camera!r}]")
        return frame

    def _raw_state(self, observation: dict) -> np.ndarray | None:
        state = observation.get("state")
        if state is None:
            return None
        state = np.asarray(state)
        if state.ndim != 1 or not np.issubdtype(state.dtype, np.number):
            raise ValueError(f"state must be a (S,) numeric array, got {state.shape} {state.dtype}")
        if not np.isfinite(state).all():
            raise ValueError(f"state must be finite, got {state.tolist()}")
        return state.astype(np.float32)

    def _observe(self, observation: dict) -> None:
        """Follow the hand (config.previous_action): has it reached the last command?"""
        state = self._raw_state(observation) if self.config.previous_action else None
        if state is None:
            return
        if self._progress.reached is None:
            self._progress.reach(previous_command(state, self.action_dim))
        self._progress.observe(state[:3])

    def _state(self, observation: dict) -> np.ndarray | None:
        state = self._raw_state(observation)
        if state is None:
            return None
        if self.config.previous_action:
            if self._progress.reached is None:
                self._progress.reach(previous_command(state, self.action_dim))
            state = np.concatenate([state, self._progress.last(self.config.previous_action_depth)])
        return select_state(state, self.config.state_dims)

    def _speech(self, observation: dict) -> np.ndarray | None:
        speech = observation.get("speech")
        if speech is None:
            return None
        speech = np.asarray(speech)
        if speech.ndim != 1 or not np.issubdtype(speech.dtype, np.floating):
            raise ValueError(
                f"speech must be a (N,) float waveform at {AUDIO_SAMPLE_RATE} Hz, got {speech.shape}"
            )
        if not np.isfinite(speech).all():
            raise ValueError("speech must be finite, got NaN or inf samples")
        if float(np.sqrt(np.mean(speech.astype(np.float64) ** 2))) < SILENCE_RMS:
            return None  # silence: treated as no speech
        return speech.astype(np.float32)

    def _inputs(self, observation: dict, text: str | None, audio: np.ndarray | None = None) -> dict:
        frame = self._frame(observation)
        history = np.stack(self._history) if self.config.history > 0 and len(self._history) else None
        return dict(
            text=text, image=frame, image_history=history, audio=audio, state=self._state(observation)
        )

    def _action_example(self, observation: dict) -> Example:
        mode = self.config.instruction
        if mode not in ("auto", "text", "speech"):
            raise ValueError(f"instruction mode must be 'auto', 'text' or 'speech', got {mode!r}")
        text = observation.get("instruction") if mode != "speech" else None
        if text is not None and not isinstance(text, str):
            raise ValueError(f"instruction must be a str, got {type(text).__name__}")
        text = (text or "").strip()
        speech = self._speech(observation) if mode != "text" else None
        if not text and speech is not None and self.config.speech_input == "transcribe":
            text = self.transcribe(speech)  # empty if nothing was made out: then the clip itself
        if text:
            inputs = self._inputs(observation, PROMPTS["action"].format(instruction=text))
        elif speech is not None:
            inputs = self._inputs(observation, PROMPTS["action_speech"], audio=speech)
        else:
            raise ValueError(
                f"no instruction: the observation's text is empty and its speech is missing or silent "
                f"(RMS < {SILENCE_RMS}); instruction mode {mode!r}"
            )
        return Example(target="action", target_value=np.zeros((1, self.action_dim), np.float32), **inputs)

    def transcribe(self, speech: np.ndarray) -> str:
        """What the model hears in a 16 kHz clip (its speech recognition, as trained: the clip and
        the prompt, no image); remembered for the episode, so a policy transcribes its instruction once."""
        speech = np.ascontiguousarray(speech, np.float32)
        key = hashlib.sha1(speech.tobytes()).hexdigest()
        if key not in self._heard:
            example = Example(target="text", target_value="", text=PROMPTS["asr"], audio=speech)
            with torch.inference_mode(), intra_op_threads(self.config.threads):
                said = self.model.generate_from_examples(self.processor, [example], target="text")[0]
            self._heard[key] = said.strip()
        return self._heard[key]

    # -- the other outputs of the same model -----------------------------------------------------------
    def generate(self, observation: dict, target: str, prompt: str, listen: bool = False, **kwargs: Any):
        """Any output of the model for the current view: text (str), image (HxWx3 uint8), audio (16 kHz).

        ``listen``: also give the model the observation's ``speech`` (to ask what was said). Off by
        default: in our suite every observation carries the spoken instruction, and a question about
        the view with an unrelated clip attached is not what the model was trained on.
        """
        if target == "boxes":
            return self.locate(observation, prompt)
        if target not in ("text", "image", "audio"):
            raise ValueError(f"target must be 'text', 'boxes', 'image' or 'audio', got {target!r}")
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"prompt must be a non-empty str, got {prompt!r}")
        audio = self._speech(observation) if listen and "speech" in observation else None
        dummy = {"text": "", "image": np.zeros((8, 8, 3), np.uint8), "audio": np.zeros(16, np.float32)}[
            target
        ]
        example = Example(
            target=target, target_value=dummy, **self._inputs(observation, prompt.strip(), audio)
        )
        with torch.inference_mode(), intra_op_threads(self.config.threads):
            return self.model.generate_from_examples(
                self.processor, [example], target=target, frame_cache=self.frame_cache, **kwargs
            )[0]

    def answer(self, observation: dict, question: str) -> str:
        """Answer a question about the current view."""
        return self.generate(observation, "text", question)

    def caption(self, observation: dict) -> str:
        """Describe the current view."""
        return self.generate(observation, "text", PROMPTS["caption"])

    def locate(self, observation: dict, name: str) -> list[float]:
        """Box [x1, y1, x2, y2] in pixels of the named object in the policy camera's image ([] if none decoded)."""
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"object name must be a non-empty str, got {name!r}")
        text = self.generate(observation, "text", PROMPTS["refexp"].format(name=name.strip()))
        h, w = self._frame(observation).shape[:2]
        boxes = self.processor.locations.decode_boxes(text, (h, w))
        return [float(v) for v in boxes[0]] if boxes else []
