"""How a worker process lives: stop on SIGTERM/SIGINT, and (demos, tests) stop when idle."""
from __future__ import annotations

import signal
import threading
import time


class StopFlag:
    """Set by SIGTERM/SIGINT (main thread only) or by stop()."""

    def __init__(self, install: bool = True):
        self._ev = threading.Event()
        if install and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._ev.set())

    @classmethod
    def from_event(cls, ev: threading.Event) -> "StopFlag":
        """A flag that is the given event (no signal handlers)."""
        flag = cls(install=False)
        flag._ev = ev
        return flag

    def stop(self) -> None:
        self._ev.set()

    def is_set(self) -> bool:
        return self._ev.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._ev.wait(timeout)

    def __bool__(self) -> bool:
        return self._ev.is_set()


class IdleClock:
    """Tells a loop to end after `idle_s` seconds without input (None = never). For demos and tests."""

    def __init__(self, idle_s: float | None):
        self.idle_s = idle_s
        self.last = time.monotonic()

    def saw_input(self) -> None:
        self.last = time.monotonic()

    def expired(self) -> bool:
        return self.idle_s is not None and time.monotonic() - self.last >= self.idle_s
