"""Runs that a test stops on purpose: the CLI (or a script) in a session of its own, stopped by a
signal at a named point (tfx_image_augment.io.killpoints), and what it left behind."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time

import tensorflow as tf
from tfx_image_augment.io.killpoints import KILLPOINT_ENV

from tests.conftest import PROJECT_ROOT

RUN_TIMEOUT = 240  # seconds for one run (a normal one takes 5-30 s here, on a busy machine)
# Our own progress lines (cli's and the DoFns' loggers); anything else on stderr is noise.
PROGRESS_LINE = re.compile(r"^\d\d:\d\d:\d\d image[-_]augment: ")


@dataclasses.dataclass
class Finished:
    returncode: int
    stdout: str
    stderr: str
    fired_at: float | None  # when the point sent its signal (time.time())
    ended_at: float
    left_alive: list[int]  # processes of the run's group still alive after it ended

    @property
    def other_stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if not PROGRESS_LINE.match(line)]


def live_group_members(group: int) -> list[int]:
    """The processes (zombies aside) of process group `group`, from /proc (Linux)."""
    members = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == group and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def run_stopped(
    command: list[str],
    killpoint: str | None,
    tmp_path: pathlib.Path,
    timeout=RUN_TIMEOUT,
    then_signal: int | None = None,
) -> Finished:
    """Runs `command` (argv after the interpreter) with the kill point `killpoint`
    ("<point>:<SIGNAL>", or None for a run left alone), in a session of its own; waits for it,
    then for its process group to empty (10 s at most), and kills whatever of it is left.

    With `then_signal`, once the point has fired, the test sends that signal to the run's
    process alone (as `timeout`, `kill` or a container stop do), not to its group."""
    fired_file = tmp_path / f"fired-{time.monotonic_ns()}"
    env = dict(os.environ)
    env.pop(KILLPOINT_ENV, None)
    if killpoint:
        env[KILLPOINT_ENV] = f"{killpoint}:{fired_file}"
    process = subprocess.Popen(
        [sys.executable, *command],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the kill point signals this group: the run and its workers
    )

    def signal_when_fired():
        deadline = time.monotonic() + timeout
        while not fired_file.exists() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, then_signal)

    if then_signal is not None:
        threading.Thread(target=signal_when_fired, daemon=True).start()
    try:
        stdout, stderr = process.communicate(timeout=timeout)
        ended_at = time.time()
        deadline = time.monotonic() + 10
        while live_group_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        left_alive = live_group_members(process.pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    fired = fired_file.read_text().split() if fired_file.exists() else []
    return Finished(
        process.returncode,
        stdout,
        stderr,
        float(fired[0]) if fired else None,
        ended_at,
        left_alive,
    )


def cli(*args: str) -> list[str]:
    return ["-m", "tfx_image_augment.cli", *args]


def snapshot(folder: pathlib.Path) -> dict[str, str]:
    """{relative path: SHA-256} of every file under `folder` (empty when it is absent)."""
    if not folder.exists():
        return {}
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def beam_temp_anywhere(root: pathlib.Path) -> list[str]:
    return [str(p) for p in root.rglob("beam-temp-*")]


def staging_beside(output: pathlib.Path) -> list[str]:
    return sorted(p.name for p in output.parent.glob(f".{output.name}.staging-*"))


def count_records(paths) -> int:
    return sum(
        1
        for path in paths
        for _ in tf.data.TFRecordDataset(str(path), "GZIP" if str(path).endswith(".gz") else "")
    )
