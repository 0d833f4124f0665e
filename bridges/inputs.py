"""The latest value of each input topic, when it arrived and its header stamp; synchronised snapshots.

Topic callbacks (roslibpy's reactor thread) write; the control loop reads. Ages
use the bridge's monotonic clock at arrival, not the sender's stamp: a robot
whose clock is off must not make stale frames look fresh.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any


@dataclass
class Sample:
    value: Any
    received: float  # time.monotonic() at arrival
    stamp: tuple[int, int] | None  # header.stamp (sec, nanosec) when the message had one
    seq: int  # counts arrivals on this input


class LatestInputs:
    """Thread-safe store of the last good sample per input name."""

    def __init__(self, names: list[str], clock=time.monotonic) -> None:
        self._samples: dict[str, Sample | None] = {n: None for n in names}
        self._lock = threading.Lock()
        self._clock = clock

    def put(self, name: str, value: Any, stamp: tuple[int, int] | None = None) -> None:
        with self._lock:
            prev = self._samples[name]
            self._samples[name] = Sample(value, self._clock(), stamp, (prev.seq + 1) if prev else 1)

    def get(self, name: str) -> Sample | None:
        with self._lock:
            return self._samples[name]

    def ages(self, names: list[str] | None = None) -> dict[str, float | None]:
        """Seconds since each input last arrived (None: never)."""
        now = self._clock()
        with self._lock:
            return {
                n: (None if s is None else now - s.received)
                for n, s in self._samples.items()
                if names is None or n in names
            }

    def snapshot(self, names: list[str]) -> dict[str, Sample | None]:
        with self._lock:
            return {n: self._samples[n] for n in names}


def common_stamp(samples: dict[str, Sample | None]) -> tuple[int, int] | None:
    """The header stamp all samples share (exact-time sync, as message_filters' TimeSynchronizer), else None."""
    stamps = {s.stamp if s is not None else None for s in samples.values()}
    return stamps.pop() if len(stamps) == 1 else None
