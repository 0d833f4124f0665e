"""A simulated robot as a ROS 2 node (rclpy): one of our MuJoCo envs behind camera, state and command topics.

    python -m bridges.sim_robot_node --env uio2/Reach-v0 --seed 0 --rate 10 --result out.json

Publishes, under ``--prefix`` (default ``/sim``): ``camera/<name>/image_raw`` (sensor_msgs/Image
rgb8), ``state`` (sensor_msgs/JointState, names ``state_0..``), ``instruction`` (std_msgs/String),
``speech`` (std_msgs/Float32MultiArray of 16 kHz samples, with ``--speech``), and at the end of
each episode ``success`` (std_msgs/Bool). Every observation carries the simulation time of its
step as its header stamp. Applies ``command`` (trajectory_msgs/JointTrajectory, one point whose
``positions`` are the action, or std_msgs/Float64MultiArray).

Two ways to step:
- free-running (default): at ``--rate``, with the latest command; a command older than
  ``--command-timeout`` is replaced by zeros (the robot-side command timeout).
- ``--lockstep``: publish observation k, wait for the JointTrajectory stamped with its time,
  apply it, step. An episode through the bridge then replays exactly what a direct rollout
  with the same seed and policy does (the bridge's ``sync: true``).

``--result PATH`` writes the outcome (success, steps, actions, states, final state) as JSON.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

from .convert import image_to_msg

DEFAULT_INSTRUCTION = "reach the target"


def make_env(env_id: str, image_size: int):
    """Our suite's env (``import envs`` registers ``uio2/*``), or any Gymnasium MuJoCo env as a stand-in."""
    import gymnasium as gym

    if env_id.startswith("uio2/"):
        import envs  # noqa: F401 - registers the suite

        return gym.make(env_id, image_size=image_size)
    return gym.make(env_id, render_mode="rgb_array", width=image_size, height=image_size)


def env_observation(env, obs) -> dict:
    """The API's observation dict: our suite returns it already; a plain Gymnasium env is wrapped."""
    if isinstance(obs, dict) and "images" in obs:
        return obs
    return {
        "images": {"scene": np.ascontiguousarray(env.render())},
        "state": np.asarray(obs, np.float32).reshape(-1),
        "instruction": DEFAULT_INSTRUCTION,
    }


def rollout_direct(policy, env, seed: int, max_steps: int) -> dict:
    """The reference: the same episode without ROS (policy.select_action on the env's observations)."""
    obs, _ = env.reset(seed=seed)
    policy.reset()
    actions, states, success = [], [], False
    for _ in range(max_steps):
        o = env_observation(env, obs)
        states.append(np.asarray(o["state"], np.float32).tolist())
        a = np.asarray(policy.select_action(o), np.float32)
        actions.append(a.tolist())
        obs, _, terminated, truncated, info = env.step(a)
        success = bool(info.get("is_success", False))
        if terminated or truncated or success:
            break
    final = np.asarray(env_observation(env, obs)["state"], np.float32).tolist()
    return {
        "success": success,
        "steps": len(actions),
        "actions": actions,
        "states": states,
        "final_state": final,
    }


def _stamp(t: float) -> tuple[int, int]:
    sec = int(t)
    return sec, int(round((t - sec) * 1e9))


