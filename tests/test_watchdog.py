"""The watchdog: deadlines as entries under one coarse timer per loop, on each loop a user can
pick (EVENT_LOOP)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from gql_service.watchdog import TICK, TimeoutAt, watchdog

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.SelectorEventLoop,
    "uvloop": uvloop.new_event_loop,
}
# How much later than TICK a busy test machine may run the check.
SLACK = 0.05


def on(loop_name: str, main: Callable[[], Coroutine[Any, Any, Any]]) -> Any:
    loop = LOOPS[loop_name]()
    try:
        return loop.run_until_complete(main())
    finally:
        loop.close()


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_deadline_fires_at_its_time_within_a_tick_and_a_forgotten_one_never(
    loop_name: str,
) -> None:
    async def main() -> tuple[list[tuple[str, float]], float, bool, bool]:
        dog = watchdog()
        loop = dog.loop
        start = loop.time()
        fired: list[tuple[str, float]] = []
        dog.watch(start + 0.1, lambda: fired.append(("due", loop.time())))
        forgotten = dog.watch(start + 0.05, lambda: fired.append(("forgotten", loop.time())))
        dog.forget(forgotten)
        armed_while_watching = dog.armed
        await asyncio.sleep(0.1 + TICK + SLACK)
        # Nothing is watched any more: the timer is not set again.
        await asyncio.sleep(2 * TICK)
        return fired, start, armed_while_watching, dog.armed

    fired, start, armed_while_watching, armed_after = on(loop_name, main)

    assert [name for name, _ in fired] == ["due"]
    late = fired[0][1] - (start + 0.1)
    assert 0 <= late <= TICK + SLACK
    assert armed_while_watching
    assert not armed_after


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_failing_callback_does_not_keep_the_others_from_firing(loop_name: str) -> None:
    async def main() -> list[str]:
        dog = watchdog()
        fired: list[str] = []

        def fail() -> None:
            raise RuntimeError("broken")

        now = dog.loop.time()
        dog.watch(now, fail)
        dog.watch(now, lambda: fired.append("other"))
        await asyncio.sleep(TICK + SLACK)
        return fired

    assert on(loop_name, main) == ["other"]


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_each_loop_has_its_own_watchdog(loop_name: str) -> None:
    async def main() -> Any:
        return watchdog()

    first, second = on(loop_name, main), on(loop_name, main)

    assert first is not second
    assert first.loop is not second.loop


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_timeout_at_raises_timeout_error_once_its_time_has_come(loop_name: str) -> None:
    async def main() -> float:
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(TimeoutError), TimeoutAt(start + 0.05):
            await asyncio.sleep(5)
        took = loop.time() - start
        # The task is not left cancelling: it goes on awaiting.
        await asyncio.sleep(0)
        return took

    assert on(loop_name, main) <= 0.05 + TICK + SLACK


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_timeout_at_none_or_in_time_changes_nothing(loop_name: str) -> None:
    async def main() -> int:
        loop = asyncio.get_running_loop()
        with TimeoutAt(None):
            await asyncio.sleep(0.01)
        with TimeoutAt(loop.time() + 5):
            await asyncio.sleep(0.01)
        return len(watchdog())

    assert on(loop_name, main) == 0


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_cancellation_from_elsewhere_stays_a_cancellation(loop_name: str) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        entered = asyncio.Event()

        async def wait_long(when: float) -> None:
            with TimeoutAt(when):
                entered.set()
                await asyncio.sleep(5)

        far = asyncio.create_task(wait_long(loop.time() + 5))
        await entered.wait()
        far.cancel()
        with pytest.raises(asyncio.CancelledError):
            await far

        # Cancelled from elsewhere after its deadline cancelled it, before it ran again: still
        # a cancellation. (Polled a step at a time: a sleep as long as the deadline raced it,
        # and under load the task sometimes ran its time-out first.)
        entered.clear()
        both = asyncio.create_task(wait_long(loop.time() + 0.02))
        await entered.wait()
        while not both.cancelling():  # noqa: ASYNC110 (no event says so; a step at a time)
            await asyncio.sleep(0)
        assert not both.done()
        both.cancel()
        with pytest.raises(asyncio.CancelledError):
            await both

    on(loop_name, main)


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_deadline_watched_by_a_callback_leaves_one_timer(loop_name: str) -> None:
    """A callback that watches another deadline sets the timer itself: the check after it
    must not set a second one, or the checks run twice as often from then on."""
    seconds = 0.3

    async def main() -> tuple[int, list[str]]:
        dog = watchdog()
        checks = 0
        check = dog._check

        def counted() -> None:
            nonlocal checks
            checks += 1
            check()

        dog._check = counted  # type: ignore[method-assign]
        fired: list[str] = []
        far = dog.watch(dog.loop.time() + 10, lambda: None)  # keeps the checks going
        dog.watch(
            dog.loop.time(),
            lambda: dog.watch(dog.loop.time(), lambda: fired.append("watched by a callback")),
        )
        await asyncio.sleep(seconds)
        dog.forget(far)
        return checks, fired

    checks, fired = on(loop_name, main)

    assert fired == ["watched by a callback"]
    assert checks <= 1.5 * seconds / TICK  # one chain: at most one check per tick


@pytest.mark.parametrize("loop_name", sorted(LOOPS))
def test_a_loops_watchdog_is_reachable_when_the_loop_is_not_running(loop_name: str) -> None:
    """A protocol's ``connection_lost`` may run when its loop no longer does: it forgets its
    head's deadline through its own loop's watchdog."""
    loop = LOOPS[loop_name]()
    try:

        async def arm() -> int:
            return watchdog().watch(loop.time() + 5, lambda: None)

        async def running() -> Any:
            return watchdog()

        key = loop.run_until_complete(arm())
        dog = watchdog(loop)
        dog.forget(key)

        assert dog is loop.run_until_complete(running())
        assert len(dog) == 0
    finally:
        loop.close()
