"""The served policy: one model thread, per-client sessions, and batched action-chunk calls.

A session is a policy that shares the loaded model but keeps its own episode state (history, action
queue), so two robots on one server never see each other's frames. Every call into the model runs on
one dedicated thread: torch already uses all cores inside a call, and serialising calls keeps the
per-session state free of races.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import copy
import inspect
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from agent.serving.batching import DynamicBatcher
from agent.serving.schemas import ObservationSpec


def _heavy(value: Any) -> bool:
    """Weights and tensors: shared between sessions, never copied."""
    try:
        import torch
    except ImportError:
        return False
    return isinstance(value, torch.nn.Module | torch.Tensor)


def new_session(policy: Any) -> Any:
    """A policy with fresh episode state that shares ``policy``'s model."""
    if hasattr(policy, "new_session"):
        return policy.new_session()
    # Deep-copy the small state (queues, histories: a shallow copy would share them, and reset() may
    # clear them in place) but share modules and tensors found up to two attributes deep.
    memo: dict[int, Any] = {}
    for value in vars(policy).values():
        children = vars(value).values() if hasattr(value, "__dict__") and not _heavy(value) else ()
        for v in (value, *children):
            if _heavy(v):
                memo[id(v)] = v
    session = copy.deepcopy(policy, memo)
    session.reset()
    return session


def observation_spec(policy: Any, **limits: Any) -> ObservationSpec:
    """What to check observations against: the cameras the policy reads, its largest state (if declared)."""
    spec = ObservationSpec(cameras=tuple(getattr(policy, "cameras", None) or ()), **limits)
    state_dim = getattr(policy, "state_dim", None)  # agent.Policy: the model's max_state_dim
    if state_dim:
        spec = replace(spec, max_state_dim=int(state_dim))
    return replace(spec, **state_sizes(policy))


def state_sizes(policy: Any) -> dict[str, Any]:
    """The state length the policy needs: ``state_size`` (exact) and ``min_state_size`` (its state_dims).

    agent.Policy reads ``state[state_dims]`` and its checkpoint's state statistics fix how many features
    that gives; without state_dims the statistics fix the state's length itself.
    """
    dims = getattr(getattr(policy, "config", None), "state_dims", None)
    stats = getattr(getattr(policy, "processor", None), "state_stats", None)
    if dims:
        return {"state_size": None, "min_state_size": max(max(dims) + 1, max(-d for d in dims))}
    if stats is not None and getattr(stats, "dim", None):
        return {"state_size": int(stats.dim), "min_state_size": int(stats.dim)}
    return {"state_size": None, "min_state_size": 0}


def generation_targets(policy: Any) -> list[str]:
    """The outputs this checkpoint can generate: images and speech need its VQ-GAN tokenizers."""
    if hasattr(policy, "generation_targets"):
        return list(policy.generation_targets)
    processor = getattr(policy, "processor", None)
    targets = ["text", "boxes"]
    for target, attr in (("image", "image_tokenizer"), ("audio", "audio_tokenizer")):
        if processor is None or getattr(processor, attr, None) is not None:
            targets.append(target)
    return targets


def _takes_sessions(fn: Callable) -> bool:
    try:
        return "sessions" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class PolicyRuntime:
    """Runs a Policy for many clients: ``await runtime.call(fn, ...)`` and batched ``await runtime.act(...)``."""

    def __init__(self, policy: Any, max_batch: int = 8, max_wait_ms: float = 2.0, max_pending: int = 256):
        self.policy = policy
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="uio2-model")
        # Batched calls need the policy to take per-client sessions (agent.Policy does); else a loop.
        self.batched = _takes_sessions(getattr(policy, "predict_action_chunk_batch", None))
        self.batcher = DynamicBatcher(
            self._run_batch,
            self.executor,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_pending=max_pending,
        )
        self._scratch: list[Any] = []  # fresh-state sessions for stateless (HTTP) requests; model thread only

    def start(self) -> None:
        self.batcher.start()

    async def stop(self) -> None:
        await self.batcher.stop()
        self.executor.shutdown(wait=True, cancel_futures=True)

    async def call(self, fn: Callable, *args: Any) -> Any:
        """Run ``fn(*args)`` on the model thread."""
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)

    async def new_session(self) -> Any:
        return await self.call(new_session, self.policy)

    async def act(self, kind: str, session: Any | None, observation: dict) -> np.ndarray:
        """``kind`` "chunk": (K, D) from predict_action_chunk; "select": (D,) from select_action.

        Batched with other clients' requests. ``session=None``: a fresh episode (stateless request).
        """
        if kind not in ("chunk", "select"):
            raise ValueError(f"kind must be 'chunk' or 'select', got {kind!r}")
        return await self.batcher.submit((kind, session, observation))

    def _run_batch(self, items: Sequence[tuple[str, Any, dict]]) -> list[np.ndarray]:
        sessions = list(self._fresh(sum(s is None for _, s, _ in items)))
        sessions = [s if s is not None else sessions.pop() for _, s, _ in items]
        results: list[Any] = [None] * len(items)
        for kind in ("chunk", "select"):
            idx = [i for i, item in enumerate(items) if item[0] == kind]
            if not idx:
                continue
            obs, ses = [items[i][2] for i in idx], [sessions[i] for i in idx]
            if kind == "chunk":
                out = self._chunks(obs, ses)
            elif self.batched and hasattr(self.policy, "select_action_batch"):
                out = self.policy.select_action_batch(obs, ses)
            else:
                out = [s.select_action(o) for s, o in zip(ses, obs)]
            for i, r in zip(idx, out):
                results[i] = np.asarray(r, dtype=np.float32)
        return results

    def _chunks(self, observations: list[dict], sessions: list[Any]) -> Sequence[np.ndarray]:
        if self.batched:
            return self.policy.predict_action_chunk_batch(observations, sessions=sessions)
        return [s.predict_action_chunk(o) for s, o in zip(sessions, observations)]

    def _fresh(self, n: int) -> list[Any]:
        while len(self._scratch) < n:
            self._scratch.append(new_session(self.policy))
        for s in self._scratch[:n]:
            s.reset()
        return self._scratch[:n]
