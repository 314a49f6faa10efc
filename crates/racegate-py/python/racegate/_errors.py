"""The exceptions racegate raises. Their text is the Rust gate's message: it names the gate, the
holders (label, and for a machine-wide gate the pid and command), how long they have held, and a
hint."""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple, Type

__all__ = [
    "RacegateError",
    "AcquireTimeout",
    "WouldBlock",
    "TooLarge",
    "MachineGateError",
    "ConfigError",
]


class RacegateError(Exception):
    """Base class of every racegate error."""

    def __init__(self, message: str, **attrs: Any) -> None:
        super().__init__(message)
        self._attrs = attrs
        for key, value in attrs.items():
            setattr(self, key, value)

    def __reduce__(self) -> Tuple[Any, Tuple[Any, ...]]:
        # Keeps the attributes across pickling (multiprocessing, xdist).
        return (_rebuild, (type(self), self.args[0] if self.args else "", self._attrs))


def _rebuild(cls: Type["RacegateError"], message: str, attrs: Dict[str, Any]) -> "RacegateError":
    return cls(message, **attrs)


class AcquireTimeout(RacegateError, TimeoutError):
    """The timeout passed before the gate was granted.

    Attributes: ``gate`` (name), ``label`` (the caller's, or ``None``), ``waited`` (seconds),
    ``holders`` (list of :class:`racegate.Holder`: label, units, held_for seconds; for a
    machine-wide gate the holders in other processes follow, their label reading
    ``pid 4242 running `cmd` as vision``), ``waiters`` (others still queued).
    """

    gate: str
    label: Optional[str]
    waited: float
    holders: List[Any]
    waiters: int


class WouldBlock(RacegateError):
    """``try_acquire`` found the gate busy (or others queued ahead).

    Attributes: ``gate``, ``holders``, ``waiters``.
    """

    gate: str
    holders: List[Any]
    waiters: int


class TooLarge(RacegateError, ValueError):
    """More units were requested than the gate's capacity: it could never be granted.

    Attributes: ``gate``, ``requested``, ``capacity``.
    """

    gate: str
    requested: int
    capacity: int


class MachineGateError(RacegateError, OSError):
    """A machine-wide gate could not be opened, or its lock directory failed under a call."""


class ConfigError(RacegateError, ValueError):
    """A gate configuration was refused (zero capacity, a global gate configured twice
    differently)."""
