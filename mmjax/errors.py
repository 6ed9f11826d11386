"""User-facing errors: the CLI prints these in one line and exits with status 2."""

from __future__ import annotations

import errno
import os
import re


class MmjaxError(ValueError):
    """Base class for errors caused by the user's input, not by a bug."""


class DataError(MmjaxError):
    """A dataset file or array does not meet the expected format."""


class ConfigError(MmjaxError):
    """A config value is missing or outside its allowed range."""


def check_fields(checks, prefix: str = "") -> None:
    """ConfigError for the first failed (field, value, ok, expectation) check: '<prefix><field>: expected ...'."""
    for name, value, ok, expected in checks:
        if not ok:
            raise ConfigError(f"{prefix}{name}: expected {expected}, got {value!r}")


# A workdir the user pointed at that cannot be written: bad input (exit 2). Other file-system failures
# (a full disk, an I/O error) exit 1; the run resumes from its checkpoints once they are cleared.
BAD_PATH_ERRNOS = (errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOENT, errno.ENOTDIR, errno.EISDIR)
_WRAPPED_ERRNO = re.compile(r"(?:\[Errno |os_error_code=')(\d+)")  # how Python and tensorstore spell it
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


def describe_os_error(error: BaseException, fallback_path: str) -> tuple[str, int] | None:
    """(one-line message naming the path, exit status) for a file-system failure, or None for any other error.

    Orbax and tensorstore re-raise an OSError from their worker threads inside other exceptions (or name
    its errno only in their message), so the whole cause/context chain is searched; `fallback_path` is
    named when no link of it names a path.
    """
    seen: set[int] = set()
    found: list[tuple[int, str | None]] = []  # (errno, path) of each link that tells one
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in errno.errorcode:
            found.append((error.errno, error.filename and str(error.filename)))
        else:
            code = _WRAPPED_ERRNO.search(str(error))
            if code and int(code.group(1)) in errno.errorcode:
                paths = _QUOTED_PATH.findall(str(error))
                found.append((int(code.group(1)), paths[-1] if paths else None))
        error = error.__cause__ or error.__context__
    if not found:
        return None
    number, path = next(((n, p) for n, p in found if p), found[0])
    advice = "; free space and run the same command again: it resumes from the last checkpoint" \
        if number == errno.ENOSPC else ""
    return (f"{path or fallback_path}: {os.strerror(number)} (errno {number}){advice}",
            2 if number in BAD_PATH_ERRNOS else 1)
