"""One coarse timer per event loop for the many deadlines that almost never fire.

Every request arms deadlines: its head's and its body's arrival, each of its database round
trips. Nearly all of them are forgotten, unexpired, a millisecond later. On uvloop each
``call_later`` makes a libuv timer and its cancel closes it, and ``asyncio.timeout`` adds its
own bookkeeping: a compiled read spent about a tenth of its CPU (in-process, 177 against 167 µs)
on the three it armed. Here a deadline is an entry in a dict, and one timer, armed only while
something is watched, checks them every ``TICK`` seconds: a deadline fires up to ``TICK`` late,
never early.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from types import TracebackType
from typing import Any

log = logging.getLogger(__name__)

# How often the watched deadlines are checked, while there are any; how late one may fire.
TICK = 0.01


class Watchdog:
    """Callbacks to call once the loop's clock reaches their time, unless forgotten before."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self._watched: dict[int, tuple[float, Callable[[], Any]]] = {}
        self._last_key = 0
        self._timer: asyncio.TimerHandle | None = None

    def watch(self, when: float, callback: Callable[[], Any]) -> int:
        """Call ``callback()`` at ``when`` (``loop.time()``'s clock), up to ``TICK`` s later;
        the key for ``forget``."""
        key = self._last_key = self._last_key + 1
        self._watched[key] = (when, callback)
        if self._timer is None:
            self._timer = self.loop.call_later(TICK, self._check)
        return key

    def after(self, seconds: float, callback: Callable[[], Any]) -> int:
        """``watch`` for ``seconds`` from now."""
        return self.watch(self.loop.time() + seconds, callback)

    def forget(self, key: int) -> None:
        """Do not call the callback of ``key`` (none if it was called already)."""
        self._watched.pop(key, None)

    def __len__(self) -> int:
        return len(self._watched)

    @property
    def armed(self) -> bool:
        """Whether the timer is set (only while something is watched)."""
        return self._timer is not None

    def _check(self) -> None:
        self._timer = None
        watched = self._watched
        now = self.loop.time()
        for key in [key for key, (when, _) in watched.items() if when <= now]:
            _, callback = watched.pop(key)
            try:
                callback()
            except Exception:  # one deadline's failure must not stop the others'
                log.exception("a deadline's callback failed")
        # (A callback that watched something has set the timer already.)
        if watched and self._timer is None:
            self._timer = self.loop.call_later(TICK, self._check)


_dogs: dict[asyncio.AbstractEventLoop, Watchdog] = {}
_last: tuple[asyncio.AbstractEventLoop | None, Watchdog | None] = (None, None)


def watchdog(loop: asyncio.AbstractEventLoop | None = None) -> Watchdog:
    """The watchdog of ``loop``, by default of the running loop. (A protocol passes its own:
    the loop may call ``connection_lost`` when it is no longer running.)"""
    global _last
    if loop is None:
        loop = asyncio.get_running_loop()
    last_loop, dog = _last
    if last_loop is loop and dog is not None:
        return dog
    dog = _dogs.get(loop)
    if dog is None:
        # (Loops that closed go with the next new one: a process has few loops, tests a few.)
        for old in [old for old in _dogs if old.is_closed()]:
            del _dogs[old]
        dog = _dogs[loop] = Watchdog(loop)
    _last = (loop, dog)
    return dog


class TimeoutAt:
    """``asyncio.timeout_at(when)`` on the watchdog, as a plain ``with``: the task is
    cancelled at ``when`` (up to ``TICK`` s later) and the block raises TimeoutError. As with
    asyncio's, a cancellation from elsewhere stays a cancellation."""

    __slots__ = ("_cancelling", "_expired", "_key", "_task", "when")

    def __init__(self, when: float | None) -> None:
        self.when = when  # None: no deadline
        self._expired = False

    def __enter__(self) -> TimeoutAt:
        if self.when is None:
            return self
        task = asyncio.current_task()
        assert task is not None, "TimeoutAt is used in a task"
        self._task = task
        self._cancelling = task.cancelling()
        self._key = watchdog().watch(self.when, self._expire)
        return self

    def _expire(self) -> None:
        self._expired = True
        self._task.cancel()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.when is None:
            return
        if not self._expired:
            watchdog().forget(self._key)
            return
        if self._task.uncancel() <= self._cancelling and exc_type is asyncio.CancelledError:
            raise TimeoutError from exc
