"""Helpers for the bridge tests (imported by the tests; fixtures live in conftest.py)."""

from __future__ import annotations

import logging
import threading
import time

import numpy as np

log = logging.getLogger("tests.bridges")


class Observer:
    """A second rosbridge client (roslibpy) for the test: records commands, publishes inputs."""

    def __init__(self, url: str) -> None:
        import roslibpy

        host, port = url.removeprefix("ws://").split(":")
        self.ros = roslibpy.Ros(host, int(port))
        self.ros.run(timeout=10)
        # rosbridge's "status" op (errors about our requests): roslibpy 2.1.0 has no handler for it
        self.statuses: list[dict] = []
        self.ros.factory._proto._message_handlers["status"] = self.statuses.append
        self.received: dict[str, list[tuple[float, dict]]] = {}
        self._topics = []
        self._lock = threading.Lock()

    def subscribe(self, topic: str, msg_type: str) -> list:
        import roslibpy

        records = self.received.setdefault(topic, [])
        t = roslibpy.Topic(self.ros, topic, msg_type)

        def record(msg):
            with self._lock:
                records.append((time.monotonic(), msg))

        t.subscribe(record)
        self._topics.append(t)
        return records

    def publisher(self, topic: str, msg_type: str):
        import roslibpy

        t = roslibpy.Topic(self.ros, topic, msg_type)
        t.advertise()
        self._topics.append(t)
        return lambda msg: t.publish(roslibpy.Message(msg))

    def close(self) -> None:
        for t in self._topics:
            if t.is_subscribed:
                t.unsubscribe()
        try:
            self.ros.close()
            end = time.monotonic() + 2.0  # close() only queues the goodbye
            while self.ros.is_connected and time.monotonic() < end:
                time.sleep(0.01)
        except Exception as e:  # the server may already be gone
            log.warning("observer close: %s", e)


def wait_until(predicate, timeout: float, what: str, step: float = 0.02):
    """Poll ``predicate`` until true; fail naming ``what`` after ``timeout`` s."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(step)
    raise AssertionError(f"timed out after {timeout:.1f} s waiting for {what}")


def fake_inputs(policy_image_size: int = 96, state_dim: int = 8, seed: int = 0):
    """A camera frame and a state vector for publishers in tests (random, fixed seed)."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (policy_image_size, policy_image_size, 3), dtype=np.uint8)
    return image, rng.uniform(-1, 1, state_dim).astype(np.float32)


def policy_io(policy) -> tuple[list[str], int, int]:
    """Camera names, image size and state size the policy takes (its attributes, else our suite's)."""
    cameras = list(getattr(policy, "cameras", None) or ["scene", "wrist"])
    return (
        cameras,
        int(getattr(policy, "image_size", None) or 96),
        int(getattr(policy, "state_dim", None) or 8),
    )


def bridge_overrides(
    policy, url: str = "ws://127.0.0.1:9090", prefix: str = "/t", sync: bool = False
) -> list[str]:
    """Config overrides for a bridge on the test topics under ``prefix`` with Float64MultiArray commands."""
    cameras, size, _ = policy_io(policy)
    cams = ", ".join(
        f"{{name: {c}, topic: {prefix}/camera/{c}/image_raw, height: {size}, width: {size}}}" for c in cameras
    )
    dims = list(range(int(policy.action_dim)))
    return [
        f"rosbridge={url}",
        f"sync={str(sync).lower()}",
        f"cameras=[{cams}]",
        f"state={{topic: {prefix}/state, type: std_msgs/Float64MultiArray}}",
        f"instruction.topic={prefix}/instruction",
        f"commands=[{{topic: {prefix}/command, type: std_msgs/Float64MultiArray, dims: {dims}}}]",
        "safety.hold_dims=[]",
        f"safety.estop_topic={prefix}/estop",
    ]


class InputPublisher:
    """Publishes camera frames, state and the instruction at ``rate`` Hz from a thread (paced sends)."""

    def __init__(self, observer: Observer, policy, prefix: str = "/t", rate: float = 20.0) -> None:
        from bridges.convert import image_to_msg

        self.cameras, size, state_dim = policy_io(policy)
        self.image, self.state = fake_inputs(size, state_dim)
        self._to_msg = image_to_msg
        self.pub_cam = {
            c: observer.publisher(f"{prefix}/camera/{c}/image_raw", "sensor_msgs/Image") for c in self.cameras
        }
        self.pub_state = observer.publisher(f"{prefix}/state", "std_msgs/Float64MultiArray")
        self.pub_instruction = observer.publisher(f"{prefix}/instruction", "std_msgs/String")
        self.period = 1.0 / rate
        self.camera_on = True
        self.last_camera_sent = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> InputPublisher:
        self._thread.start()
        return self

    def _run(self) -> None:
        k = 0
        while not self._stop.is_set():
            k += 1
            if self.camera_on:
                msg = self._to_msg(self.image, (k, 0))
                for pub in self.pub_cam.values():
                    pub(msg)
                self.last_camera_sent = time.monotonic()
            self.pub_state({"layout": {"dim": [], "data_offset": 0}, "data": self.state.tolist()})
            if k % 5 == 1:
                self.pub_instruction({"data": "push the red cube to the left"})
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def command_values(records) -> list[np.ndarray]:
    """The Float64MultiArray commands an Observer recorded, as arrays."""
    return [np.asarray(m["data"], np.float64) for _, m in list(records)]
