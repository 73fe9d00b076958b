"""The appliance's data directory: private modes (0700 dir, 0600 files) and the lock a serving process holds."""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import stat
from pathlib import Path

DIR_MODE = 0o700
FILE_MODE = 0o600
LOCK_NAME = "qms-edge.lock"
STAGING_PREFIX = ".qms-"  # files and folders being written or staged: backups leave them out
log = logging.getLogger("qms.datadir")


class DataDirBusy(Exception):
    """Another process holds the data directory's lock (a running appliance, or a restore in progress)."""

    def __init__(self, data_dir: Path, pid: int | None, purpose: str) -> None:
        self.data_dir = data_dir
        self.pid = pid
        self.purpose = purpose
        super().__init__(f"{data_dir} is in use by pid {pid if pid is not None else '?'} ({purpose or 'unknown'})")


def ensure_private(data_dir: Path) -> None:
    """Create the data dir 0700 if missing; tighten an existing one (and its files) left open by older versions."""
    data_dir.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
    _tighten(data_dir, DIR_MODE)
    with os.scandir(data_dir) as entries:
        for entry in entries:
            if entry.is_file(follow_symlinks=False):
                _tighten(Path(entry.path), FILE_MODE)


def _tighten(path: Path, mode: int) -> None:
    """Drop group/other bits; a path we do not own (a technician as another user) is only warned about."""
    try:
        current = stat.S_IMODE(path.lstat().st_mode)
        if current & 0o077:
            path.chmod(current & mode)
    except FileNotFoundError:
        return
    except PermissionError:
        log.warning("cannot make %s private: not its owner", path)


def create_private(path: Path) -> None:
    """Create an empty file with mode 0600 unless it exists (SQLite gives -wal and -shm the database's mode)."""
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))


def write_private(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace `path` whole or not at all: a new 0600 file (O_EXCL, so an older file's looser mode is never kept)
    renamed into place; `durable` syncs it to disk first."""
    tmp = path.with_name(f"{STAGING_PREFIX}{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            if durable:
                out.flush()
                os.fsync(out.fileno())
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


class DataDirLock:
    """An exclusive `flock` on `<data-dir>/qms-edge.lock`, held for a process's lifetime (the kernel drops it when
    the process dies, even by SIGKILL or a power cut, so a stale file never blocks anything)."""

    def __init__(self, data_dir: Path, fd: int) -> None:
        self.data_dir = data_dir
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, data_dir: Path, purpose: str) -> DataDirLock:
        """Take the lock or raise DataDirBusy naming the holder's pid; records our pid and purpose in the file."""
        ensure_private(data_dir)
        fd = os.open(data_dir / LOCK_NAME, os.O_RDWR | os.O_CREAT, FILE_MODE)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid, held_for = _holder(fd)
            os.close(fd)
            raise DataDirBusy(data_dir, pid, held_for) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()} {purpose}\n".encode(), 0)
        return cls(data_dir, fd)

    def release(self) -> None:
        """Give the lock up (closing the descriptor drops it)."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> DataDirLock:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


def _holder(fd: int) -> tuple[int | None, str]:
    """What the lock's holder wrote: its pid and why it holds the lock."""
    text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    pid, _, purpose = text.partition(" ")
    return (int(pid) if pid.isdigit() else None), purpose
