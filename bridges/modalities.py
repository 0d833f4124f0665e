"""The model's other outputs over ROS: caption (a service), question -> answer and locate -> box (topics).

Under ``namespace`` (default ``/uio2``):

- ``caption``  service ``std_srvs/Trigger``: ``message`` is the caption of the current view
  (``success`` false and the reason in ``message`` when there is no fresh frame).
- ``question`` (``std_msgs/String``) -> ``answer`` (``std_msgs/String``), one answer per question, in order.
- ``locate`` (``std_msgs/String``, an object name) -> ``box`` (``std_msgs/Float32MultiArray``:
  ``data`` = [x1, y1, x2, y2] in pixels of the first camera, ``layout.dim[0].label`` = the name).
  On failure ``data`` is empty and the label says why.

Why topics for question and locate: the Rust rosbridge (0.1.6) serves services advertised
from roslibpy (the Trigger service above works end to end with rclpy clients), but no
standard ``.srv`` type carries a string request and a string or box response, and a
custom one cannot be built from PyPI wheels alone. Topics need only std_msgs.

Requests are answered on a worker thread: the model must not block roslibpy's reactor,
which carries every other message. The control loop and these requests share the
model under ``bridge.policy_lock``; a long caption delays the next command, and the
command timeout covers that.
"""

from __future__ import annotations

import concurrent.futures
import logging

import roslibpy

from . import convert

log = logging.getLogger("uio2.bridge.modalities")

MAX_PENDING = 4  # requests beyond this are refused at once rather than queued behind the model


class DeferredService(roslibpy.Service):
    """A roslibpy service server that answers from a worker thread instead of the reactor thread."""

    def __init__(self, ros, name, service_type, executor) -> None:
        super().__init__(ros, name, service_type)
        self._executor = executor

    def _service_response_handler(self, request):  # roslibpy 2.1.0's hook, called on the reactor thread
        def work():
            response = roslibpy.ServiceResponse()
            try:
                ok = bool(self._service_callback(request.get("args", {}), response))
            except Exception:
                log.exception("service %s failed", self.name)
                ok = False
            call = {"op": "service_response", "service": self.name, "values": dict(response), "result": ok}
            if "id" in request:
                call["id"] = request["id"]
            self.ros.send_on_ready(roslibpy.Message(call))

        self._executor.submit(work)


class ModalityServer:
    """Caption, question answering and object location for a ``PolicyBridge``."""

    def __init__(self, bridge) -> None:
        self.bridge = bridge
        self.ns = bridge.cfg.namespace.rstrip("/")
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="uio2-modalities")
        self._pending = 0
        self.topics: dict[str, roslibpy.Topic] = {}
        self.service: DeferredService | None = None

    def connect(self, ros) -> None:
        self.service = DeferredService(ros, f"{self.ns}/caption", "std_srvs/Trigger", self._executor)
        self.service.advertise(self._caption)
        for name, msg_type in (("answer", "std_msgs/String"), ("box", "std_msgs/Float32MultiArray")):
            self.topics[name] = roslibpy.Topic(ros, f"{self.ns}/{name}", msg_type)
            self.topics[name].advertise()
        self.topics["question"] = roslibpy.Topic(ros, f"{self.ns}/question", "std_msgs/String")
        self.topics["question"].subscribe(lambda m: self._submit(self._answer, m))
        self.topics["locate"] = roslibpy.Topic(ros, f"{self.ns}/locate", "std_msgs/String")
        self.topics["locate"].subscribe(lambda m: self._submit(self._locate, m))

    def close(self) -> None:
        for name in ("question", "locate"):
            if name in self.topics:
                self.topics[name].unsubscribe()
        self._executor.shutdown(wait=False, cancel_futures=True)

    def _submit(self, fn, msg) -> None:
        if self._pending >= MAX_PENDING:
            fn(msg, refuse="busy: too many requests in flight")
            return
        self._pending += 1
        self._executor.submit(self._run, fn, msg)

    def _run(self, fn, msg) -> None:
        try:
            fn(msg)
        except Exception:
            log.exception("modality request failed")
        finally:
            self._pending -= 1

    def _observation(self) -> dict:
        obs = self.bridge.observation(require_fresh=True)
        if obs is None:
            raise RuntimeError(
                "no fresh camera frame and state (older than safety.max_age or never received)"
            )
        return obs

    # Each handler answers exactly once, also on failure, so clients can pair answers with requests.

    def _caption(self, _request, response) -> bool:
        try:
            obs = self._observation()
            with self.bridge.policy_lock:
                response["message"] = str(self.bridge.policy.caption(obs))
            response["success"] = True
        except Exception as e:
            response["message"] = f"error: {e}"
            response["success"] = False
        return True  # the call itself succeeded; ``success`` carries the outcome

    def _answer(self, msg, refuse: str | None = None) -> None:
        try:
            if refuse:
                raise RuntimeError(refuse)
            question = convert.instruction_from_msg(msg, topic=f"{self.ns}/question")
            obs = self._observation()
            with self.bridge.policy_lock:
                text = str(self.bridge.policy.answer(obs, question))
        except Exception as e:
            log.warning("question not answered: %s", e)
            text = f"error: {e}"
        self.topics["answer"].publish(roslibpy.Message({"data": text}))

    def _locate(self, msg, refuse: str | None = None) -> None:
        name, box = "", []
        try:
            if refuse:
                raise RuntimeError(refuse)
            name = convert.instruction_from_msg(msg, topic=f"{self.ns}/locate")
            obs = self._observation()
            with self.bridge.policy_lock:
                box = [float(v) for v in self.bridge.policy.locate(obs, name)]
            if not box:
                raise LookupError(f"{name!r} not found in the view")
            if len(box) != 4 or not all(map(_finite, box)):
                raise ValueError(f"locate must return 4 finite numbers [x1, y1, x2, y2], got {box}")
            label = name
        except Exception as e:
            log.warning("object not located: %s", e)
            box, label = [], f"error: {e}"
        layout = {"dim": [{"label": label, "size": len(box), "stride": len(box)}], "data_offset": 0}
        self.topics["box"].publish(roslibpy.Message({"layout": layout, "data": box}))


def _finite(v: float) -> bool:
    return v == v and abs(v) != float("inf")
