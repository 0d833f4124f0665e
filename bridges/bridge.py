"""The policy bridge: rosbridge topics in, a policy at a fixed control rate, safe commands out.

    bridge = PolicyBridge(policy, load_bridge_config("configs/bridge.yaml"))
    bridge.connect()      # roslibpy -> rosbridge; subscribes, advertises
    bridge.start()        # the control loop thread
    ...
    bridge.shutdown()     # stop loop, publish the stop command, then disconnect

Each control tick, in this order:
1. e-stop engaged, a configuration error, or settling after a (re)connect -> the safe command;
2. an inference still running from an earlier tick -> wait for it; past ``command_timeout`` -> the safe command;
3. any camera or state older than ``max_age`` (or never seen) -> the safe command, no inference;
4. otherwise one inference on the latest inputs (``sync``: on the next set of equal header stamps),
   through ``SafetyFilter`` (clip, max change, NaN -> safe) to every command topic.

Configuration errors that no message can fix (a state with fewer features than the checkpoint's
``state_dims`` read or than it was trained on; a camera whose first frames have another size than its
``cameras[i].height/width``) are found on the first message, logged once as an ERROR saying what to
change, and latched in ``bridge.fault``: from then on the bridge publishes only the safe command (it
never runs the policy on inputs it cannot use), and ``uio2 bridge`` stops, publishing the stop command
last, and exits with code 3.

Reconnection is roslibpy's: its client factory is twisted's ReconnectingClientFactory
(exponential backoff from ``reconnect.initial_delay`` to ``reconnect.max_delay``) and
its topics re-subscribe and re-advertise themselves. While the link is down nothing is
published (roslibpy would queue it and flush stale commands on reconnect); the
robot's own command timeout has to stop it then. What the robot last received is then
unknown, so after every (re)connect the bridge publishes the safe command for at least
``reconnect.settle`` s and until every camera and the state have arrived again (ROS
discovery has to match the restarted rosbridge with the robot), then policy commands
ramp from it (``max_delta``): every command the robot gets is the safe command or within
``max_delta`` of the one it got before. roslibpy's twisted reactor cannot be
restarted in one process: ``shutdown`` closes this connection only; call
``terminate_reactor()`` once when the process is done with ROS.
"""

from __future__ import annotations

import collections
import concurrent.futures
import json
import logging
import threading
import time
from urllib.parse import urlparse

import numpy as np

from . import convert
from .config import BridgeConfig
from .inputs import LatestInputs, common_stamp
from .safety import EStop, SafetyFilter, stale_inputs

log = logging.getLogger("uio2.bridge")
CONFIG_FAULT_EXIT = 3  # uio2 bridge's exit code after a configuration error

STATE = "state"
INSTRUCTION = "instruction"
AUDIO = "audio"


