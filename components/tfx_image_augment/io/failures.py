"""The OS error behind a failed run, however Beam wrapped it: a full disk is one line.

Beam (2.59) reports an OSError raised while writing (a full disk, measured on a 1 MB tmpfs) as
a RuntimeError whose text is the worker's `OSError: [Errno 28] No space left on device [while
running '...WriteBundles']`, without the file name and without the OSError in its
`__cause__`/`__context__` chain (the error crossed the Fn API as text): the CLI printed 165
lines of traceback. `os_error_in` finds the OSError in the chain, or else reads it back from the
text; `disk_full` says where the disk is full, naming the output folder rather than its staging
folder (`note_writing`). `quiet_disk_full_logs` and `quiet_worker_disk_full` keep Beam from also
logging and printing it as tracebacks, in the launcher and in worker processes.

Needs nothing but the standard library.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import sys

DISK_FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)
_ERRNO_TEXT = re.compile(r"\[Errno (\d+)\] ([^\[\]\n:']+)(?::\s*'([^'\n]+)')?")
_NO_SPACE = "No space left on device"
# staging folder -> the output folder it is published as (the CLI's StagedOutput)
_writing: dict[str, str] = {}


class DiskFull(OSError):
    """A write failed because the disk (or the quota) is full; `filename` is where."""

    def __init__(self, path: str | None):
        super().__init__(errno.ENOSPC, os.strerror(errno.ENOSPC), path)

    def __str__(self) -> str:
        return f"disk full writing {self.filename or 'the output'}"


def note_writing(staging: str, output: str) -> None:
    """Remembers that files under `staging` are published as `output`, so a full disk while
    writing them is reported as writing `output`."""
    _writing[staging] = output


def _chain(err: BaseException) -> list[BaseException]:
    """`err` and the exceptions behind it (`__cause__`, `__context__`), each once."""
    found: list[BaseException] = []
    queue: list[BaseException | None] = [err]
    while queue:
        current = queue.pop(0)
        if current is None or any(current is seen for seen in found):
            continue
        found.append(current)
        queue.extend([current.__cause__, current.__context__])
    return found


def os_error_in(err: BaseException) -> OSError | None:
    """The OSError (with an errno) behind `err`: one in its chain, else one read back from the
    text of a wrapper ("[Errno 28] No space left on device: 'path'", or TensorFlow's "No space
    left on device"); None when there is none."""
    chain = _chain(err)
    for current in chain:
        if isinstance(current, OSError) and current.errno:
            return current
    for current in chain:
        text = getattr(current, "message", None) or str(current)
        match = _ERRNO_TEXT.search(text)
        if match:
            code, reason, path = int(match[1]), match[2].strip(), match[3]
            error = OSError(code, reason)
            error.filename = path
            return error
        if _NO_SPACE in text:
            return OSError(errno.ENOSPC, _NO_SPACE)
    return None


def disk_full(err: BaseException) -> str | None:
    """Where the disk filled up, when `err` (or what it wraps) is a full disk: the file it
    names, or the output folder being written (for a file in a staging folder, or none named);
    None when `err` is something else."""
    error = os_error_in(err)
    if error is None or error.errno not in DISK_FULL_ERRNOS:
        return None
    path = error.filename if isinstance(error.filename, str) else None
    for staging, output in reversed(list(_writing.items())):
        if path is None or path == staging or path.startswith(staging.rstrip("/") + "/"):
            return output
    return path or "the output"


class _DiskFullLogFilter(logging.Filter):
    """Drops Beam's log records of a full disk (the failing DoFn's traceback, and each worker's
    relayed copy of it): the run ends with one line saying where the disk is full."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if error is not None:
            found = os_error_in(error)
            if found is not None and found.errno in DISK_FULL_ERRNOS:
                return False
        text = record.getMessage()
        return not any(mark in text for mark in _DISK_FULL_TEXT)


_DISK_FULL_TEXT = tuple(f"[Errno {code}]" for code in DISK_FULL_ERRNOS) + (_NO_SPACE,)
# Where Beam 2.59 logs a DoFn's failure: in-process, and relayed from worker processes.
BEAM_FAILURE_LOGGERS = (
    "apache_beam.runners.common",
    "apache_beam.runners.portability.local_job_service",
    "apache_beam.runners.worker.sdk_worker",
)


def quiet_disk_full_logs() -> None:
    """Keeps Beam from logging a full disk as tracebacks (entry points call this, through
    environment.configure); idempotent."""
    for name in BEAM_FAILURE_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _DiskFullLogFilter) for f in logger.filters):
            logger.addFilter(_DiskFullLogFilter())


# Set by Beam in the environment of the worker processes it starts (multi-processing, pools).
_WORKER_ENV = "CONTROL_API_SERVICE_DESCRIPTOR"


class _QuietStderr:
    """sys.stderr, but writes that report a full disk are dropped."""

    def __init__(self, stream):
        self._stream = stream
        self._dropped = False

    def write(self, text: str) -> int:
        # print() writes its text, then the line end: both go.
        dropped = any(mark in text for mark in _DISK_FULL_TEXT) or (self._dropped and text == "\n")
        self._dropped = dropped
        return len(text) if dropped else self._stream.write(text)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


def quiet_worker_shutdown() -> None:
    """In a Beam worker process (not the launcher): when the worker's interpreter ends, the
    objects TensorFlow's traced functions leave for the garbage collector fail in `__del__`
    (their modules are already torn down) and Python prints each as "Exception ignored ...
    Traceback" on stderr, which is the CLI's. Those, and only while the interpreter finalizes,
    are dropped. Idempotent."""
    if _WORKER_ENV not in os.environ or getattr(sys.unraisablehook, "_ours", False):
        return
    previous = sys.unraisablehook

    def hook(unraisable):
        if not sys.is_finalizing():
            previous(unraisable)

    hook._ours = True
    sys.unraisablehook = hook


def quiet_worker_disk_full() -> None:
    """In a Beam worker process (not the launcher): Beam's worker prints a failed bundle's
    traceback straight to stderr, which is the CLI's; a full disk's is dropped there (the
    launcher reports it in one line). Called by our DoFns' setup; idempotent."""
    if _WORKER_ENV not in os.environ:
        return
    quiet_disk_full_logs()
    if not isinstance(sys.stderr, _QuietStderr):
        sys.stderr = _QuietStderr(sys.stderr)
