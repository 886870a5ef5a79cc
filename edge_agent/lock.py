"""A lock on a data directory, so that one process at a time writes into it.

Two edge agents on the same buffer would hand out the same seqs and delete
each other's batches, and two ``streamflow up`` on the same folder would
share one SQLite store and status file: readings get lost either way.
:class:`DirLock` takes an exclusive ``flock`` on ``<dir>/.lock`` and writes
the holder's pid into the file, for the message the next one gets.

The kernel releases a ``flock`` when its file is closed, which includes the
process dying by any means (``kill -9``, a power cut ends it all anyway), so
a lock is never left stale and nothing has to clean it up. The pid in the
file is only information: it may name a process that has since exited, and
the lock is then free. ``flock`` locks belong to the open file, so a second
:class:`DirLock` on the same folder in the same process is refused too.

Exceptions: :class:`DataDirInUse` is a
:class:`~edge_agent.errors.BufferOpenError` (the buffer cannot be opened
because another process holds it).
"""

from __future__ import annotations

import fcntl
import logging
import os
from pathlib import Path
from types import TracebackType

from edge_agent.errors import BufferOpenError

_LOGGER = logging.getLogger(__name__)

#: The name of the lock file inside the locked folder.
LOCK_FILE_NAME = ".lock"


class DataDirInUse(BufferOpenError):
    """Another process holds the lock on a data directory.

    Attributes:
        path: the directory.
        pid: the holder's pid as it wrote it, or None if it wrote none yet.
    """

    def __init__(self, path: Path, pid: int | None) -> None:
        self.path = path
        self.pid = pid
        holder = f"pid {pid}" if pid is not None else "another process"
        super().__init__(f"data dir {path} is in use by {holder}")


class DirLock:
    """An exclusive lock on a directory, held from :meth:`acquire` to release.

    Args:
        path: the directory; it is created (with its parents) if missing.

    Use it as a context manager, or call :meth:`acquire` and :meth:`release`.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def lock_file(self) -> Path:
        """The file the lock is taken on."""
        return self.path / LOCK_FILE_NAME

    @property
    def held(self) -> bool:
        """Whether this object holds the lock."""
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock without waiting and write this process's pid into it.

        Raises:
            RuntimeError: this object already holds the lock.
            DataDirInUse: another process (or another DirLock) holds it.
            BufferOpenError: the directory or the lock file cannot be created.
        """
        if self._fd is not None:
            raise RuntimeError(f"lock on {self.path} already held")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise BufferOpenError(
                f"cannot create the lock file {str(self.lock_file)!r}: {exc.strerror}"
            ) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = _read_pid(fd)
            os.close(fd)
            raise DataDirInUse(self.path, pid) from None
        except OSError as exc:
            os.close(fd)
            raise BufferOpenError(
                f"cannot lock {str(self.lock_file)!r}: {exc.strerror}"
            ) from exc
        # Only the holder writes, so the pid read by a refused process is whole
        # unless it reads between this truncate and write (then it is None).
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        _LOGGER.debug("data dir locked path=%s pid=%d", self.path, os.getpid())

    def release(self) -> None:
        """Give the lock up (closing the file releases it); a no-op if not held."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        # The pid is left in the file: truncating it after the unlock could
        # erase the next holder's pid, and a stale pid means nothing.
        os.close(fd)
        _LOGGER.debug("data dir unlocked path=%s", self.path)

    def __enter__(self) -> DirLock:
        self.acquire()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()


def _read_pid(fd: int) -> int | None:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None
