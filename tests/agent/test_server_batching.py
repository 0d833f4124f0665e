"""The dynamic batcher: concurrent requests share calls, results go back to the right caller, failures stay local."""

import asyncio
import concurrent.futures
import time

import pytest

from agent.serving.batching import DynamicBatcher, Overloaded


def _run(coro):
    return asyncio.run(coro)


def _batcher(run_batch, **kw):
    return DynamicBatcher(run_batch, concurrent.futures.ThreadPoolExecutor(1), **kw)


def test_concurrent_requests_are_batched_and_answered_in_order():
    calls = []

    def square(items):
        calls.append(len(items))
        time.sleep(0.01)
        return [x * x for x in items]

    async def main():
        b = _batcher(square, max_batch=8, max_wait_ms=20)
        b.start()
        out = await asyncio.gather(*(b.submit(i) for i in range(20)))
        await b.stop()
        return out, b.stats

    out, stats = _run(main())
    assert out == [i * i for i in range(20)]
    assert max(calls) > 1 and sum(calls) == 20
    assert stats.requests == 20 and stats.batches == len(calls) and stats.largest <= 8


def test_max_batch_one_turns_batching_off():
    calls = []

    def ident(items):
        calls.append(len(items))
        return list(items)

    async def main():
        b = _batcher(ident, max_batch=1)
        b.start()
        await asyncio.gather(*(b.submit(i) for i in range(5)))
        await b.stop()

    _run(main())
    assert calls == [1] * 5


def test_a_failing_item_fails_alone():
    def checked(items):
        if any(x < 0 for x in items):
            raise ValueError(f"negative input {min(items)}")
        return list(items)

    async def main():
        b = _batcher(checked, max_batch=4, max_wait_ms=20)
        b.start()
        out = await asyncio.gather(*(b.submit(x) for x in [1, -1, 2]), return_exceptions=True)
        await b.stop()
        return out

    out = _run(main())
    assert out[0] == 1 and out[2] == 2
    assert isinstance(out[1], ValueError) and "negative input -1" in str(out[1])


def test_too_many_waiting_requests_are_refused():
    def slow(items):
        time.sleep(0.05)
        return list(items)

    async def main():
        b = _batcher(slow, max_batch=1, max_pending=2)
        b.start()
        out = await asyncio.gather(*(b.submit(i) for i in range(6)), return_exceptions=True)
        await b.stop()
        return out

    out = _run(main())
    assert any(isinstance(o, Overloaded) for o in out)
    assert any(o == 0 for o in out)


def test_max_batch_must_be_positive():
    with pytest.raises(ValueError, match="max_batch must be >= 1, got 0"):
        _batcher(list, max_batch=0)
