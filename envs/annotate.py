"""Ground-truth annotations of the tabletop for one camera: what is where, in 3D and in the image.

Each object's 2D box is the image extent of its geoms' bounding-box corners projected with the
camera's intrinsics (clipped to the image); its point is the projected 3D centre. ``visible`` means
the box lies (partly) inside the image and in front of the camera; occlusion is not considered
(unless asked: ``occlusion=True`` counts each object's pixels in the segmentation image, whose ids are
the objects' ``id``).
"""

from __future__ import annotations

import numpy as np

from envs.render import camera_pose, geom_corners, project
from envs.scene import Scene


def annotations(
    scene: Scene,
    camera: str,
    size: tuple[int, int],
    task: str,
    instruction: str,
    target: dict,
    segmentation: np.ndarray | None = None,
) -> dict:
    """JSON-serialisable dict: objects, camera (pos, xmat, fovy, width, height), task, instruction, target.

    With the camera's ``segmentation`` image, each object also gets ``visible_pixels`` (occlusion-aware).
    """
    m, d = scene.model, scene.data
    pose = camera_pose(m, d, camera)
    height, width = size
    objects = []
    for body in scene.active:
        item = scene.items[body]
        root = m.body(body).id
        corners = np.concatenate([geom_corners(m, d, g) for g in item.geoms])
        rot = d.xmat[root].reshape(3, 3)
        local = (corners - d.xpos[root]) @ rot  # corners in the item's own frame
        lo, hi = local.min(0), local.max(0)
        centre = d.xpos[root] + rot @ ((lo + hi) / 2)
        pix, depth = project(corners, pose, size)
        centre_pix, centre_depth = project(centre[None], pose, size)
        (px, py), cdepth = centre_pix[0], centre_depth[0]
        x1, y1 = np.clip(pix.min(0), 0, [width, height])
        x2, y2 = np.clip(pix.max(0), 0, [width, height])
        visible = bool((depth > 0).all() and x2 - x1 >= 1 and y2 - y1 >= 1)
        entry = {
            "name": item.name,
            "id": int(root),
            "body": body,
            "kind": item.kind,
            "shape": item.shape,
            "colour": item.colour,
            "box": [float(x1), float(y1), float(x2), float(y2)],
            "point": [float(px), float(py)],
            "center": centre.tolist(),
            "size": (hi - lo).tolist(),
            "yaw": float(np.arctan2(rot[1, 0], rot[0, 0])),
            "visible": bool(visible and cdepth > 0),
        }
        if segmentation is not None:
            entry["visible_pixels"] = int((segmentation == root).sum())
            entry["visible"] = entry["visible"] and entry["visible_pixels"] > 0
        if item.kind == "drawer":
            entry["open_amount"] = scene.drawer_qpos()
        if item.kind == "button":
            entry["pressed"] = bool(scene.button_travel(body) < -0.007)
        objects.append(entry)
    return {
        "objects": objects,
        "camera": {"name": camera, **pose, "width": width, "height": height},
        "task": task,
        "instruction": instruction,
        "target": {
            k: (scene.items[v].name if isinstance(v, str) and v in scene.items else v)
            for k, v in target.items()
        },
        "grasped": scene.items[scene.grasped].name
        if scene.grasped in scene.items
        else ("drawer" if scene.grasped == "drawer" else None),
    }
