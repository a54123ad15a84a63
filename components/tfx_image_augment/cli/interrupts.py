"""Ctrl-C and SIGTERM for the `image-augment` CLI: the run ends within seconds, with one line,
exit 130 (Ctrl-C) or 143 (SIGTERM, what `timeout`, `kill` and container stops send).

Without this (Beam 2.59, DirectRunner), Ctrl-C printed a traceback from the launcher and one
from every worker process; with multi-processing, a SIGINT while Beam stopped its workers could
leave the launcher waiting for a worker forever; and a KeyboardInterrupt that landed in one of
Beam's threads, or in code that caught it, could be lost, so the run went on and exited 0.

Without it, SIGTERM killed the launcher with Python's default action: a traceback, exit 143, the
staging folder left behind, and Beam's worker processes orphaned for seconds. Both signals are
handled alike below (SIGINT and SIGTERM: "the signal").

How `InterruptGuard` works (Linux): while it is active, the signal is ignored and blocked in
every thread of the process. Ignored, so Beam's worker processes, started after it through
/bin/sh (which keeps an ignored signal ignored), never see it and print nothing (Beam ends them
by closing their channel or with SIGKILL, never with SIGTERM); blocked, so Linux keeps the
signal pending for the process instead of discarding it, and the guard's watcher thread takes it
with sigtimedwait. The watcher then records the interrupt (so it cannot be lost), silences
stderr (dying workers make Beam's threads print), kills this process's descendants (the
workers), and raises KeyboardInterrupt in the main thread by a signal to that thread alone,
which also wakes it from a blocking wait. The main thread cleans up and calls
`exit_interrupted`, which exits at once (Beam's threads may still wait for the killed workers,
so a normal interpreter exit could hang). Should the main thread not get there within `deadline`
seconds (stuck in C code), the watcher runs the registered cleanups and exits.

The guard must be entered before any other thread starts (a thread that does not block SIGINT
would take the signal and, SIGINT being ignored, drop it): the CLI enters it before TensorFlow
and Beam load. Elsewhere (another OS, or not the main thread) the guard does nothing but
remember cleanups: Ctrl-C is Python's plain KeyboardInterrupt, SIGTERM its default action.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import signal
import sys
import threading
from collections.abc import Callable

EXIT_INTERRUPTED = 130  # 128 + SIGINT, what shells report for a run ended by Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM
SIGNALS = (signal.SIGINT, signal.SIGTERM)
_POKE = signal.SIGUSR2  # sent to the main thread alone, to raise KeyboardInterrupt there


def descendants(pid: int | None = None) -> list[int]:
    """The processes below `pid` (default: this one), zombies aside, from /proc (Linux)."""
    root = os.getpid() if pid is None else pid
    parents: dict[int, list[int]] = {}
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[0] != "Z":
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, queue = [], [root]
    while queue:
        for child in parents.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_descendants() -> None:
    for pid in descendants():
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)


class InterruptGuard:
    """Turns Ctrl-C into one line and exit 130, and SIGTERM into one line and exit 143, however
    the run is busy (see the module). `message` is worded for Ctrl-C ("interrupted"); after a
    SIGTERM its first "interrupted" reads "terminated (SIGTERM)"."""

    def __init__(self, deadline: float = 5.0):
        self.deadline = deadline
        self.interrupted = False
        self.signum: int | None = None  # the signal that ended the run
        # The line printed on an interrupt, or a function that tells it then.
        self.message: str | Callable[[], str] = "image-augment: interrupted"
        self._cleanups: list[Callable[[], None]] = []
        self._cleanup_lock = threading.Lock()
        self._stop = threading.Event()
        self._stderr: int | None = None  # the real stderr, once stderr is silenced
        self._active = False

    def add_cleanup(self, cleanup: Callable[[], None]) -> None:
        """`cleanup` runs once if the run is interrupted (and must be idempotent)."""
        self._cleanups.append(cleanup)

    def _run_cleanups(self) -> None:
        with self._cleanup_lock:
            while self._cleanups:
                with contextlib.suppress(Exception):
                    self._cleanups.pop()()

    def __enter__(self) -> InterruptGuard:
        usable = sys.platform == "linux" and threading.current_thread() is threading.main_thread()
        if not usable:
            return self
        self._active = True
        self._main = threading.main_thread().ident
        self._previous_mask = signal.pthread_sigmask(signal.SIG_BLOCK, set(SIGNALS))
        self._previous_handlers = {s: signal.signal(s, signal.SIG_IGN) for s in SIGNALS}
        self._previous_poke = signal.signal(_POKE, self._raise_in_main)
        self._watcher = threading.Thread(target=self._watch, name="interrupt-watcher", daemon=True)
        self._watcher.start()
        return self

    def __exit__(self, *exc) -> None:
        if not self._active:
            return
        self._stop.set()
        self._watcher.join()
        signal.signal(_POKE, self._previous_poke)
        for signum, handler in self._previous_handlers.items():
            signal.signal(signum, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, self._previous_mask)

    def _raise_in_main(self, signum, frame) -> None:
        raise KeyboardInterrupt

    def _watch(self) -> None:
        while not self._stop.is_set():
            received = signal.sigtimedwait(set(SIGNALS), 0.2)
            if received is None:
                continue
            if self.interrupted:  # a second signal: the first is being handled
                continue
            self.signum = received.si_signo
            self.interrupted = True
            self._silence_stderr()
            kill_descendants()
            signal.pthread_kill(self._main, _POKE)
            if not self._stop.wait(self.deadline):
                self._run_cleanups()  # the main thread did not get there: exit from here
                self._exit()

    def _silence_stderr(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
            self._stderr = os.dup(2)
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, 2)
            os.close(devnull)

    def exit_interrupted(self):
        """Kills the run's worker processes, runs the cleanups, prints `message` (one line) and
        ends the process with exit 130 (143 after SIGTERM). Called by the main thread after a
        KeyboardInterrupt."""
        self.interrupted = True
        kill_descendants()
        self._run_cleanups()
        self._exit()

    def _exit(self) -> None:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
        message = self.message() if callable(self.message) else self.message
        terminated = self.signum == signal.SIGTERM
        if terminated:
            message = message.replace("interrupted", "terminated (SIGTERM)", 1)
        line = (message + "\n").encode()
        with contextlib.suppress(OSError):
            os.write(self._stderr if self._stderr is not None else 2, line)
        os._exit(EXIT_TERMINATED if terminated else EXIT_INTERRUPTED)
