"""State files written so that a crash leaves either the old or the new state, never a torn one."""
from __future__ import annotations

import contextlib
import os
import secrets
import stat
import tempfile
from pathlib import Path
from typing import BinaryIO, Iterator

import orjson


def write_json_atomic(path: Path, obj) -> None:
    """Write, fsync, rename, fsync the directory: the file is either the old or the new state."""
    path.parent.mkdir(parents=True, exist_ok=True)
    write_bytes_atomic(path, orjson.dumps(obj))


def write_bytes_atomic(path: Path, data: bytes, shared: bool = False) -> None:
    """As write_json_atomic, for bytes. The file is 0600 (state), or with `shared` as open() makes
    it (0666 less the umask: an evidence bundle others read)."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    try:
        with os.fdopen(fd, "wb") as f:
            if shared:
                umask = os.umask(0)
                os.umask(umask)
                os.fchmod(f.fileno(), 0o666 & ~umask)
            f.write(data)
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


@contextlib.contextmanager
def replaced_on_success(path: Path) -> Iterator[BinaryIO]:
    """A file streamed to beside `path` that becomes `path` only if the block ends without an
    error: a failed or interrupted command leaves the old file (or none), never a partial one.
    A symlink is followed; a path that exists and is not a regular file (/dev/null, a FIFO) is
    written directly; a replaced file keeps its permissions."""
    path = Path(os.path.realpath(path))
    try:
        st = path.stat()
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        with open(path, "wb") as f:
            yield f
        return
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    # 0o666 less the umask, as open() makes a new file; an existing file's own mode otherwise
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666 if st is None else stat.S_IMODE(st.st_mode))
    try:
        with os.fdopen(fd, "wb") as f:
            if st is not None:
                os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode))  # the umask must not narrow it
            yield f
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
