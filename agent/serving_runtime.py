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
from typing import Any

import numpy as np

from agent.serving_batching import DynamicBatcher
from agent.serving_schemas import ObservationSpec


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
    """What to check observations against, from the attributes the policy declares (if any)."""
    cameras = getattr(policy, "cameras", None)
    state_dim = getattr(policy, "state_dim", None)
    return ObservationSpec(
        cameras=tuple(cameras) if cameras else None,
        state_dim=int(state_dim) if state_dim else None,
        **limits,
    )


def _takes_sessions(fn: Callable) -> bool:
    try:
        return "sessions" in inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return False


class PolicyRuntime:
    """Runs a Policy for many clients: ``await runtime.call(fn, ...)`` and ``await runtime.predict_chunk(...)``."""

    def __init__(self, policy: Any, max_batch: int = 8, max_wait_ms: float = 2.0, max_pending: int = 256):
        self.policy = policy
        self.executor = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="uio2-model")
        self.batched = hasattr(policy, "predict_action_chunk_batch") and _takes_sessions(
            policy.predict_action_chunk_batch
        )
        self.batcher = DynamicBatcher(
            self._predict_chunks,
            self.executor,
            max_batch=max_batch,
            max_wait_ms=max_wait_ms,
            max_pending=max_pending,
        )

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

    async def predict_chunk(self, session: Any | None, observation: dict) -> np.ndarray:
        """(K, D) float32 for one client; batched with other clients' requests. ``session=None``: stateless."""
        return await self.batcher.submit((session, observation))

    def _predict_chunks(self, items: Sequence[tuple[Any, dict]]) -> list[np.ndarray]:
        sessions = [s if s is not None else new_session(self.policy) for s, _ in items]
        observations = [o for _, o in items]
        if self.batched and len(items) > 1:
            chunks = self.policy.predict_action_chunk_batch(observations, sessions=sessions)
            return [np.asarray(c, dtype=np.float32) for c in chunks]
        return [
            np.asarray(s.predict_action_chunk(o), dtype=np.float32) for s, o in zip(sessions, observations)
        ]
