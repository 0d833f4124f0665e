"""The bridge's configuration: topics, message types, the action -> command mapping, safety limits.

Nested dataclasses loaded from YAML with ``training.config.load_config`` (so
``uio2 bridge --config configs/bridge.yaml safety.max_age=0.3`` works). Every
number that reaches a command (scales, limits, rates) is checked finite here,
once, so the control loop never has to wonder.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from training.config import ConfigError, load_config

IMAGE_TYPES = ("sensor_msgs/Image", "sensor_msgs/CompressedImage")
STATE_TYPES = ("sensor_msgs/JointState", "std_msgs/Float64MultiArray", "std_msgs/Float32MultiArray")
AUDIO_TYPES = ("std_msgs/Float32MultiArray", "std_msgs/Float64MultiArray")
COMMAND_TYPES = (
    "geometry_msgs/Twist",
    "std_msgs/Float64MultiArray",
    "trajectory_msgs/JointTrajectory",
    "geometry_msgs/PoseStamped",
)
TWIST_FIELDS = ("linear.x", "linear.y", "linear.z", "angular.x", "angular.y", "angular.z")


@dataclass
class CameraConfig:
    name: str = "scene"  # the key in observation["images"]
    topic: str = "/camera/scene/image_raw"
    type: str = "sensor_msgs/Image"
    height: int = 96  # frames of any other size are rejected, not resized behind the user's back
    width: int = 96


@dataclass
class StateConfig:
    topic: str = "/joint_states"
    type: str = "sensor_msgs/JointState"
    # JointState: which arrays to concatenate, and the joint order (empty: the message's order).
    fields: list[str] = field(default_factory=lambda: ["position"])
    joint_names: list[str] = field(default_factory=list)
    size: int | None = None  # expected length of the state vector; None accepts the first length seen


@dataclass
class InstructionConfig:
    topic: str = "/instruction"
    default: str = ""  # used until a message arrives; the instruction never goes stale
    max_chars: int = 1000


@dataclass
class AudioConfig:
    enabled: bool = False
    topic: str = "/instruction_audio"
    type: str = "std_msgs/Float32MultiArray"
    sample_rate: int = 16_000  # the samples' rate; anything else is resampled to 16 kHz
    num_samples: int = 65_536  # the policy's "speech": zero-padded / cut to 4.096 s at 16 kHz


@dataclass
class CommandConfig:
    topic: str = "/cmd_vel"
    type: str = "geometry_msgs/Twist"
    dims: list[int] = field(default_factory=lambda: [0, 1, 2])  # action dimensions, in order
    scale: list[float] = field(default_factory=list)  # per dim multiplier (empty: 1.0)
    twist_fields: list[str] = field(default_factory=lambda: ["linear.x", "linear.y", "linear.z"])
    joint_names: list[str] = field(default_factory=list)  # JointTrajectory
    trajectory_field: str = "positions"  # JointTrajectory: positions | velocities
    time_from_start: float = 0.1  # JointTrajectory: seconds
    # PoseStamped (waypoint checkpoints: dims = the target's x, y, z in frame_id, metres); the
    # orientation is fixed (x, y, z, w), as our suite's waypoints carry none.
    frame_id: str = "base_link"
    orientation: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 1.0])


@dataclass
class SafetyConfig:
    max_age: float = 0.5  # s; any camera or state older than this: no inference, safe command
    command_timeout: float = 0.5  # s; an inference that takes longer is abandoned for the safe command
    action_low: list[float] = field(default_factory=list)  # empty: the policy's limits
    action_high: list[float] = field(default_factory=list)
    max_delta: list[float] = field(default_factory=list)  # per dim, per step; empty: unlimited
    safe_action: list[float] = field(default_factory=list)  # empty: zeros (clipped into the limits)
    hold_dims: list[int] = field(default_factory=list)  # dims whose safe value is the last command (grippers)
    estop_topic: str = "/uio2/estop"  # std_msgs/Bool: true stops, false releases


@dataclass
class ReconnectConfig:
    initial_delay: float = 0.5  # s, then x e per attempt (twisted's ReconnectingClientFactory)
    max_delay: float = 5.0
    # After a reconnect: the safe command at least this long and until every camera and the state have
    # arrived again, then policy commands ramp (max_delta) from it. What the robot got during the outage
    # is unknown (its own timeout may have stopped it), and a restarted rosbridge drops a new publisher's
    # first messages until ROS discovery matches it (0.5-3 s measured, and the robot's state may flow
    # again before its command subscription is matched).
    settle: float = 3.0


@dataclass
class BridgeConfig:
    rosbridge: str = "ws://127.0.0.1:9090"
    rate_hz: float = 10.0
    # sync: act once per new, time-stamped set of camera + state messages with equal header stamps
    # (like message_filters' TimeSynchronizer) and stamp the command with it; off: act every tick.
    sync: bool = False
    cameras: list[CameraConfig] = field(default_factory=lambda: [CameraConfig()])
    state: StateConfig | None = field(default_factory=StateConfig)
    instruction: InstructionConfig = field(default_factory=InstructionConfig)
    audio: AudioConfig = field(default_factory=AudioConfig)
    commands: list[CommandConfig] = field(default_factory=lambda: [CommandConfig()])
    safety: SafetyConfig = field(default_factory=SafetyConfig)
    reconnect: ReconnectConfig = field(default_factory=ReconnectConfig)
    namespace: str = "/uio2"  # question/answer, caption, locate, status topics live under it

    def validate(self) -> BridgeConfig:
        """Raise ConfigError naming the first bad value; return self."""
        _positive("rate_hz", self.rate_hz)
        _positive("safety.max_age", self.safety.max_age)
        _positive("safety.command_timeout", self.safety.command_timeout)
        _positive("reconnect.initial_delay", self.reconnect.initial_delay)
        _positive("reconnect.max_delay", self.reconnect.max_delay)
        if not (math.isfinite(self.reconnect.settle) and self.reconnect.settle >= 0):
            raise ConfigError(f"reconnect.settle must be >= 0 s, got {self.reconnect.settle!r}")
        if not self.cameras:
            raise ConfigError("cameras: at least one camera is needed")
        names = [c.name for c in self.cameras]
        if len(set(names)) != len(names):
            raise ConfigError(f"cameras: names must be unique, got {names}")
        for i, cam in enumerate(self.cameras):
            _choice(f"cameras[{i}].type", cam.type, IMAGE_TYPES)
            if not (0 < cam.height <= 4096 and 0 < cam.width <= 4096):
                raise ConfigError(
                    f"cameras[{i}]: height/width must be in (0, 4096], got {cam.height}x{cam.width}"
                )
        if self.state is not None:
            _choice("state.type", self.state.type, STATE_TYPES)
            for f in self.state.fields:
                _choice("state.fields", f, ("position", "velocity", "effort"))
        _choice("audio.type", self.audio.type, AUDIO_TYPES)
        _positive("audio.sample_rate", self.audio.sample_rate)
        _positive("audio.num_samples", self.audio.num_samples)
        if not self.commands:
            raise ConfigError("commands: at least one command topic is needed")
        for i, cmd in enumerate(self.commands):
            where = f"commands[{i}]"
            _choice(f"{where}.type", cmd.type, COMMAND_TYPES)
            if not cmd.dims or min(cmd.dims) < 0:
                raise ConfigError(f"{where}.dims must list action dimensions >= 0, got {cmd.dims}")
            if cmd.scale and len(cmd.scale) != len(cmd.dims):
                raise ConfigError(f"{where}.scale needs one value per dim ({len(cmd.dims)}), got {cmd.scale}")
            _finite(f"{where}.scale", cmd.scale)
            if cmd.type == "geometry_msgs/Twist":
                if len(cmd.twist_fields) != len(cmd.dims):
                    raise ConfigError(
                        f"{where}.twist_fields needs one field per dim ({len(cmd.dims)}), got {cmd.twist_fields}"
                    )
                for f in cmd.twist_fields:
                    _choice(f"{where}.twist_fields", f, TWIST_FIELDS)
            if cmd.type == "trajectory_msgs/JointTrajectory":
                if len(cmd.joint_names) != len(cmd.dims):
                    raise ConfigError(
                        f"{where}.joint_names needs one name per dim ({len(cmd.dims)}), got {cmd.joint_names}"
                    )
                _choice(f"{where}.trajectory_field", cmd.trajectory_field, ("positions", "velocities"))
                _finite(f"{where}.time_from_start", [cmd.time_from_start])
            if cmd.type == "geometry_msgs/PoseStamped":
                if len(cmd.dims) != 3:
                    raise ConfigError(
                        f"{where}.dims must name the x, y, z dims of a pose (3), got {cmd.dims}"
                    )
                _finite(f"{where}.orientation", cmd.orientation)
                if len(cmd.orientation) != 4 or abs(math.hypot(*cmd.orientation) - 1.0) > 1e-3:
                    raise ConfigError(
                        f"{where}.orientation must be a unit quaternion [x, y, z, w], got {cmd.orientation}"
                    )
        s = self.safety
        for name in ("action_low", "action_high", "max_delta", "safe_action"):
            _finite(f"safety.{name}", getattr(s, name))
        if any(d <= 0 for d in s.max_delta):
            raise ConfigError(f"safety.max_delta must be > 0 per dim, got {s.max_delta}")
        return self


def load_bridge_config(path: str | None = None, overrides: list[str] | None = None) -> BridgeConfig:
    """Defaults, then the YAML file, then ``key=value`` overrides; validated."""
    return load_config(BridgeConfig, path, overrides).validate()


def _positive(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0):
        raise ConfigError(f"{name} must be a finite number > 0, got {value!r}")


def _finite(name: str, values: list[float]) -> None:
    bad = [v for v in values if not math.isfinite(v)]
    if bad:
        raise ConfigError(f"{name} must be finite, got {values}")


def _choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{name} must be one of {list(choices)}, got {value!r}")
