"""Action statistics (q01/q99 per dimension) from episodes, and the check that they fit the data.

The statistics travel inside the checkpoint (model/tokenizers/actions.py writes
them); a fine-tune that reuses a checkpoint's statistics on data of another action
dimension must fail here, naming both, not bin garbage.
"""

from __future__ import annotations

import numpy as np

from model.action_frame import CameraActionFrame, pixel_stats
from model.example import select_state
from model.tokenizers.actions import ActionStats
from training.episodes import DatasetError, EpisodeData


def action_dim(episodes: list[EpisodeData]) -> int:
    """The one action dimension all episodes share; DatasetError naming the first that differs."""
    if not episodes:
        raise DatasetError("no episodes: cannot compute action statistics")
    dim = episodes[0].action.shape[-1]
    for ep in episodes[1:]:
        if ep.action.shape[-1] != dim:
            raise DatasetError(
                f"{ep.where('action')}: {ep.action.shape[-1]} action dimensions, but "
                f"{episodes[0].where('action')} has {dim}"
            )
    return int(dim)


def compute_action_stats(episodes: list[EpisodeData], frame: CameraActionFrame | None = None) -> ActionStats:
    """q01/q99 (and mean, std, min, max) over every frame of every episode (in ``frame`` when given)."""
    action_dim(episodes)
    for ep in episodes:
        if not np.isfinite(ep.action).all():
            raise DatasetError(f"{ep.where('action')}: NaN or inf in actions; cannot compute statistics")
    actions = np.concatenate([ep.action for ep in episodes])
    if frame is None:
        return ActionStats.from_actions(actions)
    return pixel_stats(ActionStats.from_actions(frame.to_camera(actions)))


def action_frame_for(
    frame: str,
    camera: str,
    episodes: list[EpisodeData],
    state_point: int | None = None,
    state_features: int | None = None,
) -> CameraActionFrame | None:
    """``"native"``: None (actions binned as they are). ``"camera"``: the calibration of ``camera`` from
    the episodes' annotations, for absolute waypoints [x, y, z, ...] in the table frame; with
    ``state_point`` (data.state_point) the index of the model's ``state_features`` where the hand's
    [x, y, z] begins, in that frame too."""
    if state_point is not None:
        if frame != "camera":
            raise ValueError(
                f"data.state_point={state_point} puts the hand's pixel among the pointer's candidates; it "
                f"needs data.action_frame=camera (got {frame!r})"
            )
        if state_features is not None and not 0 <= state_point <= state_features - 3:
            raise ValueError(
                f"data.state_point={state_point} must index the first of three state features [x, y, z] "
                f"of the {state_features} the model reads (data.state_dims): 0..{state_features - 3}"
            )
    if frame == "native":
        return None
    if frame != "camera":
        raise ValueError(f"data.action_frame must be 'native' or 'camera', got {frame!r}")
    ep = episodes[0]
    cam = ep.main_camera if camera not in ep.images else camera
    first = (ep.annotations or [{}])[0]  # EpisodeData keeps the model camera's annotations
    calib = first.get("camera") or first.get(cam, {}).get("camera")
    if calib is None:
        raise DatasetError(
            f"{ep.where('annotations')}: data.action_frame=camera needs the camera pose of {cam!r} in the "
            "annotations (datasets from `uio2 collect` carry it); use action_frame=native otherwise"
        )
    if action_dim(episodes) < 3:
        raise DatasetError(f"{ep.where('action')}: camera-frame waypoints need actions [x, y, z, ...]")
    out = CameraActionFrame.from_annotation(calib, np.concatenate([e.action for e in episodes]))
    out.state_point = state_point
    return out


def check_action_stats(stats: ActionStats, episodes: list[EpisodeData], stats_source: str) -> None:
    """DatasetError if ``stats`` (from ``stats_source``) has another dimension than the episodes' actions."""
    dim = action_dim(episodes)
    if stats.dim != dim:
        raise DatasetError(
            f"action statistics from {stats_source} have {stats.dim} dimensions but "
            f"{episodes[0].where('action')} has {dim}; recompute them (--recompute-stats) or use matching data"
        )


def compute_state_stats(episodes: list[EpisodeData], dims=None) -> ActionStats:
    """q01/q99 (and mean, std, min, max) of the state features the model reads (``dims``: all if None)."""
    rows = [select_state(s, dims) for ep in episodes for s in ep.state]
    return ActionStats.from_actions(np.stack(rows))
