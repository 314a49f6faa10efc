"""asyncio acquisitions: ``async with gate.acquire_async(...)``.

The uncontended path takes the gate at once (no future, no thread hop). Otherwise the task waits
in the gate's queue, the same first-in, first-out queue as blocked threads, on racegate's runtime
thread, which wakes the event loop when the gate is granted: the loop is never blocked.
Cancelling the task leaves the queue (or gives back a grant that arrived meanwhile).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, Generator, Optional

if TYPE_CHECKING:
    from ._native import Gate, Guard


def _wake(fut: "asyncio.Future[None]") -> None:
    if not fut.done():
        fut.set_result(None)


async def _wait(gate: "Gate", label: Optional[str], timeout: Optional[float], units: int) -> "Guard":
    loop = asyncio.get_running_loop()
    fut = loop.create_future()
    waiter = gate._enqueue(label, timeout, units, loop, fut)
    try:
        await fut
    except BaseException:
        waiter.cancel()
        raise
    return waiter.result()


class AsyncAcquire:
    """What ``Gate.acquire_async`` returns: an async context manager, and an awaitable that
    returns the :class:`racegate.Guard`."""

    __slots__ = ("_gate", "_label", "_timeout", "_units", "_guard")

    def __init__(self, gate: "Gate", label: Optional[str], timeout: Optional[float], units: int) -> None:
        self._gate = gate
        self._label = label
        self._timeout = timeout
        self._units = units
        self._guard: Optional["Guard"] = None

    async def __aenter__(self) -> "Guard":
        guard = self._gate._try_now(self._label, self._units)
        if guard is None:
            guard = await _wait(self._gate, self._label, self._timeout, self._units)
        self._guard = guard
        return guard

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool:
        guard, self._guard = self._guard, None
        if guard is not None:
            guard.release()
        return False

    def __await__(self) -> Generator[Any, None, "Guard"]:
        return self._acquire().__await__()

    async def _acquire(self) -> "Guard":
        guard = self._gate._try_now(self._label, self._units)
        if guard is None:
            guard = await _wait(self._gate, self._label, self._timeout, self._units)
        return guard
