"""Action statistics (q01/q99 per dimension) from episodes, and the check that they fit the data.

The statistics travel inside the checkpoint (model/tokenizers/actions.py writes
them); a fine-tune that reuses a checkpoint's statistics on data of another action
dimension must fail here, naming both, not bin garbage.
"""

from __future__ import annotations

import numpy as np

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


def compute_action_stats(episodes: list[EpisodeData]) -> ActionStats:
    """q01/q99 (and mean, std, min, max) over every frame of every episode."""
    action_dim(episodes)
    for ep in episodes:
        if not np.isfinite(ep.action).all():
            raise DatasetError(f"{ep.where('action')}: NaN or inf in actions; cannot compute statistics")
    return ActionStats.from_actions(np.concatenate([ep.action for ep in episodes]))


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