class PolicyBridge:
    """A policy (``agent.Policy`` interface) driving a ROS 2 robot through rosbridge."""

    def __init__(self, policy, config: BridgeConfig) -> None:
        self.policy = policy
        self.cfg = config.validate()
        self.safety = _safety_filter(policy, config)
        self.state_dims, self.state_size, self.min_state_size = _policy_state_needs(policy)
        if config.state is not None and config.state.size is not None:
            problem = self._state_problem(config.state.size)
            if problem:
                raise ValueError(f"state.size={config.state.size}: {problem}")
        self.estop = EStop()
        self.cameras = {c.name: c for c in config.cameras}
        self.watched = list(self.cameras) + ([STATE] if config.state is not None else [])
        self.inputs = LatestInputs([*self.watched, INSTRUCTION, AUDIO])
        self.policy_lock = threading.Lock()  # the control loop and modality requests share one model
        self._cmd_lock = threading.RLock()  # the loop and the e-stop callback both publish
        self.period = 1.0 / config.rate_hz
        self.stats = {
            "ticks": 0,
            "inferences": 0,
            "published": 0,
            "safe_commands": 0,
            "inference_timeouts": 0,
            "late_results_dropped": 0,
            "overruns": 0,
            "not_connected": 0,
            "rejected_messages": 0,
            "connections": 0,
        }
        self.status = "waiting"
        self.fault: str | None = None  # a configuration error: only the safe command is published
        self._good_frames: set[str] = set()  # cameras that sent a frame of their configured size
        self._reconnected_at: float | None = None  # after a reconnect: the safe command until settled
        self.last_command: np.ndarray | None = None
        self.ros = None
        self._connected = threading.Event()
        self._ready_lock = threading.Lock()
        self._proto = None
        self._topics: dict[str, object] = {}
        self._command_topics: list = []
        self._executor = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="uio2-inference")
        self._pending: tuple | None = None  # (future, started, stamp, newest input's arrival)
        self._last_stamp = None
        self._last_seqs: tuple = ()
        self._last_action: np.ndarray | None = None  # sync: the last action acted on, and its stamp
        self._last_action_stamp = None
        self._stop = threading.Event()
        self._shut_down = False
        self._thread: threading.Thread | None = None
        self._log_times: dict[str, float] = {}
        self._instruction_seq = 0  # bumped by each new instruction ...
        self._policy_instruction_seq = 0  # ... and the policy is reset when it moved on
        self.modalities = None
        self.tick_times: list[float] = []  # monotonic time of each tick, for the achieved rate
        self.input_to_command: collections.deque[float] = collections.deque(maxlen=10_000)  # seconds

    # ------------------------------------------------------------ connection

    def connect(self, timeout: float = 10.0) -> None:
        """Open the rosbridge connection, subscribe to inputs, advertise commands and modality topics."""
        import roslibpy
        from roslibpy.comm.comm_autobahn import AutobahnRosBridgeClientFactory as Factory

        Factory.set_initial_delay(self.cfg.reconnect.initial_delay)
        Factory.set_max_delay(self.cfg.reconnect.max_delay)
        url = urlparse(self.cfg.rosbridge)
        if url.scheme not in ("ws", "wss") or not url.hostname:
            raise ValueError(f"rosbridge must be a ws://HOST:PORT URL, got {self.cfg.rosbridge!r}")
        self.ros = roslibpy.Ros(url.hostname, url.port or 9090, is_secure=url.scheme == "wss")
        self.ros.on("ready", self._on_ready)
        self.ros.on("close", self._on_close)
        self.ros.run(timeout=timeout)
        # With the reactor already running (another connection in this process), the link may have
        # opened before on("ready") was registered: take the open one now.
        self.ros.factory.on_ready(self._on_ready)
        cfg = self.cfg
        for cam in cfg.cameras:
            self._subscribe(cam.topic, cam.type, lambda m, c=cam: self._on_camera(c, m))
        if cfg.state is not None:
            self._subscribe(cfg.state.topic, cfg.state.type, self._on_state)
        self._subscribe(cfg.instruction.topic, "std_msgs/String", self._on_instruction)
        if cfg.audio.enabled:
            self._subscribe(cfg.audio.topic, cfg.audio.type, self._on_audio)
        self._subscribe(cfg.safety.estop_topic, "std_msgs/Bool", self._on_estop)
        for cmd in cfg.commands:
            topic = roslibpy.Topic(self.ros, cmd.topic, cmd.type, queue_size=1)
            topic.advertise()
            self._command_topics.append((cmd, topic))
        self._status_topic = roslibpy.Topic(self.ros, f"{cfg.namespace}/status", "std_msgs/String")
        self._status_topic.advertise()
        from .modalities import ModalityServer

        self.modalities = ModalityServer(self)
        self.modalities.connect(self.ros)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def _on_ready(self, proto) -> None:
        with self._ready_lock:  # called from the "ready" event and once from connect(): count each link once
            if proto is self._proto:
                return
            self._proto = proto
        self.stats["connections"] += 1
        # The robot may have missed anything sent since the link dropped, and a (re)started rosbridge
        # reaches it only once ROS discovery has matched them: settle on the safe command first.
        self._reconnected_at = time.monotonic()
        handlers = getattr(proto, "_message_handlers", None)
        if isinstance(handlers, dict) and handlers.get("status") is None:
            # roslibpy 2.1.0 has no handler for rosbridge's "status" op (its errors about our
            # requests) and logs a traceback per message; log them as what they are instead.
            handlers["status"] = lambda m: self._log_limited(
                f"status|{m.get('msg', '')[:40]}", logging.WARNING, "rosbridge status: %s", dict(m)
            )
        log.info("rosbridge connection %d established at %s", self.stats["connections"], self.cfg.rosbridge)
        self._connected.set()

    def _on_close(self, _proto) -> None:
        if self._connected.is_set() and self.status != "shutdown":
            log.warning("rosbridge connection lost; roslibpy reconnects with backoff")
        self._connected.clear()

    def _subscribe(self, name: str, msg_type: str, callback) -> None:
        import roslibpy

        topic = roslibpy.Topic(self.ros, name, msg_type, queue_length=1)

        def guarded(msg, name=name):
            try:
                callback(msg)
            except convert.ConversionError as e:
                self.stats["rejected_messages"] += 1
                # one line per topic and kind of fault per second: a flood must not become a log flood
                key = f"{name}|{str(e)[len(name) : len(name) + 40]}"
                self._log_limited(key, logging.WARNING, "rejected message on %s: %s", name, e)
            except Exception:  # a callback bug must not take the reactor thread down
                self.stats["rejected_messages"] += 1
                log.exception("error handling a message on %s", name)

        topic.subscribe(guarded)
        self._topics[name] = topic

    # ------------------------------------------------------------ inputs

    def _on_camera(self, cam, msg) -> None:
        try:
            image = convert.image_from_msg(msg, cam)
        except convert.ImageSizeError as e:
            if cam.name in self._good_frames:
                raise  # a camera that sent good frames sent an odd one: rejected like any bad message
            self.stats["rejected_messages"] += 1
            (h, w), i = e.got, [c.name for c in self.cfg.cameras].index(cam.name)
            size = getattr(self.policy, "image_size", None)
            return self._config_fault(
                f"camera {cam.name!r} on {cam.topic} sends {h}x{w} frames, but the config says "
                f"{cam.height}x{cam.width}: set cameras[{i}].height={h} and cameras[{i}].width={w}"
                + (f" (the policy resizes any size to its {size}x{size})" if size else "")
                + f", or make the camera send {cam.height}x{cam.width}"
            )
        self._good_frames.add(cam.name)
        self.inputs.put(cam.name, image, convert.header_stamp(msg))

    def _state_problem(self, n: int) -> str | None:
        """Why a state of ``n`` features cannot feed the policy (None when it can)."""
        if self.state_size is not None and n != self.state_size:
            return (
                f"the state has {n} features, but the checkpoint was trained on {self.state_size} "
                "(its state_stats.json)"
            )
        if n < self.min_state_size:
            return (
                f"the state has {n} features, but the policy's state_dims {self.state_dims} read index "
                f"{self.min_state_size - 1}, so it needs at least {self.min_state_size}"
            )
        return None

    def _on_state(self, msg) -> None:
        state = convert.state_from_msg(msg, self.cfg.state)
        problem = self._state_problem(state.shape[0])
        if problem:
            self.stats["rejected_messages"] += 1
            return self._config_fault(
                f"{self.cfg.state.topic}: {problem}: publish the features the checkpoint was trained on "
                "(state.type, state.fields, state.joint_names choose them) or use a checkpoint for this robot"
            )
        if self.cfg.state.size is None:
            self.cfg.state.size = state.shape[0]  # the first good length is the robot's: hold it to that
        self.inputs.put(STATE, state, convert.header_stamp(msg))

    def _on_instruction(self, msg) -> None:
        text = convert.instruction_from_msg(msg, self.cfg.instruction.max_chars, self.cfg.instruction.topic)
        prev = self.inputs.get(INSTRUCTION)
        self.inputs.put(INSTRUCTION, text)
        if prev is None or prev.value != text:
            log.info("instruction: %r", text)
            self._instruction_seq += 1  # a new task: the loop resets the policy before its next inference

    def _on_audio(self, msg) -> None:
        self.inputs.put(AUDIO, convert.audio_from_msg(msg, self.cfg.audio))

    def _on_estop(self, msg) -> None:
        before = self.estop.engaged
        if not self.estop.on_message(msg):
            raise convert.ConversionError(f"{self.cfg.safety.estop_topic}: data must be a bool, got {msg!r}")
        if self.estop.engaged != before:
            log.warning("e-stop %s", "ENGAGED" if self.estop.engaged else "released")
            if self.estop.engaged:  # do not wait for the next tick
                self._safe("estop")

    def _config_fault(self, text: str) -> None:
        """Latch a configuration error: logged once, then only the safe command (see the module docstring)."""
        with self._cmd_lock:
            if self.fault is not None:
                return
            self.fault = text
        log.error(
            "configuration error: %s. Until it is fixed and the bridge restarted, only the safe command is "
            "published (uio2 bridge stops and exits with code %d).",
            text,
            CONFIG_FAULT_EXIT,
        )
        self._safe("configuration error")

    def observation(self, require_fresh: bool = True) -> dict | None:
        """The policy observation from the latest inputs (None when a watched input is missing or stale)."""
        samples = self.inputs.snapshot([*self.watched, INSTRUCTION, AUDIO])
        return self._observation(samples, require_fresh)

    def _observation(self, samples, require_fresh: bool) -> dict | None:
        if require_fresh and stale_inputs(self.inputs.ages(self.watched), self.cfg.safety.max_age):
            return None
        if any(samples[n] is None for n in self.watched):
            return None
        instruction = samples[INSTRUCTION].value if samples[INSTRUCTION] else self.cfg.instruction.default
        obs = {"images": {n: samples[n].value for n in self.cameras}, "instruction": instruction}
        if STATE in samples and samples[STATE] is not None:
            obs["state"] = samples[STATE].value
        if self.cfg.audio.enabled and samples[AUDIO] is not None:
            obs["speech"] = samples[AUDIO].value
        return obs

    # ------------------------------------------------------------ control loop

    def start(self) -> None:
        """Run the control loop in a thread at ``rate_hz`` (deadline-based: overruns skip ticks, never drift)."""
        if self._thread is not None:
            raise RuntimeError("the control loop is already running")
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="uio2-control", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        next_tick = time.monotonic()
        last_status = 0.0
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the loop must outlive any one bad tick; the safe command covers it
                log.exception("control tick failed; publishing the safe command")
                self._safe("tick error")
            now = time.monotonic()
            if now - last_status >= 1.0:
                self._publish_status()
                last_status = now
            next_tick += self.period
            if next_tick < now:  # overran: skip the missed ticks rather than bursting to catch up
                self.stats["overruns"] += 1
                next_tick += self.period * np.ceil((now - next_tick) / self.period)
            self._stop.wait(max(0.0, next_tick - time.monotonic()))

    def tick(self) -> None:
        """One control step (see the module docstring for the order of checks)."""
        self.stats["ticks"] += 1
        self.tick_times.append(time.monotonic())
        if len(self.tick_times) > 10_000:
            del self.tick_times[:5_000]
        safety = self.cfg.safety
        if self.estop.engaged:
            self._drop_pending()
            return self._safe("estop")
        if self.fault is not None:
            self._drop_pending()
            return self._safe("configuration error")
        if self._reconnected_at is not None:
            if not self._settled():
                self._drop_pending()
                return self._safe("reconnected: settling")
            self._reconnected_at = None
        if self._pending is not None:
            future, started, stamp, newest = self._pending
            if not future.done():
                if time.monotonic() - started > safety.command_timeout:
                    return self._safe("inference timeout")  # counted once, when it timed out
                return None
            self._pending = None
            late = time.monotonic() - started > safety.command_timeout
            if late:  # its observation is too old to act on
                self.stats["late_results_dropped"] += 1
            else:
                return self._act(future, stamp, newest)
        stale = stale_inputs(self.inputs.ages(self.watched), safety.max_age)
        if stale:
            return self._safe("stale: " + ", ".join(stale))
        samples = self.inputs.snapshot([*self.watched, INSTRUCTION, AUDIO])
        stamp = None
        if self.cfg.sync:
            stamp = common_stamp({n: samples[n] for n in self.watched})
            seqs = tuple(samples[n].seq for n in self.watched if samples[n] is not None)
            if stamp is None:
                return None  # no complete synchronised set yet: the robot holds, the watchdog watches
            if stamp == self._last_stamp:
                if seqs == self._last_seqs:
                    return None  # no new synchronised set yet: the robot holds, the watchdog watches
                self._last_seqs = seqs
                if self._last_action is not None and self._last_action_stamp == stamp:
                    # The robot sent the same observation again: our command was lost (say, to a
                    # rosbridge restart). Answer it again, without a second inference on it.
                    with self._cmd_lock:
                        self._publish(self.safety.filter(self._last_action), stamp, safe=False)
                    return None
                # else its inference was abandoned (timeout, e-stop): infer again below
            self._last_stamp, self._last_seqs = stamp, seqs
        obs = self._observation(samples, require_fresh=False)
        if obs is None:
            return self._safe("waiting for inputs")
        if not obs["instruction"] and "speech" not in obs:
            return self._safe("waiting for an instruction")  # acting on no task is not acting safely
        reset = self._instruction_seq != self._policy_instruction_seq
        self._policy_instruction_seq = self._instruction_seq
        future = self._executor.submit(self._infer, obs, reset)
        started = time.monotonic()
        newest = max(samples[n].received for n in self.watched)
        try:
            future.result(timeout=safety.command_timeout)
        except concurrent.futures.TimeoutError:
            self._pending = (future, started, stamp, newest)
            self.stats["inference_timeouts"] += 1
            return self._safe("inference timeout")
        except Exception as e:
            self._log_inference_error(e)
            return self._safe("inference error")
        return self._act(future, stamp, newest)

    def _settled(self) -> bool:
        """After a reconnect: ``reconnect.settle`` s passed and every watched input arrived again since.

        A restarted rosbridge reaches the robot only once ROS discovery has matched its new publishers and
        subscribers (0.5-3 s measured); the robot's own messages arriving again are a sign, not a proof.
        """
        since = self._reconnected_at
        if since is None:
            return True
        if time.monotonic() - since < self.cfg.reconnect.settle:
            return False
        samples = self.inputs.snapshot(self.watched)
        return all(s is not None and s.received > since for s in samples.values())

    def _log_inference_error(self, e: Exception) -> None:
        # The policy refusing an input (ValueError) says why in one line; anything else is a bug: traceback.
        bug = not isinstance(e, ValueError)
        self._log_limited("inference", logging.ERROR, "policy inference failed: %r", e, exc_info=bug)

    def _infer(self, obs: dict, reset: bool) -> np.ndarray:
        with self.policy_lock:
            if reset:
                self.policy.reset()
            return np.asarray(self.policy.select_action(obs))

    def _act(self, future, stamp, newest_input: float) -> None:
        try:
            action = future.result()
        except Exception as e:
            self._log_inference_error(e)
            return self._safe("inference error")
        self.stats["inferences"] += 1
        with self._cmd_lock:
            if self.estop.engaged:  # engaged while the policy was thinking
                return self._safe("estop")
            self._last_action, self._last_action_stamp = action, stamp
            cmd = self.safety.filter(action)
            self.status = "running"
            self._publish(cmd, stamp, safe=False)
            # from the newest input's arrival to the command leaving: tick wait + inference + safety
            self.input_to_command.append(time.monotonic() - newest_input)

    def _safe(self, why: str) -> None:
        with self._cmd_lock:
            if self.status != why:
                log.warning("safe command: %s", why)
            self.status = why
            self._publish(self.safety.safe_command(), None, safe=True)

    def _drop_pending(self) -> None:
        if self._pending is not None:
            self._pending = None
            self.stats["late_results_dropped"] += 1

    def _publish(self, cmd: np.ndarray, stamp, safe: bool) -> None:
        import roslibpy

        if not self.safety.within_limits(cmd):  # unreachable by construction; the last line anyway
            log.error("refusing to publish %s: outside limits or not finite", cmd)
            cmd = self.safety.safe_command()
            safe = True
        if safe:
            self.stats["safe_commands"] += 1
        self.last_command = cmd
        if not self.connected:
            self.stats["not_connected"] += 1
            return
        hold = set(self.safety.hold_dims)
        for cmd_cfg, topic in self._command_topics:
            if safe and not self.safety.hold_ready and hold.intersection(cmd_cfg.dims):
                continue  # nothing to hold yet on these dims: silence, not a jump to zero
            topic.publish(roslibpy.Message(convert.command_msg(cmd, cmd_cfg, stamp)))
        self.stats["published"] += 1

    def _publish_status(self) -> None:
        import roslibpy

        if not self.connected or self.ros is None:
            return
        body = {"status": self.status, "estop": self.estop.engaged, "fault": self.fault, **self.stats}
        self._status_topic.publish(roslibpy.Message({"data": json.dumps(body)}))

    def _log_limited(self, key: str, level: int, fmt: str, *args, exc_info: bool = False) -> None:
        """Log at most once a second per key: a flood of bad messages must not become a flood of logs."""
        now = time.monotonic()
        if now - self._log_times.get(key, -1e9) >= 1.0:
            self._log_times[key] = now
            log.log(level, fmt, *args, exc_info=exc_info)

    # ------------------------------------------------------------ shutdown

    def shutdown(self, flush: float = 0.3) -> None:
        """Stop the loop, publish the stop (safe) command, then close the connection (idempotent)."""
        if self._shut_down:
            return
        self._shut_down = True
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            self._thread = None
        self._drop_pending()
        if self.ros is not None:
            self._safe("shutdown")
            time.sleep(flush)  # sends are queued on the reactor thread; let the stop command leave first
            for topic in self._topics.values():
                topic.unsubscribe()
            if self.modalities is not None:
                self.modalities.close()
            try:
                self.ros.close()
                end = time.monotonic() + 2.0  # close() only queues the goodbye: let it go out
                while self.ros.is_connected and time.monotonic() < end:
                    time.sleep(0.01)
            except Exception as e:  # closing a dead link may time out; we are leaving anyway
                log.warning("closing the rosbridge connection: %s", e)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def achieved_rate(self, last: int = 100) -> float:
        """Ticks per second over the last ``last`` ticks."""
        t = self.tick_times[-last:]
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else 0.0


