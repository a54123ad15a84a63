"""The path Dataflow takes: Runner v2 runs a job as a portable job in SDK-harness worker
processes. Here the same happens against a local Beam worker pool (PortableRunner, embedded job
service, EXTERNAL environment): the CLI and the TFX component must write exactly the records the
DirectRunner writes, and a pool that cannot give the job a worker must fail the run with one
sentence in bounded time (Beam itself waits forever for such a worker)."""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import time

import pytest
import tensorflow as tf
from tfx_image_augment import ImageAugment
from tfx_image_augment.cli.commands import main
from tfx_image_augment.offline.beam import runner_checks

from pipelines.data import image_example
from tests import images as real
from tests import pipeline_helpers as ph
from tests.conftest import PROJECT_ROOT
from tests.portable_pool import free_loopback_port, live_children, worker_pool

COPIES = 2
MIXUP = '{"version": 1, "ops": [{"op": "mixup", "alpha": 0.4}]}'


@pytest.fixture(scope="module")
def pool(tmp_path_factory):
    """One healthy worker pool for this module, stopped (with its workers) at teardown."""
    with worker_pool(tmp_path_factory.mktemp("worker-pool")) as pool:
        yield pool


def _digit_records(start: int, count: int) -> list[bytes]:
    """Real scikit-learn digits (32x32 PNG) as tf.Examples."""
    digits, labels = real.digits(32)
    return [
        image_example(tf.io.encode_png(digits[i]).numpy(), labels[i], f"d{i}")
        for i in range(start, start + count)
    ]


def _cli_input(tmp_path, count: int) -> str:
    records = _digit_records(0, count)
    ph.write_records(tmp_path / "in/part-0.tfrecord.gz", records[::2], gzip=True)
    ph.write_records(tmp_path / "in/part-1.tfrecord.gz", records[1::2], gzip=True)
    return str(tmp_path / "in/*.gz")


def _run_cli(pattern: str, out, beam_args: list[str], *extra: str) -> int:
    return main(
        [
            "run",
            "--input",
            pattern,
            "--output",
            str(out),
            "--policy",
            "no-flip",
            "--copies",
            str(COPIES),
            "--seed",
            "5",
            *extra,
            "--",
            *beam_args,
        ]
    )


def _workers_started(pool) -> list[str]:
    return re.findall(r'worker_id="([^"]+)"', pool.log_text())


@pytest.mark.e2e
@pytest.mark.timeout(240)
def test_cli_on_a_worker_pool_writes_the_direct_runners_records(pool, tmp_path):
    pattern = _cli_input(tmp_path, 48)
    started = time.monotonic()
    assert _run_cli(pattern, tmp_path / "direct", ["--direct_num_workers=1"]) == 0
    direct_seconds = time.monotonic() - started
    started = time.monotonic()
    assert _run_cli(pattern, tmp_path / "portable", pool.beam_args) == 0
    portable_seconds = time.monotonic() - started
    print(f"direct {direct_seconds:.1f} s, portable {portable_seconds:.1f} s")

    direct = sorted(ph.read_records(str(tmp_path / "direct/data_tfrecord-*")))
    portable = sorted(ph.read_records(str(tmp_path / "portable/data_tfrecord-*")))
    assert len(direct) == 48 * (1 + COPIES)
    assert portable == direct

    summaries = [
        json.loads((tmp_path / run / "augment_summary.json").read_text())
        for run in ("direct", "portable")
    ]
    for key in ("examples_in", "examples_out", "copies_written", "originals_written"):
        assert summaries[1][key] == summaries[0][key], key
    assert summaries[1]["quarantined"] == summaries[0]["quarantined"] == {}
    assert summaries[1]["policy_fingerprint"] == summaries[0]["policy_fingerprint"]

    # The work ran in the pool's worker processes: our start-up check's worker, then the job's.
    workers = _workers_started(pool)
    assert any(w.startswith("image-augment-check-") for w in workers), workers
    assert any(not w.startswith("image-augment-check-") for w in workers), workers


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_a_mixing_run_pairs_the_same_partners_on_a_worker_pool(pool, tmp_path):
    # Mixing adds a side input (the split's record count) and a GroupByKey of the copies into
    # their buckets: both must come out of the portable path as on the DirectRunner.
    pattern = _cli_input(tmp_path, 40)
    mixing = ("--policy", MIXUP, "--key-feature", "id", "--label-feature", "label")
    assert _run_cli(pattern, tmp_path / "direct", ["--direct_num_workers=1"], *mixing) == 0
    assert _run_cli(pattern, tmp_path / "portable", pool.beam_args, *mixing) == 0
    direct = sorted(ph.read_records(str(tmp_path / "direct/data_tfrecord-*")))
    assert len(direct) == 40 * (1 + COPIES)
    assert sorted(ph.read_records(str(tmp_path / "portable/data_tfrecord-*"))) == direct
    partners = {
        tf.train.Example.FromString(r).features.feature["aug_mix_partner_key"].bytes_list.value[0]
        for r in direct
        if b"aug_mix_partner_key" in r
    }
    assert len(partners) > 20  # mixed with partners from all over the split


