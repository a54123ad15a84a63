"""A Beam worker pool on a loopback port: the portable path (Dataflow's Runner v2 way of running
a job in SDK-harness worker processes) on this machine.

    with worker_pool(log_dir) as pool:
        main([..., "--", *pool.beam_args])

The pool is `python -m apache_beam.runners.worker.worker_pool_main` run by this interpreter, in
its own process group; it starts each worker as `python -c ...` with the `python` first on its
PATH. `worker_pool` puts this interpreter's bin directory first on that PATH and the folders
this process imports tfx_image_augment and the tests' helpers from first on PYTHONPATH, so the
workers run the code under test (not an installed copy). `python_dir` replaces the bin
directory, e.g. with a folder whose `python` cannot start a worker. On exit the whole process
group (pool and workers) is stopped, whatever happened inside the block.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import tfx_image_augment

from tests.conftest import PROJECT_ROOT

POOL_START_TIMEOUT = 90.0  # seconds; the pool imports Beam and listens within ~5 s here


@dataclasses.dataclass(frozen=True)
class Pool:
    address: str
    process: subprocess.Popen
    log: pathlib.Path

    @property
    def beam_args(self) -> list[str]:
        return [
            "--runner=PortableRunner",
            "--job_endpoint=embed",
            "--environment_type=EXTERNAL",
            f"--environment_config={self.address}",
        ]

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM to the pool's process group; SIGKILL to whatever of it is left after 10 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=10)
    with contextlib.suppress(ProcessLookupError):  # a worker (or the pool) that held on
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=10)


def live_children(pid: int) -> list[int]:
    """The processes (zombies aside) whose parent is `pid`, from /proc (Linux)."""
    children = []
    for stat in pathlib.Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and fields[0] != "Z":
            children.append(int(stat.parent.name))
    return children


@contextlib.contextmanager
def worker_pool(log_dir: pathlib.Path, python_dir: str | None = None):
    """Starts a worker pool on a free loopback port; yields a Pool; always stops it."""
    log_dir.mkdir(parents=True, exist_ok=True)
    port = free_loopback_port()
    log = log_dir / f"worker-pool-{port}.log"
    components_dir = str(pathlib.Path(tfx_image_augment.__file__).resolve().parent.parent)
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join(
        [python_dir or os.path.dirname(sys.executable), env.get("PATH", "")]
    )
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (components_dir, str(PROJECT_ROOT), env.get("PYTHONPATH")) if p
    )
    with open(log, "wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "apache_beam.runners.worker.worker_pool_main",
                f"--service_port={port}",
            ],
            env=env,
            cwd=log_dir,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: pool and workers stop together
        )
    pool = Pool(f"localhost:{port}", process, log)
    try:
        deadline = time.monotonic() + POOL_START_TIMEOUT
        while not _accepts(port):
            if process.poll() is not None:
                raise RuntimeError(
                    f"the Beam worker pool exited with code {process.returncode} before "
                    f"listening on port {port}; its output:\n{pool.log_text()[-4000:]}"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the Beam worker pool did not listen on port {port} within "
                    f"{POOL_START_TIMEOUT:g} s; its output:\n{pool.log_text()[-4000:]}"
                )
            time.sleep(0.2)
        yield pool
    finally:
        _stop(process)