class SimRobotNode:
    """The rclpy node: publishers, the command subscription, and the stepping loop."""

    def __init__(self, args) -> None:
        import rclpy
        from rclpy.node import Node
        from sensor_msgs.msg import JointState
        from std_msgs.msg import Bool, Float32MultiArray, Float64MultiArray, String
        from trajectory_msgs.msg import JointTrajectory

        self.args = args
        rclpy.init()
        self.node = Node("uio2_sim_robot")
        self.env = make_env(args.env, args.image_size)
        self.action_dim = int(np.prod(self.env.action_space.shape))
        self.low = np.asarray(self.env.action_space.low, np.float64)
        self.high = np.asarray(self.env.action_space.high, np.float64)
        p = args.prefix.rstrip("/")
        self.image_pubs: dict = {}
        self.pub_state = self.node.create_publisher(JointState, f"{p}/state", 10)
        self.pub_instruction = self.node.create_publisher(String, f"{p}/instruction", 10)
        self.pub_speech = self.node.create_publisher(Float32MultiArray, f"{p}/speech", 1)
        self.pub_success = self.node.create_publisher(Bool, f"{p}/success", 10)
        self.pub_heartbeat = self.node.create_publisher(String, f"{p}/heartbeat", 10)
        cmd_type = JointTrajectory if args.command_type == "JointTrajectory" else Float64MultiArray
        self.node.create_subscription(cmd_type, f"{p}/command", self._on_command, 10)
        self.msgs = {"JointState": JointState, "String": String, "Bool": Bool, "F32": Float32MultiArray}
        self.command: np.ndarray | None = None
        self.command_stamp: tuple[int, int] | None = None
        self.by_stamp: dict[tuple[int, int], np.ndarray] = {}
        self.command_time = -1e9
        self.commands_received = 0
        self.commands_rejected = 0
        self.camera_enabled = True

    def _on_command(self, msg) -> None:
        if hasattr(msg, "points"):
            if not msg.points:
                self.commands_rejected += 1
                return
            values = np.asarray(msg.points[0].positions, np.float64)
            stamp = (msg.header.stamp.sec, msg.header.stamp.nanosec)
        else:
            values, stamp = np.asarray(msg.data, np.float64), None
        # The robot's own last line: a command of the wrong size, non-finite or out of limits is refused.
        if values.shape != (self.action_dim,) or not np.isfinite(values).all():
            self.commands_rejected += 1
            return
        if (values < self.low - 1e-6).any() or (values > self.high + 1e-6).any():
            self.commands_rejected += 1
            return
        self.command, self.command_stamp, self.command_time = values, stamp, time.monotonic()
        if stamp is not None:  # lockstep looks commands up by stamp: a late duplicate must not hide one
            self.by_stamp[stamp] = values
            while len(self.by_stamp) > 64:
                self.by_stamp.pop(next(iter(self.by_stamp)))
        self.commands_received += 1

    def publish_observation(self, obs: dict, t: float) -> None:
        sec, nsec = _stamp(t)
        if self.camera_enabled:
            self._ensure_image_pubs(list(obs["images"]))
            for name, image in obs["images"].items():
                self.image_pubs[name].publish(_image_msg(image, sec, nsec))
        js = self.msgs["JointState"]()
        js.header.stamp.sec, js.header.stamp.nanosec = sec, nsec
        state = np.asarray(obs["state"], np.float64)
        js.name = [f"state_{i}" for i in range(state.shape[0])]
        js.position = state.tolist()
        self.pub_state.publish(js)
        self.pub_instruction.publish(self.msgs["String"](data=str(obs["instruction"])))

    def _ensure_image_pubs(self, names: list[str]) -> None:
        from sensor_msgs.msg import Image

        for name in names:
            if name not in self.image_pubs:
                topic = f"{self.args.prefix.rstrip('/')}/camera/{name}/image_raw"
                self.image_pubs[name] = self.node.create_publisher(Image, topic, 10)

    def publish_speech(self, obs: dict) -> None:
        if self.args.speech and obs.get("speech") is not None:
            self.pub_speech.publish(self.msgs["F32"](data=np.asarray(obs["speech"], np.float32).tolist()))

    def spin_for(self, seconds: float) -> None:
        import rclpy

        end = time.monotonic() + seconds
        while True:
            rclpy.spin_once(self.node, timeout_sec=max(0.0, min(0.01, end - time.monotonic())))
            if time.monotonic() >= end:
                return

    def wait_for_subscribers(self, timeout: float) -> None:
        """Do not start the episode before the bridge listens (discovery takes a moment)."""
        end = time.monotonic() + timeout
        # the state and at least one camera: a bridge may well use only some of the cameras
        while time.monotonic() < end and not (
            self.pub_state.get_subscription_count()
            and any(p.get_subscription_count() for p in self.image_pubs.values())
        ):
            self.pub_heartbeat.publish(self.msgs["String"](data="waiting"))
            self.spin_for(0.05)

    def run_episode(self, seed: int) -> dict:
        args = self.args
        obs, _ = self.env.reset(seed=seed)
        dt = 1.0 / args.rate
        t = 1.0 + seed * 1000.0  # sim time of step 0; never (0, 0), which the bridge's safe commands carry
        actions, states, success, timeouts = [], [], False, 0
        o = env_observation(self.env, obs)
        self._ensure_image_pubs(list(o["images"]))
        self.wait_for_subscribers(args.wait_for_bridge)
        self.publish_speech(o)
        next_step = time.monotonic()
        for k in range(args.max_steps):
            if args.camera_stop_after is not None and k >= args.camera_stop_after:
                self.camera_enabled = False
            self.publish_observation(o, t)
            states.append(np.asarray(o["state"], np.float32).tolist())
            if args.lockstep:
                want = _stamp(t)
                end = time.monotonic() + args.command_timeout
                resend = time.monotonic() + 0.5
                while want not in self.by_stamp and time.monotonic() < end:
                    self.spin_for(0.002)
                    if time.monotonic() > resend:  # a message lost (e.g. to discovery): say it again
                        self.publish_observation(o, t)
                        resend = time.monotonic() + 0.5
                command = self.by_stamp.get(want)
            else:
                next_step += dt
                self.spin_for(max(0.0, next_step - time.monotonic()))
                fresh = time.monotonic() - self.command_time <= args.command_timeout
                command = self.command if fresh else None
            if command is not None:
                action = command.astype(np.float32)
            else:
                timeouts += 1
                action = np.zeros(self.action_dim, np.float32)  # the robot-side command timeout: stop
            actions.append(action.tolist())
            obs, _, terminated, truncated, info = self.env.step(action)
            o = env_observation(self.env, obs)
            t += dt
            success = bool(info.get("is_success", False))
            if k % max(1, int(args.rate)) == 0:
                self.publish_speech(o)
            if terminated or truncated or success:
                break
        self.pub_success.publish(self.msgs["Bool"](data=success))
        return {
            "seed": seed,
            "success": success,
            "steps": len(actions),
            "actions": actions,
            "states": states,
            "final_state": np.asarray(o["state"], np.float32).tolist(),
            "command_timeouts": timeouts,
            "commands_received": self.commands_received,
            "commands_rejected": self.commands_rejected,
        }

    def close(self) -> None:
        import rclpy

        self.env.close()  # MuJoCo's EGL renderer complains at exit when left open
        self.node.destroy_node()
        rclpy.try_shutdown()