@pytest.mark.e2e
@pytest.mark.timeout(420)
def test_component_on_a_worker_pool_writes_the_direct_runners_records(pool, tmp_path):
    data_root = tmp_path / "data"
    ph.write_records(data_root / "train/data.tfrecord", _digit_records(0, 40))
    ph.write_records(data_root / "eval/data.tfrecord", _digit_records(40, 8))

    def run(name: str, beam_args) -> dict:
        example_gen = ph.import_example_gen(data_root)
        augment = ImageAugment(
            examples=example_gen.outputs["examples"], policy="no-flip", num_copies=COPIES, seed=7
        )
        started = time.monotonic()
        metadata = ph.run_local(
            [example_gen, augment], tmp_path / name, name=f"portable-{name}", beam_args=beam_args
        )
        print(f"{name}: {time.monotonic() - started:.1f} s")
        (augmented,) = [
            a for a in ph.artifacts_of_type(metadata, "Examples") if "ImageAugment" in a.uri
        ]
        return {
            "train": sorted(ph.read_records(f"{augmented.uri}/Split-train/*")),
            "eval": sorted(ph.read_records(f"{augmented.uri}/Split-eval/*")),
            "counts": json.loads(augmented.custom_properties["counts"].string_value),
        }

    direct = run("direct", ["--direct_num_workers=1"])
    workers_before = len(_workers_started(pool))
    portable = run("portable", pool.beam_args)

    assert len(direct["train"]) == 40 * (1 + COPIES) and len(direct["eval"]) == 8
    assert portable["train"] == direct["train"]
    assert portable["eval"] == direct["eval"]
    assert portable["counts"] == direct["counts"]
    # Both components' jobs (ImportExampleGen and ImageAugment) asked the pool for workers.
    assert len(_workers_started(pool)) - workers_before >= 3


