"""cancel_and_wait: stops background tasks without swallowing the caller's own cancellation."""

from __future__ import annotations

import asyncio

import pytest

from services.runtime.tasks import cancel_and_wait


async def test_the_tasks_are_cancelled_and_finished_when_it_returns() -> None:
    tasks = [asyncio.create_task(asyncio.sleep(60)) for _ in range(3)]
    await cancel_and_wait(tasks[0], None, *tasks[1:])
    assert all(t.cancelled() for t in tasks)


async def test_a_task_that_already_finished_is_fine() -> None:
    done = asyncio.create_task(asyncio.sleep(0))
    await done
    await cancel_and_wait(done)
    assert done.done() and not done.cancelled()


async def test_the_callers_own_cancellation_goes_on_up() -> None:
    release = asyncio.Event()

    async def slow_to_stop() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            await release.wait()  # cleanup that takes a while
            raise

    worker = asyncio.create_task(slow_to_stop())
    await asyncio.sleep(0)
    stopper = asyncio.create_task(cancel_and_wait(worker))
    await asyncio.sleep(0.01)
    stopper.cancel()  # e.g. a stop hook that ran out of time
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await stopper
    assert stopper.cancelled()
    assert worker.done()
