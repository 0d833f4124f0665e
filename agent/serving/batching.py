"""Dynamic batching across clients: collect requests for a few milliseconds, run them as one call.

The model runs on one dedicated thread (the ``executor``), so calls never overlap and the event loop
stays free to accept frames. While a batch runs, new requests queue up and form the next batch; the
``max_wait_ms`` window only matters when the model is idle. ``max_batch=1`` turns batching off.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any


class Overloaded(RuntimeError):
    """More requests are waiting than the server accepts; the caller should retry later (HTTP 503)."""


@dataclass
class BatchStats:
    batches: int = 0
    requests: int = 0
    largest: int = 0
    busy_s: float = 0.0
    sizes: dict[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        mean = self.requests / self.batches if self.batches else 0.0
        return {
            "batches": self.batches,
            "requests": self.requests,
            "mean_batch": round(mean, 3),
            "largest_batch": self.largest,
            "busy_s": round(self.busy_s, 3),
        }


class DynamicBatcher:
    """``await submit(item)`` -> that item's result of ``run_batch(items)`` (same length and order)."""

    def __init__(
        self,
        run_batch: Callable[[Sequence[Any]], Sequence[Any]],
        executor: concurrent.futures.Executor,
        max_batch: int = 8,
        max_wait_ms: float = 2.0,
        max_pending: int = 256,
    ) -> None:
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        self.run_batch = run_batch
        self.executor = executor
        self.max_batch = max_batch
        self.max_wait_s = max_wait_ms / 1000.0
        self.max_pending = max_pending
        self.stats = BatchStats()
        self._queue: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._worker = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
            self._worker = None

    async def submit(self, item: Any) -> Any:
        if self._queue is None:
            raise RuntimeError("DynamicBatcher.start() was not called")
        if self._queue.qsize() >= self.max_pending:
            raise Overloaded(f"{self._queue.qsize()} requests already waiting (limit {self.max_pending})")
        future = asyncio.get_running_loop().create_future()
        await self._queue.put((item, future))
        return await future

    async def _collect(self) -> list[tuple[Any, asyncio.Future]]:
        assert self._queue is not None
        batch = [await self._queue.get()]
        deadline = time.monotonic() + self.max_wait_s
        while len(batch) < self.max_batch:
            try:
                batch.append(self._queue.get_nowait())
                continue
            except asyncio.QueueEmpty:
                pass
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                batch.append(await asyncio.wait_for(self._queue.get(), remaining))
            except TimeoutError:
                break
        return batch

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            # A client that went away while waiting needs no answer.
            batch = [(item, fut) for item, fut in batch if not fut.done()]
            if not batch:
                continue
            items = [item for item, _ in batch]
            start = time.monotonic()
            try:
                results = await loop.run_in_executor(self.executor, self._run_isolated, items)
            except Exception as e:  # the executor itself failed: every waiter gets the error
                results = [e] * len(items)
            self._record(len(items), time.monotonic() - start)
            for (_, fut), result in zip(batch, results):
                if fut.done():
                    continue
                if isinstance(result, BaseException):
                    fut.set_exception(result)
                else:
                    fut.set_result(result)

    def _run_isolated(self, items: list[Any]) -> list[Any]:
        """Run the batch; if it fails, run the items one by one so one bad request fails alone."""
        try:
            results = list(self.run_batch(items))
            if len(results) != len(items):
                raise RuntimeError(f"run_batch returned {len(results)} results for {len(items)} items")
            return results
        except Exception as e:
            if len(items) == 1:
                return [e]
        out: list[Any] = []
        for item in items:
            try:
                out.append(self.run_batch([item])[0])
            except Exception as e:
                out.append(e)
        return out

    def _record(self, size: int, seconds: float) -> None:
        s = self.stats
        s.batches += 1
        s.requests += size
        s.largest = max(s.largest, size)
        s.busy_s += seconds
        s.sizes[size] = s.sizes.get(size, 0) + 1
