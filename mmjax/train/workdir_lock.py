"""One training run per workdir: an advisory lock (flock) held for the whole of a run.

Two runs writing one workdir would interleave their checkpoints and metrics.jsonl records, so the second
is refused. The kernel drops the lock when its process dies, however it dies, so a killed run's lock file
never blocks the resume. The file names the holder (pid, host, start, command) for the error message.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import socket
import sys
import time
from typing import Iterator

from mmjax.errors import MmjaxError

logger = logging.getLogger(__name__)
LOCK_FILE = ".mmjax.lock"
UNSUPPORTED = (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS)  # file systems without flock (some NFS mounts)


class WorkdirBusyError(MmjaxError):
    """Another process is training in the workdir."""


def holder(path: str) -> str:
    """'pid 123 on host, since 2026-12-06 13:00:00: python -m mmjax.main ...' from a lock file, or '?'."""
    try:
        with open(path) as f:
            info = json.load(f)
        return f"pid {info['pid']} on {info['host']}, since {info['started']}: {info['command']}"
    except (OSError, ValueError, KeyError):
        return "?"


@contextlib.contextmanager
def workdir_lock(workdir: str) -> Iterator[None]:
    """Holds the workdir's lock while the block runs; WorkdirBusyError when another process holds it."""
    os.makedirs(workdir, exist_ok=True)
    path = os.path.join(workdir, LOCK_FILE)
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise WorkdirBusyError(f"{workdir}: another run is training in this workdir ({holder(path)}); wait "
                                   "for it to end, or give another --workdir") from None
        except OSError as error:
            if error.errno not in UNSUPPORTED:
                raise
            logger.warning("%s: this file system cannot lock files (%s); nothing stops a second run on this "
                           "workdir", workdir, os.strerror(error.errno))
            yield
            return
        handle.seek(0)
        handle.truncate()
        json.dump({"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                   "started": time.strftime("%Y-%m-%d %H:%M:%S")}, handle)
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
