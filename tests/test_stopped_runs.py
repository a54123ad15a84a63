"""Runs stopped on purpose, at named points (tfx_image_augment.io.killpoints), on real digits.

SIGKILL anywhere leaves the output folder as the old complete output or the new complete one,
never a mix, and leaves Beam's temporary files only in a staging folder that the next run
deletes; that next run completes. Ctrl-C (SIGINT to the whole process group, as a terminal
sends it) ends a run within seconds with one line and exit 130, and leaves no process behind;
SIGTERM (to the group, or to the launcher alone) does the same with exit 143.
The TFX executor never leaves a marker over a mix of two attempts, and a retry completes.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import signal

import pytest
import tensorflow as tf
from tfx_image_augment.cli.commands import main
from tfx_image_augment.io.completion import IncompleteOutputError
from tfx_image_augment.io.reader import read_images, resolve_files

from pipelines.data import image_example
from tests import images as real
from tests.executor_helpers import examples_artifact, run_executor
from tests.records import write_records
from tests.stopped_runs import (
    beam_temp_anywhere,
    cli,
    count_records,
    run_stopped,
    snapshot,
    staging_beside,
)

COUNT, COPIES = 40, 2
RECORDS_OUT = COUNT * (1 + COPIES)
IN_MEMORY = ("--direct_num_workers=1",)
MULTI = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")
INTERRUPT_SECONDS = 15  # the guard's own deadline is 5 s; the rest is a busy machine's slack


def _digit_records(count: int, start: int = 0) -> list[bytes]:
    digits, labels = real.digits(32)
    return [
        image_example(tf.io.encode_png(digits[i]).numpy(), labels[i], f"d{i}")
        for i in range(start, start + count)
    ]


def _digit_input(root: pathlib.Path) -> str:
    records = _digit_records(COUNT)
    write_records(root / "in/part-0.tfrecord.gz", records[::2], gzip=True)
    write_records(root / "in/part-1.tfrecord.gz", records[1::2], gzip=True)
    return str(root / "in/*.gz")


def _run_args(pattern: str, out: pathlib.Path, *extra: str) -> list[str]:
    return [
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
        "11",
        *extra,
    ]


def _assert_complete(out: pathlib.Path) -> None:
    """`out` is a whole output: its marker lists exactly the shards there, with their sizes and
    record counts, and the model, summary and reader agree."""
    marker = json.loads((out / "_SUCCESS").read_text())
    listed = marker["splits"]["data"]["files"]
    assert {p.name: p.stat().st_size for p in out.glob("data_tfrecord-*")} == listed
    assert marker["splits"]["data"]["records"] == RECORDS_OUT
    assert count_records(out / name for name in listed) == RECORDS_OUT
    quarantine = {
        str(p.relative_to(out)): p.stat().st_size for p in out.glob("quarantine/Split-data/*")
    }
    assert quarantine == marker["quarantine"]["files"] and marker["quarantine"]["records"] == 0
    assert json.loads((out / "augment_summary.json").read_text())["examples_out"] == RECORDS_OUT
    assert (out / "augmentation_model/saved_model/saved_model.pb").exists()
    assert (out / "augmentation_model/preview.png").exists()
    assert sum(1 for _ in read_images(str(out), channels=1)) == RECORDS_OUT
    assert beam_temp_anywhere(out) == []


def test_a_run_killed_anywhere_leaves_the_old_output_or_the_new_one_whole(tmp_path):
    pattern = _digit_input(tmp_path)
    out = tmp_path / "out/X"
    assert main(_run_args(pattern, out, "--", *IN_MEMORY)) == 0
    _assert_complete(out)
    old = snapshot(out)

    matrix = [
        ("augment-batch", IN_MEMORY),  # Beam's temp shards half written, in the launcher
        ("augment-batch", MULTI),  # ... in a worker process, which kills the whole group
        ("beam-finished", IN_MEMORY),  # every shard written; counts not yet checked
        ("model-export", IN_MEMORY),  # the SavedModel written, the preview not
        ("before-publish", MULTI),  # staged output complete, marker included
        ("after-publish", IN_MEMORY),  # published; the old output not yet deleted
    ]
    for point, beam_args in matrix:
        killed = run_stopped(
            cli(*_run_args(pattern, out, "--overwrite", "--", *beam_args)),
            f"{point}:SIGKILL",
            tmp_path,
        )
        assert killed.returncode == -9, (point, killed.stderr[-3000:])
        assert killed.fired_at is not None and killed.left_alive == [], point
        assert beam_temp_anywhere(out) == [], point
        if point == "after-publish":
            _assert_complete(out)  # the new output, whole
            # The one rename swapped the folders: the staging name holds the old output.
            (staging,) = staging_beside(out)
            assert snapshot(out.parent / staging) == old
        else:
            assert snapshot(out) == old, point  # the old output, byte for byte
            assert len(staging_beside(out)) == 1  # what the killed run left, beside the output
            shutil.rmtree(out.parent / staging_beside(out)[0])
        old = snapshot(out)

    # A fresh folder killed before publishing is not there at all: nothing to mistake.
    fresh = tmp_path / "out/Y"
    killed = run_stopped(
        cli(*_run_args(pattern, fresh, "--", *IN_MEMORY)), "before-publish:SIGKILL", tmp_path
    )
    assert killed.returncode == -9 and not fresh.exists()
    with pytest.raises(FileNotFoundError, match="No TFRecord files"):
        resolve_files(str(fresh))

    # The next runs delete what the killed ones left (their processes are gone) and complete.
    assert main(_run_args(pattern, out, "--overwrite", "--", *IN_MEMORY)) == 0
    assert main(_run_args(pattern, fresh, "--", *IN_MEMORY)) == 0
    for folder in (out, fresh):
        _assert_complete(folder)
        assert staging_beside(folder) == []
    assert beam_temp_anywhere(tmp_path / "out") == []


@pytest.fixture(scope="module")
def old_output(tmp_path_factory):
    """(input pattern, a complete output made in-memory) to copy before each interrupted run."""
    root = tmp_path_factory.mktemp("interrupts")
    pattern = _digit_input(root)
    out = root / "template"
    assert main(_run_args(pattern, out, "--", *IN_MEMORY)) == 0
    return pattern, out


@pytest.mark.parametrize(
    "point, beam_args, signal_name",
    [
        ("augment-batch", IN_MEMORY, "SIGINT"),
        ("model-export", IN_MEMORY, "SIGINT"),
        ("before-publish", IN_MEMORY, "SIGINT"),
        ("augment-batch", MULTI, "SIGINT"),  # the SIGINT comes from a worker, as from a terminal
        ("beam-finished", MULTI, "SIGINT"),  # after the job, while Beam stops its workers
        ("after-publish", MULTI, "SIGINT"),
        # SIGTERM (`kill`, `timeout`, a container stop) ends a run the way Ctrl-C does.
        ("augment-batch", IN_MEMORY, "SIGTERM"),
        ("before-publish", IN_MEMORY, "SIGTERM"),
        ("augment-batch", MULTI, "SIGTERM"),
        ("beam-finished", MULTI, "SIGTERM"),
        ("after-publish", MULTI, "SIGTERM"),
    ],
)
def test_ctrl_c_and_sigterm_end_the_run_within_seconds_with_one_line(
    old_output, tmp_path, point, beam_args, signal_name
):
    pattern, template = old_output
    out = tmp_path / "X"
    shutil.copytree(template, out)
    old = snapshot(out)
    stopped = run_stopped(
        cli(*_run_args(pattern, out, "--overwrite", "--", *beam_args)),
        f"{point}:{signal_name}",
        tmp_path,
    )
    _assert_stopped_cleanly(stopped, out, old, signal_name, after_publish=point == "after-publish")


def _assert_stopped_cleanly(stopped, out, old, signal_name, after_publish=False) -> None:
    """Exit 130 (SIGINT) or 143 (SIGTERM) within seconds, one line, no process left, no
    staging or Beam temp left, and the folder the old output (or, after publishing, the new
    one whole)."""
    code, word = (130, "interrupted") if signal_name == "SIGINT" else (143, "terminated (SIGTERM)")
    assert stopped.returncode == code, stopped.stderr[-3000:]
    assert stopped.fired_at is not None
    assert stopped.ended_at - stopped.fired_at < INTERRUPT_SECONDS
    assert "Traceback" not in stopped.stderr
    assert stopped.left_alive == []  # Beam's worker processes too
    if after_publish:
        assert stopped.other_stderr_lines == [
            f"image-augment: {word} after publishing {out}, which is complete"
        ]
        _assert_complete(out)
    else:
        assert stopped.other_stderr_lines == [f"image-augment: {word}; {out} was left as it was"]
        assert snapshot(out) == old
    assert staging_beside(out) == [] and beam_temp_anywhere(out.parent) == []
    assert not (out.parent / f".{out.name}.lock").exists()


def test_sigterm_to_the_launcher_alone_ends_the_run_and_its_workers(old_output, tmp_path):
    """What `timeout` and `kill PID` do: the signal reaches the launcher, not its workers."""
    pattern, template = old_output
    out = tmp_path / "X"
    shutil.copytree(template, out)
    old = snapshot(out)
    stopped = run_stopped(  # the point only marks the moment: a worker is mid-batch
        cli(*_run_args(pattern, out, "--overwrite", "--", *MULTI)),
        "augment-batch:SIGCONT",
        tmp_path,
        then_signal=signal.SIGTERM,
    )
    _assert_stopped_cleanly(stopped, out, old, "SIGTERM")


def _executor_complete(augmented: pathlib.Path, model: pathlib.Path) -> None:
    """The artifact folders of a finished execution: the marker lists exactly each split's
    shards; nothing else is there (no staging, no Beam temp, no earlier attempt's files)."""
    marker = json.loads((augmented / "_SUCCESS").read_text())
    assert sorted(p.name for p in augmented.iterdir()) == [
        "Split-eval",
        "Split-train",
        "_SUCCESS",
        "quarantine",
    ]
    for split, records in (("train", 24 * 3), ("eval", 8)):
        listed = marker["splits"][split]["files"]
        on_disk = {
            str(p.relative_to(augmented)): p.stat().st_size
            for p in (augmented / f"Split-{split}").iterdir()
        }
        assert on_disk == listed
        assert marker["splits"][split]["records"] == records
        assert count_records(augmented / name for name in listed) == records
        assert sum(1 for _ in read_images(str(augmented), channels=1, split=split)) == records
    # A Split- folder alone is read through the artifact's marker.
    assert len(resolve_files(str(augmented / "Split-train"))) == len(marker["splits"]["train"])
    assert sorted(p.name for p in model.iterdir()) == ["policy.json", "preview.png", "saved_model"]
    assert beam_temp_anywhere(augmented.parent) == []


def test_a_killed_execution_never_leaves_a_marked_mix_and_a_retry_completes(tmp_path):
    from tests.scripts.run_executor import CONFIG

    examples = examples_artifact(
        tmp_path / "in", {"train": _digit_records(24), "eval": _digit_records(8, start=24)}
    )
    out = tmp_path / "out"
    augmented, model = (out / "augmented", out / "model")
    run_executor(examples, out, CONFIG)
    _executor_complete(augmented, model)

    script = ["-m", "tests.scripts.run_executor", str(tmp_path / "in"), str(out)]
    for point in ("augment-batch", "model-export", "before-publish", "before-marker"):
        killed = run_stopped(script, f"{point}:SIGKILL", tmp_path)
        assert killed.returncode == -9, (point, killed.stderr[-3000:])
        # The earlier attempt's marker went first; no marker vouches for what is there now.
        assert not (augmented / "_SUCCESS").exists(), point
        with pytest.raises(IncompleteOutputError, match="has no completion marker"):
            resolve_files(str(augmented), split="train")

    run_executor(examples, out, CONFIG)  # the retry, into the same artifact folders
    _executor_complete(augmented, model)
