"""Gymnasium-Robotics Fetch adapter (Reach, Push, PickAndPlace, Slide) behind our observation contract.

Cameras: "external_camera_0" (default, a view of the table), "head_camera_rgb", "gripper_camera_rgb" (the last two
see little of the table at the start of an episode).
``state``: (10,) float32 = gripper xyz (m), finger positions (2), gripper linear velocity (3), finger
velocities (2) — the proprioceptive part of Fetch's observation. The goal is not in the state: it is
the red target drawn in the images, and the instruction names it. Action: Fetch's Box(-1, 1, (4,)):
end-effector displacement xyz (x 0.05 m) and gripper. Episodes terminate on success, truncate at 50 steps.
Experts: simple scripted controllers (privileged: they read the goal and object from the raw observation).
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.adapter_base import AdapterEnv

FETCH_TASKS = ("Reach", "Push", "PickAndPlace", "Slide")
TEMPLATES = {
    "Reach": (
        "reach the red target",
        "move the gripper to the red ball",
        "touch the red target",
        "go to the red marker",
    ),
    "Push": (
        "push the black block to the red target",
        "slide the block onto the red marker",
        "push the cube to the red ball",
    ),
    "PickAndPlace": (
        "pick up the black block and put it at the red target",
        "move the block to the red ball",
        "place the cube on the red marker",
    ),
    "Slide": ("slide the puck to the red target", "shove the puck to the red marker"),
}


class FetchEnv(AdapterEnv):
    cameras_available = ("external_camera_0", "head_camera_rgb", "gripper_camera_rgb")
    robot_type = "fetch"
    state_dim = 10
    state_names = [
        "grip_x",
        "grip_y",
        "grip_z",
        "finger_r",
        "finger_l",
        "grip_vx",
        "grip_vy",
        "grip_vz",
        "finger_vr",
        "finger_vl",
    ]
    action_names = ["dx", "dy", "dz", "gripper"]
    metadata = {"render_modes": ["rgb_array"], "render_fps": 25}

    def __init__(
        self,
        task: str = "Reach",
        cameras: tuple[str, ...] = ("external_camera_0",),
        image_size: int | tuple[int, int] = 96,
        render_mode: str | None = None,
        fast_render: bool = True,
    ):
        if task not in FETCH_TASKS:
            raise ValueError(f"unknown Fetch task {task!r}; expected one of {FETCH_TASKS}")
        self.task_name = task
        super().__init__(cameras, image_size, render_mode, fast_render)
        self.max_episode_steps = 50

    def _make_inner(self) -> gym.Env:
        import gymnasium_robotics

        gym.register_envs(gymnasium_robotics)
        return gym.make(f"Fetch{self.task_name}-v4", disable_env_checker=True)

    def _image(self, camera: str) -> np.ndarray:
        self.inner.unwrapped._render_callback()  # moves the target marker to this episode's goal
        return super()._image(camera)

    def _state(self, raw) -> np.ndarray:
        o = np.asarray(raw["observation"], dtype=np.float32)
        if self.task_name == "Reach":
            return o[:10]
        return np.concatenate([o[0:3], o[9:11], o[20:23], o[23:25]])

    def _templates(self) -> list[str]:
        return list(TEMPLATES[self.task_name])

    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        return obs, reward, terminated or info["is_success"], truncated, info

    def expert(self):
        return FetchExpert(self)


class FetchExpert:
    """Reach: straight to the goal. PickAndPlace: grasp from above, carry to the goal. Push/Slide: push from behind."""

    def __init__(self, env: FetchEnv):
        self.env = env

    def reset(self) -> None:
        self._grasped = False

    def act(self, obs=None) -> np.ndarray:
        raw = self.env.raw_obs
        o, goal = raw["observation"], raw["desired_goal"]
        grip = o[:3]
        if self.env.task_name == "Reach":
            return self._move(goal - grip, 0.0)
        obj = o[3:6]
        if self.env.task_name in ("Push", "Slide"):
            return self._push(grip, obj, goal)
        width = o[9] + o[10]
        above = obj + np.array([0, 0, 0.06])
        if not self._grasped:
            if np.linalg.norm((grip - obj)[:2]) > 0.01 and np.linalg.norm(grip - obj) > 0.02:
                target = above if grip[2] > obj[2] + 0.03 or np.linalg.norm((grip - obj)[:2]) > 0.01 else obj
                return self._move(target - grip, 1.0)
            if np.linalg.norm(grip - obj) > 0.01:
                return self._move(obj - grip, 1.0)
            if width > 0.055:  # close on the object
                return self._move(np.zeros(3), -1.0)
            self._grasped = True
        return self._move(goal - obj, -1.0)

    def _push(self, grip, obj, goal) -> np.ndarray:
        """Stand behind the object on the line to the goal, low, then push along that line.

        About 85% of episodes succeed: goals that need the block pushed towards the robot put the pushing
        position beyond the arm's reach at table height.
        """
        to_goal = (goal - obj)[:2]
        d = to_goal / max(np.linalg.norm(to_goal), 1e-6)
        behind = obj[:2] - d * 0.06
        low = obj[2]
        rel = grip[:2] - obj[:2]
        lateral = rel - (rel @ d) * d
        aligned = np.linalg.norm(lateral) < 0.015 and rel @ d < -0.03
        if not aligned:
            if np.linalg.norm(grip[:2] - behind) > 0.01:  # travel above the table, then come down behind it
                z = obj[2] + 0.06 if np.linalg.norm(grip[:2] - behind) > 0.02 else low
                return self._move(np.r_[behind - grip[:2], z - grip[2]], 1.0)
            return self._move(np.r_[behind - grip[:2], low - grip[2]], 1.0)
        push = d * min(np.linalg.norm(to_goal) + 0.03, 0.05) - lateral
        return self._move(np.r_[push, low - grip[2]], 1.0)

    @staticmethod
    def _move(delta: np.ndarray, gripper: float) -> np.ndarray:
        return np.concatenate([np.clip(delta * 10.0, -1, 1), [gripper]]).astype(np.float32)