def _image_msg(image: np.ndarray, sec: int, nsec: int):
    from sensor_msgs.msg import Image

    d = image_to_msg(np.asarray(image, np.uint8))
    msg = Image()
    msg.header.stamp.sec, msg.header.stamp.nanosec = sec, nsec
    msg.header.frame_id = "camera"
    msg.height, msg.width, msg.encoding, msg.step = d["height"], d["width"], "rgb8", d["step"]
    msg.data = np.ascontiguousarray(image, np.uint8).tobytes()
    return msg


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--env", default="uio2/Reach-v0")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--episodes", type=int, default=1)
    p.add_argument("--rate", type=float, default=10.0, help="control rate (Hz); also the sim time step")
    p.add_argument("--max-steps", type=int, default=100)
    p.add_argument("--image-size", type=int, default=96)
    p.add_argument("--prefix", default="/sim")
    p.add_argument(
        "--command-type", choices=["JointTrajectory", "Float64MultiArray"], default="JointTrajectory"
    )
    p.add_argument(
        "--command-timeout", type=float, default=0.5, help="s; older commands are replaced by zeros"
    )
    p.add_argument(
        "--lockstep", action="store_true", help="wait for the command stamped with each observation"
    )
    p.add_argument("--speech", action="store_true", help="publish the spoken instruction (Float32MultiArray)")
    p.add_argument(
        "--camera-stop-after", type=int, default=None, help="stop publishing cameras after N steps"
    )
    p.add_argument("--wait-for-bridge", type=float, default=20.0, help="s to wait for a subscriber to state")
    p.add_argument("--result", default=None, help="write the episodes' outcome here (JSON)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYOPENGL_PLATFORM", os.environ["MUJOCO_GL"])
    node = SimRobotNode(args)
    results = []
    try:
        for i in range(args.episodes):
            results.append(node.run_episode(args.seed + i))
            print(json.dumps({k: results[-1][k] for k in ("seed", "success", "steps")}), flush=True)
        if args.result:
            tmp = f"{args.result}.tmp"
            with open(tmp, "w") as f:
                json.dump(results, f)
            os.replace(tmp, args.result)
    except KeyboardInterrupt:
        pass
    finally:
        node.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
