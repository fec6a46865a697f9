"""The one way the engine makes a process-wide object (the runner, the partial-text flusher, the
embedded model server).

Streamlit runs every session's script on its own short-lived thread in one process, so these
objects are shared by all sessions: made on first use under a lock, made again when the old one
no longer fits (closed, or started for another model), closed at exit when they hold a thread or
a child process, and forgotten (not closed: it belongs to the parent) in a forked copy of the
process.
"""

from __future__ import annotations

import atexit
import os
import threading
import weakref
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")

_all: weakref.WeakSet[ProcessWide[Any]] = weakref.WeakSet()


class ProcessWide(Generic[T]):
    """Holds at most one T for the whole process."""

    def __init__(self, close: Callable[[T], object] | None = None) -> None:
        self._close = close
        self._value: T | None = None
        self._lock = threading.Lock()
        self._at_exit = False
        _all.add(self)

    def get(
        self,
        make: Callable[[], T],
        fits: Callable[[T], bool] | None = None,
        ready: Callable[[T], object] | None = None,
    ) -> T:
        """The object, made with `make()` if there is none or `fits(current)` is false (the
        current one is then closed first). `ready(obj)` runs under the same lock before it is
        returned (start it, or restart it after a crash), so callers never race each other."""
        with self._lock:
            if self._value is not None and fits is not None and not fits(self._value):
                self._close_locked()
            if self._value is None:
                self._value = make()
                if self._close is not None and not self._at_exit:
                    # Registered on first use, not at import: exit handlers run newest first,
                    # so what was made last is closed first.
                    atexit.register(self.clear)
                    self._at_exit = True
            if ready is not None:
                ready(self._value)
            return self._value

    def peek(self) -> T | None:
        """The object if one was made, without making one."""
        return self._value

    def clear(self) -> None:
        """Close the object (if it has a close) and forget it; the next get() makes another."""
        with self._lock:
            self._close_locked()

    def _close_locked(self) -> None:
        value, self._value = self._value, None
        if value is not None and self._close is not None:
            self._close(value)

    def _forget(self) -> None:
        self._value = None
        self._lock = threading.Lock()  # another thread may have held it at the fork


def _forget_all_after_fork() -> None:
    for holder in list(_all):
        holder._forget()


os.register_at_fork(after_in_child=_forget_all_after_fork)
