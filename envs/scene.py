"""The tabletop scene: the MuJoCo model, its items, the gripper and the physics step.

One ``Scene`` owns one ``MjModel``/``MjData`` for the life of an environment; resets move,
recolour and park items by editing the model in place (never rebuilding it), so render
settings and renderers survive resets.

The hand is a free body held to a mocap target by a stiff weld (so it has a velocity and pushes
through ordinary contact dynamics): an action moves the target by at most ``max_delta`` metres per
step, interpolated over the physics substeps. Closing the gripper near a graspable body
(an object or the drawer handle) activates a weld between hand and body: a grasp assist that
makes picking robust without tuning finger friction (the fingers still close visibly).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import mujoco
import numpy as np

ASSET = Path(__file__).parent / "assets" / "tabletop.xml"

# name -> RGBA. Names are what instructions and captions say.
COLOURS: dict[str, tuple[float, float, float, float]] = {
    "red": (0.85, 0.12, 0.1, 1),
    "green": (0.15, 0.7, 0.2, 1),
    "blue": (0.15, 0.3, 0.9, 1),
    "yellow": (0.95, 0.85, 0.1, 1),
    "purple": (0.55, 0.2, 0.75, 1),
    "orange": (1.0, 0.5, 0.05, 1),
    "cyan": (0.1, 0.8, 0.85, 1),
    "white": (0.95, 0.95, 0.95, 1),
}

# Item kinds in the XML: body names and the shape word used in language.
OBJECTS = {"cube0": "cube", "cube1": "cube", "cube2": "cube", "ball0": "ball", "ball1": "ball"}
BINS = ("bin0", "bin1")
PADS = ("pad0", "pad1")
BUTTONS = ("button0", "button1", "button2")
CUBE_HALF = 0.02
BALL_RADIUS = 0.02
BIN_INNER_HALF = 0.052
PAD_HALF = 0.05
DRAWER_RANGE = (0.0, 0.15)
BUTTON_PRESSED = -0.007  # cap travel (m) below which a button counts as pressed

# Workspace of the grasp point (metres, world frame; table top at z = 0).
WORKSPACE_LOW = np.array([-0.32, -0.3, 0.012])
WORKSPACE_HIGH = np.array([0.32, 0.25, 0.3])
HAND_TO_GRASP = np.array([0.0, 0.0, -0.045])  # grasp site in the hand frame
FINGER_OPEN = 0.045
FINGER_CLOSED = 0.0065
FINGER_HALF_THICKNESS = 0.006
GRASP_RADIUS = 0.03  # a body's grasp point must lie this close to the grasp site to be picked


@dataclass
class Item:
    """One thing on the table the language can refer to."""

    body: str  # MuJoCo body name
    kind: str  # object | bin | pad | button | drawer
    shape: str  # cube, ball, bin, pad, button, drawer
    colour: str = ""
    geoms: list[int] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"{self.colour} {self.shape}".strip()


class Scene:
    """The MuJoCo model plus the bookkeeping that resets, steps and queries it."""

    def __init__(self, substeps: int = 10, max_delta: float = 0.015):
        self.model = mujoco.MjModel.from_xml_path(str(ASSET))
        self.data = mujoco.MjData(self.model)
        self.substeps = substeps
        self.max_delta = max_delta
        m = self.model
        self.hand_mocap = m.body_mocapid[m.body("hand_target").id]
        self._hand_qpos = m.jnt_qposadr[m.joint("hand_joint").id]
        self.grasp_site = m.site("grasp").id
        self.items: dict[str, Item] = {}
        for body, shape in OBJECTS.items():
            self.items[body] = Item(body, "object", shape)
        for body in BINS:
            self.items[body] = Item(body, "bin", "bin")
        for body in PADS:
            self.items[body] = Item(body, "pad", "pad")
        for body in BUTTONS:
            self.items[body] = Item(body, "button", "button")
        self.items["cabinet"] = Item("cabinet", "drawer", "drawer")
        for item in self.items.values():
            root = m.body(item.body).id
            item.geoms = [g for g in range(m.ngeom) if self._is_descendant(m.geom_bodyid[g], root)]
        self.weld = {
            m.eq(e).name.removeprefix("grasp_"): e for e in range(m.neq) if m.eq(e).name.startswith("grasp_")
        }
        self.grasped: str | None = None
        self.gripper_closed = False
        self.active: list[str] = []
        self._home_body_pos = m.body_pos.copy()

    def _is_descendant(self, body: int, root: int) -> bool:
        while body != 0:
            if body == root:
                return True
            body = self.model.body_parentid[body]
        return False

    # ------------------------------------------------------------------ reset
    def reset(
        self,
        layout: dict[str, np.ndarray],
        colours: dict[str, str],
        hand_xyz: np.ndarray,
        drawer_qpos: float = 0.0,
        yaws: dict[str, float] | None = None,
    ) -> None:
        """Place the active items at ``layout`` (body -> xy), colour them, park the rest."""
        m, d = self.model, self.data
        mujoco.mj_resetData(m, d)
        m.body_pos[:] = self._home_body_pos
        self.active = list(layout)
        yaws = yaws or {}
        for k, body in enumerate(self.items):
            item = self.items[body]
            xy = layout.get(body)
            parked = xy is None
            if parked:  # off the table, out of every camera's view
                xy = np.array([2.0 + 0.3 * k, 2.0])
            item.colour = colours.get(body, "")
            if item.kind == "object":
                jnt = m.body(body).jntadr[0]
                adr = m.jnt_qposadr[jnt]
                z = -0.73 if parked else CUBE_HALF
                yaw = yaws.get(body, 0.0)
                d.qpos[adr : adr + 7] = [xy[0], xy[1], z, np.cos(yaw / 2), 0, 0, np.sin(yaw / 2)]
            else:
                m.body_pos[m.body(body).id][:2] = xy
                m.body_pos[m.body(body).id][2] = -0.74 if parked else 0.0
            if item.colour:
                rgba = COLOURS[item.colour]
                for g in self._coloured_geoms(item):
                    m.geom_rgba[g] = rgba
        d.qpos[m.jnt_qposadr[m.joint("drawer_joint").id]] = drawer_qpos
        d.mocap_pos[self.hand_mocap] = np.clip(hand_xyz, WORKSPACE_LOW, WORKSPACE_HIGH) - HAND_TO_GRASP
        d.mocap_quat[self.hand_mocap] = [1, 0, 0, 0]
        d.qpos[self._hand_qpos : self._hand_qpos + 7] = [*d.mocap_pos[self.hand_mocap], 1, 0, 0, 0]
        for eq in self.weld.values():
            d.eq_active[eq] = 0
        self.grasped = None
        self.gripper_closed = False
        d.ctrl[:] = FINGER_OPEN
        d.qpos[m.jnt_qposadr[m.joint("finger_left").id]] = FINGER_OPEN
        d.qpos[m.jnt_qposadr[m.joint("finger_right").id]] = FINGER_OPEN
        mujoco.mj_forward(m, d)
        for _ in range(5):  # let objects settle onto the table
            mujoco.mj_step(m, d)
        self._prev_grasp = self.grasp_pos()

    def _coloured_geoms(self, item: Item) -> list[int]:
        m = self.model
        if item.kind == "button":
            return [m.geom(item.body).id]
        if item.kind == "drawer":
            return []
        return item.geoms

    # ------------------------------------------------------------------- step
    def step(self, delta: np.ndarray, close: bool) -> None:
        """Move the grasp point by ``delta`` metres (clipped to the workspace) and open/close the gripper."""
        m, d = self.model, self.data
        self._prev_grasp = self.grasp_pos()
        start = d.mocap_pos[self.hand_mocap].copy()
        goal = np.clip(start + HAND_TO_GRASP + delta, WORKSPACE_LOW, WORKSPACE_HIGH) - HAND_TO_GRASP
        if close and not self.gripper_closed:
            self._try_grasp()
        elif not close and self.grasped is not None:
            d.eq_active[self.weld[self.grasped]] = 0
            self.grasped = None
        self.gripper_closed = close
        width = FINGER_OPEN
        if close:
            width = FINGER_CLOSED
            if self.grasped in OBJECTS:
                width = CUBE_HALF + FINGER_HALF_THICKNESS
        d.ctrl[:] = width
        for i in range(1, self.substeps + 1):
            d.mocap_pos[self.hand_mocap] = start + (goal - start) * (i / self.substeps)
            mujoco.mj_step(m, d)

    def _try_grasp(self) -> None:
        grasp = self.grasp_pos()
        best, best_dist = None, GRASP_RADIUS
        for body in self.weld:
            if body != "drawer" and body not in self.active:
                continue
            if body == "drawer" and "cabinet" not in self.active:
                continue
            dist = np.linalg.norm(self.grasp_point(body) - grasp)
            if dist < best_dist:
                best, best_dist = body, dist
        if best is None:
            return
        m, d = self.model, self.data
        eq = self.weld[best]
        # Weld at the current relative pose: relpose = pose of body2 (the object) in body1's (the hand's) frame.
        hand = m.body("hand").id
        obj = m.body(best).id
        rel_pos = d.xmat[hand].reshape(3, 3).T @ (d.xpos[obj] - d.xpos[hand])
        hand_quat_inv = np.zeros(4)
        mujoco.mju_negQuat(hand_quat_inv, d.xquat[hand])
        rel_quat = np.zeros(4)
        mujoco.mju_mulQuat(rel_quat, hand_quat_inv, d.xquat[obj])
        m.eq_data[eq, 0:3] = 0.0
        m.eq_data[eq, 3:6] = rel_pos
        m.eq_data[eq, 6:10] = rel_quat
        m.eq_data[eq, 10] = 1.0
        d.eq_active[eq] = 1
        self.grasped = best

    # ---------------------------------------------------------------- queries
    def grasp_pos(self) -> np.ndarray:
        return self.data.site_xpos[self.grasp_site].copy()

    def grasp_point(self, body: str) -> np.ndarray:
        """Where the gripper should close to hold ``body`` (the drawer: its handle)."""
        if body in ("drawer", "cabinet"):
            return self.data.geom_xpos[self.model.geom("drawer_handle").id].copy()
        return self.data.xpos[self.model.body(body).id].copy()

    def body_pos(self, body: str) -> np.ndarray:
        return self.data.xpos[self.model.body(body).id].copy()

    def drawer_qpos(self) -> float:
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint("drawer_joint").id]])

    def button_travel(self, body: str) -> float:
        return float(self.data.qpos[self.model.jnt_qposadr[self.model.joint(f"{body}_joint").id]])

    def finger_width(self) -> float:
        m, d = self.model, self.data
        return float(
            d.qpos[m.jnt_qposadr[m.joint("finger_left").id]]
            + d.qpos[m.jnt_qposadr[m.joint("finger_right").id]]
        )

    def state(self) -> np.ndarray:
        """(8,) float32: grasp xyz (m), grasp velocity xyz (m/s), finger opening (m), gripper closed (0/1)."""
        # A mocap body has no degrees of freedom, so its velocity is the last step's displacement over time.
        vel = (self.grasp_pos() - self._prev_grasp) / (self.model.opt.timestep * self.substeps)
        return np.concatenate(
            [self.grasp_pos(), vel, [self.finger_width(), float(self.gripper_closed)]]
        ).astype(np.float32)