@pytest.mark.e2e
@pytest.mark.timeout(120)
def test_the_start_up_check_gets_a_worker_and_leaves_none_behind(pool):
    seconds = runner_checks.check_worker_pool(pool.address, timeout=60)
    assert 0 < seconds < 60
    assert _workers_started(pool)[-1].startswith("image-augment-check-")
    deadline = time.monotonic() + 15
    while live_children(pool.process.pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert live_children(pool.process.pid) == []


@pytest.mark.e2e
@pytest.mark.timeout(180)
def test_a_pool_whose_workers_cannot_start_fails_the_run_in_bounded_time(tmp_path):
    # Beam's pool starts each worker as `python -c ...` with the `python` first on its PATH;
    # this one exits at once, as one without apache_beam would. Without the check the job
    # waits for that worker forever (measured: no output for 240 s, Ctrl-C does not end it),
    # so the CLI runs in a subprocess that the timeout below kills.
    broken = tmp_path / "broken-python"
    broken.mkdir()
    (broken / "python").write_text(
        "#!/bin/sh\necho 'this python cannot start a Beam worker' >&2\nexit 1\n"
    )
    (broken / "python").chmod(0o755)
    pattern = _cli_input(tmp_path, 4)
    with worker_pool(tmp_path / "pool", python_dir=str(broken)) as dead:
        started = time.monotonic()
        result = subprocess.run(
            [sys.executable, "-m", "tfx_image_augment.cli", "run", "--input", pattern]
            + ["--output", str(tmp_path / "out"), "--worker-start-timeout", "10"]
            + ["--", *dead.beam_args],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=150,
        )
        seconds = time.monotonic() - started
        pool_log = dead.log_text()
    print(f"failed after {seconds:.1f} s")
    assert result.returncode == 1, result.stderr[-3000:]
    assert result.stderr.strip().splitlines()[-1] == (
        f"image-augment: failed: the Beam worker pool at {dead.address} started a worker that "
        "did not connect back within 10 s: the pool starts workers with the `python` first on "
        "its PATH, which must import apache_beam (the pool's own log shows the worker's error)"
    )
    assert "Traceback" not in result.stderr
    assert "this python cannot start a Beam worker" in pool_log  # the scenario is the real one
    assert not list((tmp_path / "out").glob("data_tfrecord-*"))
    assert seconds < 10 + 60  # the wait, plus the interpreter's start and the imports


@pytest.mark.timeout(120)
def test_a_closed_port_fails_the_run_at_once_with_one_sentence(tmp_path, capsys):
    port = free_loopback_port()  # nothing listens there
    pattern = _cli_input(tmp_path, 4)
    beam_args = [
        "--runner=PortableRunner",
        "--job_endpoint=embed",
        "--environment_type=EXTERNAL",
        f"--environment_config=localhost:{port}",
    ]
    started = time.monotonic()
    code = _run_cli(pattern, tmp_path / "out", beam_args)
    seconds = time.monotonic() - started
    assert code == 1
    assert capsys.readouterr().err.strip().splitlines()[-1] == (
        f"image-augment: failed: the Beam worker pool at localhost:{port} does not answer: "
        "Connection refused (start one with `python -m "
        f"apache_beam.runners.worker.worker_pool_main --service_port={port}`)"
    )
    assert seconds < 30


@pytest.mark.timeout(60)
def test_a_port_that_is_not_a_worker_pool_fails_within_the_answer_timeout():
    with socket.socket() as silent:  # accepts connections (the kernel does), never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        address = f"localhost:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(runner_checks.WorkerPoolUnavailable) as raised:
            runner_checks.check_worker_pool(address, timeout=5, answer_timeout=3)
        seconds = time.monotonic() - started
    assert str(raised.value).startswith(
        f"the Beam worker pool at {address} does not answer: it accepts connections but is "
        "not a worker pool ("
    )
    assert seconds < 3 + 5


def _options(*args: str):
    from apache_beam.options.pipeline_options import PipelineOptions

    return PipelineOptions(list(args))


def test_the_pool_is_checked_only_where_the_job_runs_from_this_process():
    local = ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=EXTERNAL"]
    assert runner_checks.external_worker_pool(
        _options(*local, "--environment_config=localhost:5")
    ) == ("localhost:5", {})
    assert runner_checks.external_worker_pool(
        _options(*local, '--environment_config={"url": "localhost:6", "params": {"a": "b"}}')
    ) == ("localhost:6", {"a": "b"})
    assert runner_checks.external_worker_pool(
        _options(*local, "--environment_options=external_service_address=localhost:7")
    ) == ("localhost:7", {})
    for args in (
        [],  # the DirectRunner runs its workers in-process
        ["--runner=DirectRunner", "--environment_type=EXTERNAL", "--environment_config=h:1"],
        ["--runner=DataflowRunner", "--environment_type=EXTERNAL", "--environment_config=h:1"],
        ["--runner=PortableRunner", "--job_endpoint=localhost:8099"]  # another job server
        + ["--environment_type=EXTERNAL", "--environment_config=localhost:1"],
        ["--runner=PortableRunner", "--job_endpoint=embed", "--environment_type=LOOPBACK"],
    ):
        assert runner_checks.external_worker_pool(_options(*args)) is None, args
    closed = _options(*local, f"--environment_config=localhost:{free_loopback_port()}")
    assert runner_checks.check_beam_environment(closed, worker_start_timeout=0) is None
    with pytest.raises(runner_checks.WorkerPoolUnavailable, match="does not answer"):
        runner_checks.check_beam_environment(closed, worker_start_timeout=5)
    with pytest.raises(runner_checks.WorkerPoolUnavailable, match="needs the worker pool's"):
        runner_checks.check_beam_environment(_options(*local), worker_start_timeout=5)


@pytest.mark.e2e
@pytest.mark.timeout(300)
def test_the_component_fails_with_the_sentence_when_its_pool_does_not_answer(tmp_path):
    data_root = tmp_path / "data"
    ph.write_records(data_root / "train/data.tfrecord", _digit_records(0, 8))
    ph.write_records(data_root / "eval/data.tfrecord", _digit_records(8, 4))
    port = free_loopback_port()  # nothing listens there
    example_gen = ph.import_example_gen(data_root)  # runs on the DirectRunner
    augment = ImageAugment(
        examples=example_gen.outputs["examples"], policy="no-flip", num_copies=COPIES
    ).with_beam_pipeline_args(
        [
            "--runner=PortableRunner",
            "--job_endpoint=embed",
            "--environment_type=EXTERNAL",
            f"--environment_config=localhost:{port}",
        ]
    )
    with pytest.raises(runner_checks.WorkerPoolUnavailable) as raised:
        ph.run_local([example_gen, augment], tmp_path / "run", name="portable-closed")
    assert str(raised.value).startswith(
        f"the Beam worker pool at localhost:{port} does not answer: Connection refused"
    )
