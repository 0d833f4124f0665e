"""Safety between the policy and the robot: limits, rate of change, the safe command, e-stop, watchdog.

Every command the bridge publishes passes through ``SafetyFilter.filter`` (a
policy action) or is ``SafetyFilter.safe_command()``; both return finite values
inside ``[low, high]``, whatever came in. Stopping is never rate-limited: the
safe command goes out at once; the way back from it is.
"""

from __future__ import annotations

import threading
import time

import numpy as np


class SafetyFilter:
    """Per-dimension clipping, maximum change per step, NaN/inf rejection and the safe (hold/zero) command."""

    def __init__(
        self,
        low: np.ndarray,
        high: np.ndarray,
        max_delta: np.ndarray | None = None,
        safe_action: np.ndarray | None = None,
        hold_dims: list[int] | tuple[int, ...] = (),
    ) -> None:
        self.low = np.asarray(low, np.float64)
        self.high = np.asarray(high, np.float64)
        d = self.low.shape[0]
        if self.low.shape != (d,) or self.high.shape != (d,):
            raise ValueError(f"limits must be two (D,) arrays, got {self.low.shape} and {self.high.shape}")
        if not (
            np.isfinite(self.low).all() and np.isfinite(self.high).all() and (self.low <= self.high).all()
        ):
            raise ValueError(f"limits must be finite with low <= high, got low={self.low}, high={self.high}")
        self.max_delta = None if max_delta is None else _vector(max_delta, d, "max_delta")
        if self.max_delta is not None and not (self.max_delta > 0).all():
            raise ValueError(f"max_delta must be > 0 per dim, got {self.max_delta}")
        safe = np.zeros(d) if safe_action is None else _vector(safe_action, d, "safe_action")
        self.safe_action = np.clip(safe, self.low, self.high)
        bad = [i for i in hold_dims if not 0 <= i < d]
        if bad:
            raise ValueError(f"hold_dims must be action dimensions in [0, {d}), got {bad}")
        self.hold_dims = list(hold_dims)
        self.last: np.ndarray | None = None  # the last command published
        self.held: np.ndarray | None = None  # the hold dims' values in the last policy command
        self.rejected = 0  # actions with NaN/inf or the wrong shape
        self.clipped = 0  # actions that were out of limits or changed too fast

    @property
    def dim(self) -> int:
        return self.low.shape[0]

    def reset(self) -> None:
        self.last = self.held = None

    @property
    def hold_ready(self) -> bool:
        """False while hold dims have nothing to hold (no policy command yet): publish nothing on them then.

        A position-controlled joint sent "zero" would move to zero; holding is the only safe value.
        """
        return not self.hold_dims or self.held is not None

    def safe_command(self) -> np.ndarray:
        """Zero (or ``safe_action``) on every dim; hold dims keep the last policy command. Recorded as the last."""
        cmd = self.safe_action.copy()
        if self.held is not None:
            cmd[self.hold_dims] = self.held
        self.last = cmd
        return cmd.astype(np.float32)

    def filter(self, action) -> np.ndarray:
        """The command for a policy action: finite, clipped, rate-limited; the safe command if unusable."""
        try:
            a = np.asarray(action, np.float64)
        except (TypeError, ValueError):
            a = None
        if a is None or a.shape != (self.dim,) or not np.isfinite(a).all():
            self.rejected += 1
            return self.safe_command()
        cmd = np.clip(a, self.low, self.high)
        if self.max_delta is not None and self.last is not None:
            cmd = np.clip(cmd, self.last - self.max_delta, self.last + self.max_delta)
            cmd = np.clip(cmd, self.low, self.high)  # the last command is inside, but make it evident
        if not np.array_equal(cmd, a):
            self.clipped += 1
        self.last = cmd
        if self.hold_dims:
            self.held = cmd[self.hold_dims].copy()
        return cmd.astype(np.float32)

    def within_limits(self, cmd: np.ndarray) -> bool:
        """The last line: finite and inside the limits (a float32 rounding step of slack)."""
        c = np.asarray(cmd, np.float64)
        eps = 1e-6 * np.maximum(1.0, np.abs(np.concatenate([self.low, self.high])).max())
        return bool(
            c.shape == (self.dim,)
            and np.isfinite(c).all()
            and (c >= self.low - eps).all()
            and (c <= self.high + eps).all()
        )


class EStop:
    """The e-stop latch: ``std_msgs/Bool`` true engages it, false releases it; anything else is ignored."""

    def __init__(self) -> None:
        self._engaged = False
        self._lock = threading.Lock()
        self.changed_at: float | None = None

    @property
    def engaged(self) -> bool:
        return self._engaged

    def on_message(self, msg) -> bool:
        """Apply a Bool message; return False (and change nothing) when it is not one."""
        data = msg.get("data") if isinstance(msg, dict) else None
        if not isinstance(data, bool):
            return False
        with self._lock:
            if data != self._engaged:
                self._engaged = data
                self.changed_at = time.monotonic()
        return True


def stale_inputs(ages: dict[str, float | None], max_age: float) -> list[str]:
    """The watchdog's verdict: names of inputs never received (age None) or older than ``max_age`` s."""
    return [name for name, age in ages.items() if age is None or age > max_age]


def _vector(values, d: int, name: str) -> np.ndarray:
    v = np.asarray(values, np.float64).reshape(-1)
    if v.shape == (1,):
        v = np.repeat(v, d)
    if v.shape != (d,) or not np.isfinite(v).all():
        raise ValueError(f"{name} must be {d} finite values (or one), got {values!r}")
    return v
