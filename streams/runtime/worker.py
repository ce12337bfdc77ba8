"""What every gatewatch worker loop shares: stop on SIGTERM/SIGINT, idle exit, atomic state files."""
from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from pathlib import Path

import orjson


class StopFlag:
    """Set by SIGTERM/SIGINT (main thread only) or by stop()."""

    def __init__(self, install: bool = True):
        self._ev = threading.Event()
        if install and threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                signal.signal(sig, lambda *_: self._ev.set())

    def stop(self) -> None:
        self._ev.set()

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


def write_json_atomic(path: Path, obj) -> None:
    """Write, fsync, rename, fsync the directory: the file is either the old or the new state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(orjson.dumps(obj))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def read_json(path: Path):
    try:
        return orjson.loads(path.read_bytes())
    except FileNotFoundError:
        return None


def logical_topic(full_name: str, prefix: str) -> str:
    return full_name[len(prefix):] if full_name.startswith(prefix) else full_name


def message_ts_ms(msg) -> int | None:
    kind, ts = msg.timestamp()
    return ts if kind != 0 and ts >= 0 else None  # 0 = TIMESTAMP_NOT_AVAILABLE
