"""Checks made before a Beam job is submitted, so a broken worker environment fails the run with
one sentence instead of a traceback or an endless wait.

The portable path (what Dataflow's Runner v2 does: SDK-harness worker processes that the runner
asks for) runs here as `--runner=PortableRunner --job_endpoint=embed --environment_type=EXTERNAL
--environment_config=HOST:PORT` against `python -m apache_beam.runners.worker.worker_pool_main
--service_port=PORT`. Measured with Beam 2.59 when that pool is not right:

- nothing listens at HOST:PORT: the job fails within seconds, as a 40-line gRPC traceback;
- something listens there but does not speak gRPC: it fails after ~20 s (gRPC's handshake
  timeout), again as a traceback;
- the pool runs but its workers cannot start (the pool starts each worker as `python -c ...`
  with the `python` first on *its* PATH; if that one lacks apache_beam or exits at once): the
  job waits for the worker forever. The driver prints nothing more, Ctrl-C does not end it (the
  embedded job service's thread is not a daemon), and only the pool's own log shows the
  worker's error. Beam has no option that bounds this wait (`--job_server_timeout` covers job
  service calls, not the run; PortableRunner's `wait_until_finish(duration)` ignores its
  argument).

`check_beam_environment` turns all three into `WorkerPoolUnavailable`: it asks the pool for one
worker pointed at a throwaway control endpoint of ours and waits, bounded, for that worker to
connect back.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import threading
import time
import uuid

DEFAULT_WORKER_START_TIMEOUT = 60.0  # seconds; a process worker connects in ~3 s here
ANSWER_TIMEOUT = 10.0  # seconds for the pool to accept a connection and answer one request


class WorkerPoolUnavailable(RuntimeError):
    """The Beam worker pool of an EXTERNAL environment cannot give the job a worker."""


def external_worker_pool(options) -> tuple[str, dict[str, str]] | None:
    """(address, params) of the EXTERNAL worker pool that this process's job will ask for
    workers, or None when there is none to check from here.

    Only `PortableRunner` with `--job_endpoint=embed` runs the job service in this process;
    with any other job server (Flink, Spark, a remote one) the pool's address is resolved on
    that server's side, so checking it from here would prove nothing.
    """
    from apache_beam.options.pipeline_options import PortableOptions, StandardOptions

    runner = options.view_as(StandardOptions).runner
    portable = options.view_as(PortableOptions)
    if not isinstance(runner, str) or runner.rsplit(".", 1)[-1] != "PortableRunner":
        return None
    if portable.job_endpoint != "embed" or (portable.environment_type or "").upper() != (
        "EXTERNAL"
    ):
        return None
    config = (portable.environment_config or "").strip()
    if config.startswith("{"):  # Beam's JSON form: {"url": ..., "params": {...}}
        parsed = json.loads(config)
        return parsed.get("url") or "", dict(parsed.get("params") or {})
    if config:
        return config, {}
    return portable.lookup_environment_option("external_service_address") or "", {}


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _host_port(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise WorkerPoolUnavailable(
            f"the Beam worker pool address {address!r} is not HOST:PORT "
            "(set --environment_config=HOST:PORT)"
        )
    return host.strip("[]"), int(port)


def check_worker_pool(
    address: str,
    params: dict[str, str] | None = None,
    timeout: float = DEFAULT_WORKER_START_TIMEOUT,
    answer_timeout: float = ANSWER_TIMEOUT,
) -> float:
    """Asks the pool at `address` for one worker and waits up to `timeout` seconds for it to
    connect back; returns the seconds that took. Raises WorkerPoolUnavailable otherwise."""
    import grpc
    from apache_beam.portability.api import (
        beam_fn_api_pb2,
        beam_fn_api_pb2_grpc,
        endpoints_pb2,
    )

    host, port = _host_port(address)
    try:
        socket.create_connection((host, port), timeout=answer_timeout).close()
    except OSError as err:
        raise WorkerPoolUnavailable(
            f"the Beam worker pool at {address} does not answer: {err.strerror or err} (start "
            f"one with `python -m apache_beam.runners.worker.worker_pool_main "
            f"--service_port={port}`)"
        ) from None

    worker_id = f"image-augment-check-{uuid.uuid4().hex[:12]}"
    connected = threading.Event()

    class _Control(beam_fn_api_pb2_grpc.BeamFnControlServicer):
        """Notes that our worker connected, then ends its control stream (so it exits)."""

        def Control(self, responses, context):  # noqa: N802 (the gRPC method's name)
            if dict(context.invocation_metadata()).get("worker_id") == worker_id:
                connected.set()
            return iter(())

    from concurrent import futures

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    beam_fn_api_pb2_grpc.add_BeamFnControlServicer_to_server(_Control(), server)
    # Where the worker is told to connect: a loopback pool gets a loopback endpoint; another
    # host gets what Beam itself would advertise (this host's name, all interfaces).
    if _is_loopback(host):
        control_url = f"127.0.0.1:{server.add_insecure_port('127.0.0.1:0')}"
    else:
        control_url = f"{socket.getfqdn()}:{server.add_insecure_port('[::]:0')}"
    server.start()
    channel = grpc.insecure_channel(address)
    stub = beam_fn_api_pb2_grpc.BeamFnExternalWorkerPoolStub(channel)
    endpoint = endpoints_pb2.ApiServiceDescriptor(url=control_url)
    started = time.monotonic()
    asked = False
    try:
        try:
            response = stub.StartWorker(
                beam_fn_api_pb2.StartWorkerRequest(
                    worker_id=worker_id,
                    control_endpoint=endpoint,
                    logging_endpoint=endpoint,
                    artifact_endpoint=endpoint,
                    provision_endpoint=endpoint,
                    params=params or {},
                ),
                timeout=answer_timeout,
            )
        except grpc.RpcError as err:
            raise WorkerPoolUnavailable(
                f"the Beam worker pool at {address} does not answer: it accepts connections "
                f"but is not a worker pool ({err.code().name}: {err.details()})"
            ) from None
        asked = True
        if response.error:
            reason = response.error.strip().splitlines()[-1]
            raise WorkerPoolUnavailable(
                f"the Beam worker pool at {address} cannot start a worker: {reason}"
            )
        if not connected.wait(timeout):
            raise WorkerPoolUnavailable(
                f"the Beam worker pool at {address} started a worker that did not connect back "
                f"within {timeout:g} s: the pool starts workers with the `python` first on its "
                "PATH, which must import apache_beam (the pool's own log shows the worker's "
                "error)"
            )
        return time.monotonic() - started
    finally:
        if asked:  # the pool reaps the process (or kills it, had it hung)
            try:
                stub.StopWorker(
                    beam_fn_api_pb2.StopWorkerRequest(worker_id=worker_id),
                    timeout=answer_timeout + 10,  # the pool waits up to 10 s for a SIGTERM
                )
            except grpc.RpcError:
                pass
        channel.close()
        server.stop(0)


def check_beam_environment(
    options, worker_start_timeout: float | None = DEFAULT_WORKER_START_TIMEOUT
) -> float | None:
    """Checks the EXTERNAL worker pool these PipelineOptions point at, when the job runs from
    this process (see `external_worker_pool`); None or 0 skips the check. Returns the seconds
    a worker took to start, or None when nothing was checked."""
    if not worker_start_timeout:
        return None
    pool = external_worker_pool(options)
    if pool is None:
        return None
    address, params = pool
    if not address:
        raise WorkerPoolUnavailable(
            "--environment_type=EXTERNAL needs the worker pool's address: "
            "--environment_config=HOST:PORT"
        )
    return check_worker_pool(address, params, timeout=worker_start_timeout)


def check_beam_args(beam_args: list[str]) -> None:
    """Raises ValueError with one line when `beam_args` (what follows `--`) holds a flag no
    Beam option knows, or a value an option refuses.

    Beam's own PipelineOptions only logs "Discarding unparseable args" for the first (the run
    then goes on without them) and prints its whole usage for the second; this parses them with
    the same parser and the same options, but fails with one sentence."""
    from apache_beam.options import pipeline_options

    beam_parser = getattr(pipeline_options, "_BeamArgumentParser", None)
    if beam_parser is None:  # a Beam without it: its own parsing is all there is
        return

    class _Parser(beam_parser):
        def error(self, message):
            raise ValueError(f"Beam option after `--`: {message}")

    parser = _Parser()
    # As PipelineOptions.get_all_options does: the last class of each name.
    option_classes = {str(cls): cls for cls in pipeline_options.PipelineOptions.__subclasses__()}
    for cls in option_classes.values():
        cls._add_argparse_args(parser)
    _, unknown = parser.parse_known_args(beam_args)
    if unknown:
        raise ValueError(
            f"unknown Beam option(s) after `--`: {' '.join(unknown)} (Beam would ignore them)"
        )
