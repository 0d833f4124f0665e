"""Meta-World adapter: ``gym.make("Meta-World/MT1", env_name=...)`` behind our observation contract.

Cameras: "corner" (default; it renders rotated 180 degrees and is turned back upright here), "corner2",
"corner3", "corner4", "topview", "behindGripper", "gripperPOV". ``state``: (4,) float32 = hand xyz (m) and
gripper opening (Meta-World's first four observation entries); ``full_state=True`` gives all 39.
Action: Meta-World's Box(-1, 1, (4,)): hand displacement xyz and gripper effort. Each reset draws one of
the task's 50 MT1 goals from the seeded generator, and an instruction from the task's templates.
Episodes terminate on success (as in our suite) and truncate after 500 steps.
Experts: Meta-World's own scripted policies (``metaworld.policies.ENV_POLICY_MAP``).
MT10 / MT50: ``MT10_TASKS`` / ``METAWORLD_TASKS``; each task is ``uio2/MetaWorld-<task>`` (e.g. "uio2/MetaWorld-reach-v3").
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np

from envs.adapter_base import AdapterEnv, RawObservationExpert

# MT50, in Meta-World's order.
METAWORLD_TASKS = (
    "assembly-v3",
    "basketball-v3",
    "bin-picking-v3",
    "box-close-v3",
    "button-press-topdown-v3",
    "button-press-topdown-wall-v3",
    "button-press-v3",
    "button-press-wall-v3",
    "coffee-button-v3",
    "coffee-pull-v3",
    "coffee-push-v3",
    "dial-turn-v3",
    "disassemble-v3",
    "door-close-v3",
    "door-lock-v3",
    "door-open-v3",
    "door-unlock-v3",
    "hand-insert-v3",
    "drawer-close-v3",
    "drawer-open-v3",
    "faucet-open-v3",
    "faucet-close-v3",
    "hammer-v3",
    "handle-press-side-v3",
    "handle-press-v3",
    "handle-pull-side-v3",
    "handle-pull-v3",
    "lever-pull-v3",
    "pick-place-wall-v3",
    "pick-out-of-hole-v3",
    "pick-place-v3",
    "plate-slide-v3",
    "plate-slide-side-v3",
    "plate-slide-back-v3",
    "plate-slide-back-side-v3",
    "peg-insert-side-v3",
    "peg-unplug-side-v3",
    "soccer-v3",
    "stick-push-v3",
    "stick-pull-v3",
    "push-v3",
    "push-wall-v3",
    "push-back-v3",
    "reach-v3",
    "reach-wall-v3",
    "shelf-place-v3",
    "sweep-into-v3",
    "sweep-v3",
    "window-open-v3",
    "window-close-v3",
)
MT10_TASKS = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)

# One or two plain descriptions per task; paraphrased further by PATTERNS.
DESCRIPTIONS: dict[str, tuple[str, ...]] = {
    "assembly-v3": ("put the ring on the peg", "assemble the ring onto the peg"),
    "basketball-v3": ("dunk the ball into the basket", "put the ball in the hoop"),
    "bin-picking-v3": ("move the cube from one bin to the other", "pick the cube out of the bin"),
    "box-close-v3": ("put the lid on the box", "close the box with its lid"),
    "button-press-topdown-v3": ("press the button from the top", "push the button down"),
    "button-press-topdown-wall-v3": ("press the button from the top behind the wall", "push down the button"),
    "button-press-v3": ("press the button", "push the button in"),
    "button-press-wall-v3": ("press the button behind the wall", "push the button past the wall"),
    "coffee-button-v3": ("press the button on the coffee machine", "start the coffee machine"),
    "coffee-pull-v3": ("pull the mug away from the coffee machine", "take the mug from the coffee machine"),
    "coffee-push-v3": ("push the mug under the coffee machine", "slide the mug to the coffee machine"),
    "dial-turn-v3": ("turn the dial", "rotate the dial"),
    "disassemble-v3": ("take the ring off the peg", "remove the ring from the peg"),
    "door-close-v3": ("close the door", "push the door shut"),
    "door-lock-v3": ("lock the door", "turn the door lock"),
    "door-open-v3": ("open the door", "pull the door open"),
    "door-unlock-v3": ("unlock the door", "turn the lock to unlock the door"),
    "hand-insert-v3": ("put your hand into the hole", "insert the gripper into the hole"),
    "drawer-close-v3": ("close the drawer", "push the drawer shut"),
    "drawer-open-v3": ("open the drawer", "pull the drawer out"),
    "faucet-open-v3": ("turn the faucet on", "open the faucet"),
    "faucet-close-v3": ("turn the faucet off", "close the faucet"),
    "hammer-v3": ("hammer the nail in", "drive the nail with the hammer"),
    "handle-press-side-v3": ("press the handle down from the side", "push the side handle down"),
    "handle-press-v3": ("press the handle down", "push the handle down"),
    "handle-pull-side-v3": ("pull the handle up from the side", "lift the side handle"),
    "handle-pull-v3": ("pull the handle up", "lift the handle"),
    "lever-pull-v3": ("pull the lever up", "raise the lever"),
    "pick-place-wall-v3": (
        "pick up the puck and place it at the goal behind the wall",
        "move the puck over the wall",
    ),
    "pick-out-of-hole-v3": ("pick the peg out of the hole", "take the peg out of the hole"),
    "pick-place-v3": ("pick up the puck and place it at the goal", "move the puck to the goal"),
    "plate-slide-v3": ("slide the plate into the cabinet", "push the plate into the goal"),
    "plate-slide-side-v3": ("slide the plate into the cabinet from the side", "push the plate in sideways"),
    "plate-slide-back-v3": ("slide the plate out of the cabinet", "pull the plate back out"),
    "plate-slide-back-side-v3": (
        "slide the plate out of the cabinet sideways",
        "pull the plate out to the side",
    ),
    "peg-insert-side-v3": ("insert the peg into the hole from the side", "put the peg in the side hole"),
    "peg-unplug-side-v3": ("unplug the peg from the side", "pull the peg out sideways"),
    "soccer-v3": ("kick the ball into the goal", "push the ball into the net"),
    "stick-push-v3": ("push the bottle with the stick", "use the stick to push the bottle"),
    "stick-pull-v3": ("pull the bottle with the stick", "use the stick to pull the bottle"),
    "push-v3": ("push the puck to the goal", "slide the puck to the target"),
    "push-wall-v3": ("push the puck around the wall to the goal", "slide the puck past the wall"),
    "push-back-v3": ("push the puck back to the goal", "pull the puck back to the target"),
    "reach-v3": ("reach the goal position", "move the gripper to the target"),
    "reach-wall-v3": ("reach over the wall to the goal", "move the gripper past the wall to the target"),
    "shelf-place-v3": ("put the puck on the shelf", "place the puck onto the shelf"),
    "sweep-into-v3": ("sweep the puck into the hole", "push the puck into the hole"),
    "sweep-v3": ("sweep the puck off the table", "push the puck off the edge"),
    "window-open-v3": ("open the window", "slide the window open"),
    "window-close-v3": ("close the window", "slide the window shut"),
}
PATTERNS = ("{}", "please {}", "{} now", "can you {}", "your task is to {}")
assert set(DESCRIPTIONS) == set(METAWORLD_TASKS)


class MetaWorldEnv(AdapterEnv):
    """One Meta-World task (``task="pick-place-v3"``) with images, instruction and speech."""

    cameras_available = ("corner", "corner2", "corner3", "corner4", "topview", "behindGripper", "gripperPOV")
    rotated = frozenset({"corner"})
    robot_type = "sawyer"
    action_names = ["dx", "dy", "dz", "gripper"]

    def __init__(
        self,
        task: str = "reach-v3",
        cameras: tuple[str, ...] = ("corner", "gripperPOV"),
        image_size: int | tuple[int, int] = 96,
        render_mode: str | None = None,
        fast_render: bool = True,
        full_state: bool = False,
        benchmark_seed: int = 0,
    ):
        if task not in METAWORLD_TASKS:
            raise ValueError(
                f"unknown Meta-World task {task!r}; expected one of the MT50 names, e.g. 'reach-v3'"
            )
        self.task_name = task
        self.benchmark_seed = benchmark_seed  # fixes MT1's set of 50 goals (else drawn anew in every process)
        self.full_state = full_state
        self.state_dim = 39 if full_state else 4
        self.state_names = None if full_state else ["hand_x", "hand_y", "hand_z", "gripper_opening"]
        super().__init__(cameras, image_size, render_mode, fast_render)
        self.max_episode_steps = self.inner.unwrapped.max_path_length
        wrapper = self.inner
        while not hasattr(wrapper, "toggle_sample_tasks_on_reset"):
            wrapper = wrapper.env
        wrapper.toggle_sample_tasks_on_reset(False)  # we draw the task ourselves, from the seeded generator
        self._tasks = wrapper.tasks
        wrapper = self.inner
        while not hasattr(wrapper, "toggle_terminate_on_success"):
            wrapper = wrapper.env
        wrapper.toggle_terminate_on_success(True)  # as in our suite: the episode ends when the task is done

    def _make_inner(self) -> gym.Env:
        import metaworld  # noqa: F401  (registers Meta-World/*)

        return gym.make(
            "Meta-World/MT1", env_name=self.task_name, seed=self.benchmark_seed, disable_env_checker=True
        )

    def _before_reset(self, rng):
        self.inner.unwrapped.set_task(self._tasks[rng.integers(len(self._tasks))])

    def _state(self, raw) -> np.ndarray:
        raw = np.asarray(raw, dtype=np.float32)
        return raw if self.full_state else raw[:4]

    def _templates(self) -> list[str]:
        return [p.format(d) for d in DESCRIPTIONS[self.task_name] for p in PATTERNS]

    def _success(self, info: dict) -> bool:
        return bool(info.get("success", 0.0) > 0.5)

    def expert(self):
        from metaworld.policies import ENV_POLICY_MAP

        return RawObservationExpert(self, ENV_POLICY_MAP[self.task_name]())