def terminate_reactor() -> None:
    """Stop roslibpy's twisted reactor: once per process, after every connection is closed."""
    from twisted.internet import reactor

    if reactor.running:
        reactor.callFromThread(reactor.stop)


def _policy_state_needs(policy) -> tuple[list[int] | None, int | None, int]:
    """(state_dims, exact state length, least state length) the policy needs; see agent.serving.runtime."""
    from agent.serving.runtime import state_sizes

    sizes = state_sizes(policy)
    dims = getattr(getattr(policy, "config", None), "state_dims", None)
    return (list(dims) if dims else None), sizes["state_size"], sizes["min_state_size"]


def _safety_filter(policy, cfg: BridgeConfig) -> SafetyFilter:
    """Limits: the policy's, narrowed by the config's; everything else from ``cfg.safety``."""
    low = np.asarray(policy.action_low, np.float64).reshape(-1)
    high = np.asarray(policy.action_high, np.float64).reshape(-1)
    d = int(policy.action_dim)
    if low.shape != (d,) or high.shape != (d,):
        raise ValueError(f"policy limits must be ({d},), got {low.shape} and {high.shape}")
    s = cfg.safety
    for name, values in (("action_low", s.action_low), ("action_high", s.action_high)):
        if values and len(values) != d:
            raise ValueError(f"safety.{name} needs {d} values (the policy's action_dim), got {values}")
    if s.action_low:
        low = np.maximum(low, s.action_low)
    if s.action_high:
        high = np.minimum(high, s.action_high)
    for cmd in cfg.commands:
        if max(cmd.dims) >= d:
            raise ValueError(f"{cmd.topic}: dims {cmd.dims} do not fit the policy's {d}-dim action")
    return SafetyFilter(
        low,
        high,
        max_delta=s.max_delta or None,
        safe_action=s.safe_action or None,
        hold_dims=s.hold_dims,
    )
