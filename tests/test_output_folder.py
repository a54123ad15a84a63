"""The CLI's output folder on real digits: a folder holding files is refused, --overwrite
replaces it whole, a failed run leaves it as it was (its quarantine kept beside it), and what is
published is exactly what the completion marker lists."""

from __future__ import annotations

import errno
import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time
import traceback

import apache_beam as beam
import pytest
import tensorflow as tf
from apache_beam.options.pipeline_options import PipelineOptions
from tfx_image_augment.cli.commands import main
from tfx_image_augment.io import quarantine
from tfx_image_augment.io.reader import read_images

from pipelines.data import image_example
from tests import images as real
from tests.conftest import PROJECT_ROOT
from tests.records import read_records, write_records
from tests.stopped_runs import PROGRESS_LINE, beam_temp_anywhere, snapshot, staging_beside

COPIES = 2
IN_MEMORY = ("--direct_num_workers=1",)
MULTI = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def _digit_records(count: int) -> list[bytes]:
    digits, labels = real.digits(32)
    return [
        image_example(tf.io.encode_png(digits[i]).numpy(), labels[i], f"d{i}") for i in range(count)
    ]


def _input(root: pathlib.Path, records: list[bytes]) -> str:
    write_records(root / "part-0.tfrecord.gz", records[::2], gzip=True)
    write_records(root / "part-1.tfrecord.gz", records[1::2], gzip=True)
    return str(root / "*.gz")


def _run(pattern: str, out: pathlib.Path, *extra: str) -> int:
    return main(
        ["run", "--input", pattern, "--output", str(out), "--policy", "no-flip"]
        + ["--copies", str(COPIES), "--seed", "2", *extra]
    )


def test_a_used_folder_is_refused_and_overwrite_replaces_it_whole(tmp_path, capsys):
    pattern = _input(tmp_path / "in", _digit_records(40))
    out = tmp_path / "out/X"
    assert _run(pattern, out, "--", *MULTI) == 0
    first = snapshot(out)
    capsys.readouterr()

    # The same folder again, in-memory: refused with one sentence, the folder untouched.
    assert _run(pattern, out, "--", *IN_MEMORY) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"image-augment: error: --output {out} already holds files; pass --overwrite to "
        "replace it whole, or choose another folder."
    ]
    assert snapshot(out) == first

    # --overwrite: nothing of the 2-worker run is left beside the new shards.
    assert _run(pattern, out, "--overwrite", "--", *IN_MEMORY) == 0
    assert sorted(p.name for p in out.glob("data_tfrecord-*")) == [
        "data_tfrecord-copies-00000-of-00001.gz",
        "data_tfrecord-originals-00000-of-00001.gz",
    ]
    assert [p.name for p in (out / "quarantine/Split-data").iterdir()] == [
        "quarantine_tfrecord-00000-of-00001.gz"
    ]
    assert sorted(p.name for p in out.iterdir()) == [
        "_SUCCESS",
        "augment_summary.json",
        "augmentation_model",
        "data_tfrecord-copies-00000-of-00001.gz",
        "data_tfrecord-originals-00000-of-00001.gz",
        "quarantine",
    ]
    marker = json.loads((out / "_SUCCESS").read_text())
    assert sorted(marker["splits"]["data"]["files"]) == [
        "data_tfrecord-copies-00000-of-00001.gz",
        "data_tfrecord-originals-00000-of-00001.gz",
    ]
    assert marker["splits"]["data"]["records"] == 40 * (1 + COPIES)
    assert sum(1 for _ in read_images(str(out), channels=1)) == 40 * (1 + COPIES)
    assert staging_beside(out) == [] and beam_temp_anywhere(tmp_path) == []


def test_overwrite_replaces_only_a_folder_that_image_augment_wrote(tmp_path, capsys):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    assert _run(str(tmp_path / "in/*"), out, "--overwrite") == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"image-augment: error: --output {out} holds files that image-augment did not write "
        "(e.g. 'notes.txt'); --overwrite replaces only an image-augment output folder."
    ]
    assert (out / "notes.txt").read_text() == "keep me"


def _broken(reason: str) -> bytes:
    example = tf.train.Example()
    value = b"" if reason == quarantine.IMAGE_EMPTY else b"this is not a picture"
    example.features.feature["image"].bytes_list.value.append(value)
    example.features.feature["label"].int64_list.value.append(1)
    example.features.feature["id"].bytes_list.value.append(reason.encode())
    return example.SerializeToString()


def test_a_failed_run_leaves_the_previous_output_whole_and_keeps_its_quarantine(tmp_path, capsys):
    good = _digit_records(10)
    out = tmp_path / "out/X"
    assert _run(_input(tmp_path / "good", good), out, "--", *IN_MEMORY) == 0
    previous = snapshot(out)
    capsys.readouterr()

    bad = _input(
        tmp_path / "bad", good + [_broken(quarantine.IMAGE_EMPTY), _broken(quarantine.NOT_AN_IMAGE)]
    )
    assert _run(bad, out, "--overwrite", "--", *IN_MEMORY) == 1
    err = capsys.readouterr().err.strip().splitlines()
    (line,) = [line for line in err if not PROGRESS_LINE.match(line)]
    assert line.startswith("image-augment: failed: 2 of 12 examples (16.7%) were quarantined")
    assert line.endswith(f"The bad records are kept whole in {out}.quarantine.")
    assert snapshot(out) == previous  # data, quarantine, model and summary: the old run's
    kept = read_records(str(tmp_path / "out/X.quarantine/Split-data/*"))
    assert len(kept) == 2
    assert staging_beside(out) == [] and beam_temp_anywhere(tmp_path) == []

    # Into a fresh folder the same failure publishes nothing at all.
    fresh = tmp_path / "out/Y"
    assert _run(bad, fresh, "--", *IN_MEMORY) == 1
    assert not fresh.exists()
    assert len(read_records(str(tmp_path / "out/Y.quarantine/Split-data/*"))) == 2


# Publishes a staged output the way a gs:// folder is published (TensorFlow's file API, no
# folder exchange), on this filesystem: the one path here that needs no bucket.
REMOTE_PUBLISH = """
import pathlib, sys
from tfx_image_augment.io.completion import MARKER_FORMAT
from tfx_image_augment.io.publish import StagedOutput

target = StagedOutput(sys.argv[1], overwrite=True, data_prefix="data_tfrecord")
target.local = False
target.prepare()
pathlib.Path(target.staging, "data_tfrecord-new.gz").write_bytes(b"new")
pathlib.Path(target.staging, "augment_summary.json").write_text("{}")
files = {"data_tfrecord-new.gz": 3}
target.publish({"format": MARKER_FORMAT, "splits": {"data": {"records": 0, "files": files}},
                "quarantine": {"records": 0, "files": {}}})
target.discard()
"""


def test_where_folders_cannot_be_swapped_the_marker_goes_first_and_comes_last(tmp_path):
    from tfx_image_augment.io.completion import IncompleteOutputError, write_marker
    from tfx_image_augment.io.reader import resolve_files

    from tests.stopped_runs import run_stopped

    out = tmp_path / "X"
    out.mkdir()
    (out / "data_tfrecord-old.gz").write_bytes(b"old")
    (out / "augment_summary.json").write_text("{}")
    files = {"data_tfrecord-old.gz": 3}
    write_marker(  # an earlier output: its marker lists everything in it
        str(out),
        {"format": "image-augment-output/1", "splits": {"data": {"records": 0, "files": files}}},
    )

    killed = run_stopped(["-c", REMOTE_PUBLISH, str(out)], "before-marker:SIGKILL", tmp_path)
    assert killed.returncode == -9, killed.stderr[-3000:]
    # The old marker and output are gone, the new files are in place, no marker vouches yet;
    # the list of what publishing may leave there marks the folder as ours.
    assert sorted(p.name for p in out.iterdir()) == [
        "_PUBLISHING",
        "augment_summary.json",
        "data_tfrecord-new.gz",
    ]
    with pytest.raises(IncompleteOutputError, match="has no completion marker"):
        resolve_files(str(out))

    finished = run_stopped(["-c", REMOTE_PUBLISH, str(out)], None, tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert resolve_files(str(out)) == [str(out / "data_tfrecord-new.gz")]
    assert staging_beside(out) == []


def _refusal(capsys) -> list[str]:
    err = capsys.readouterr().err
    return [line for line in err.strip().splitlines() if not PROGRESS_LINE.match(line)]


def test_overwrite_goes_by_what_the_marker_lists_anywhere_in_the_folder(tmp_path, capsys):
    from tfx_image_augment.io.completion import foreign_path

    pattern = _input(tmp_path / "in", _digit_records(10))
    out = tmp_path / "out"
    assert _run(pattern, out, "--", *IN_MEMORY) == 0
    assert foreign_path(str(out)) is None  # the marker lists all a run writes, recursively
    capsys.readouterr()

    def add_file(folder, relative, text="mine"):
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        (folder / relative).write_text(text)

    intrusions = {
        "quarantine/patients/p1.txt": lambda f: add_file(f, "quarantine/patients/p1.txt"),
        "augmentation_model/my_weights.h5": lambda f: add_file(
            f, "augmentation_model/my_weights.h5"
        ),
        "augment_summary.json": lambda f: add_file(f, "augment_summary.json", "edited"),
        "quarantine/Split-data/mine": lambda f: (f / "quarantine/Split-data/mine").mkdir(),
    }
    for index, (foreign, intrude) in enumerate(intrusions.items()):
        folder = tmp_path / f"used-{index}"
        shutil.copytree(out, folder)
        intrude(folder)
        before = snapshot(folder)
        assert _run(pattern, folder, "--overwrite", "--", *IN_MEMORY) == 2, foreign
        assert _refusal(capsys) == [
            f"image-augment: error: --output {folder} holds files that image-augment did not "
            f"write (e.g. {foreign!r}); --overwrite replaces only an image-augment output folder."
        ]
        assert snapshot(folder) == before and (folder / foreign).exists()

    # An ExampleGen split (no marker of ours) as the output of a run reading it: refused.
    split = tmp_path / "eg/Split-train"
    write_records(split / "data_tfrecord-00000-of-00001.gz", _digit_records(6), gzip=True)
    before = snapshot(split)
    assert _run(str(split / "*"), split, "--overwrite", "--no-original", "--", *IN_MEMORY) == 2
    assert _refusal(capsys) == [
        f"image-augment: error: --output {split} holds files that image-augment did not write "
        "(e.g. 'data_tfrecord-00000-of-00001.gz'); --overwrite replaces only an image-augment "
        "output folder."
    ]
    assert snapshot(split) == before

    # Our own output as the input of a run replacing it: an input folder is never an output.
    before = snapshot(out)
    mine = str(out / "data_tfrecord-*")
    assert _run(mine, out, "--overwrite", "--", *IN_MEMORY) == 2
    assert _refusal(capsys) == [
        f"image-augment: error: --input {mine!r} would also read what the run writes ({out}): "
        "write --output outside the folders the input glob reads."
    ]
    assert snapshot(out) == before and staging_beside(out) == []


def test_an_output_the_input_glob_would_read_is_refused_before_the_run(tmp_path, capsys):
    from tfx_image_augment.io.publish import StagedOutput

    data = tmp_path / "data"
    pattern = _input(data, _digit_records(6))
    files = sorted(str(p) for p in data.iterdir())
    (tmp_path / "link").symlink_to(data)
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    everything = str(data / "*")
    cases = [
        # The input glob matches the output folder (and would match its staging folder).
        (everything, data / "augmented", f"would also read what the run writes ({data}/augmented)"),
        # ... also through a symbolic link on either side.
        (everything, tmp_path / "link/augmented", "would also read what the run writes"),
        (str(tmp_path / "link/*"), data / "augmented", "would also read what the run writes"),
        (pattern, tmp_path / "out[1]", "holds '[', which Beam reads as a glob character"),
        (pattern, tmp_path / "out*", "holds '*', which Beam reads as a glob character"),
        (pattern, tmp_path / "alias", "is a symbolic link: name the folder it points to"),
    ]
    for input_glob, out, message in cases:
        started = time.monotonic()
        assert _run(input_glob, out, "--", *IN_MEMORY) == 2, out
        (line,) = _refusal(capsys)
        assert line.startswith("image-augment: error: --") and message in line, line
        assert time.monotonic() - started < 30  # before the run, not after it
    assert sorted(p.name for p in data.iterdir()) == ["part-0.tfrecord.gz", "part-1.tfrecord.gz"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias", "data", "link", "real"]

    # A glob that matches only the input files leaves a folder beside them free.
    target = StagedOutput(str(data / "augmented"), False, "data_tfrecord")
    target.check_input(pattern, files)


def test_a_second_run_into_the_same_folder_fails_at_once(tmp_path, capsys):
    """The first run holds a lock on the output; the second fails before doing anything, and
    deletes nothing of the first (whatever process ids its staging folders carry). Once the
    first is gone (killed), its lock is free and the next run sweeps what it left."""
    from tfx_image_augment.io.killpoints import KILLPOINT_ENV
    from tfx_image_augment.io.publish import _host

    pattern = _input(tmp_path / "in", _digit_records(20))
    out = tmp_path / "out/X"
    fired = tmp_path / "fired"
    env = {**os.environ, KILLPOINT_ENV: f"augment-batch:SIGSTOP:{fired}"}
    first = subprocess.Popen(
        [sys.executable, "-m", "tfx_image_augment.cli", "run", "--input", pattern]
        + ["--output", str(out), "--policy", "no-flip", "--", *IN_MEMORY],
        cwd=PROJECT_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not fired.exists() and first.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert fired.exists() and first.poll() is None  # stopped mid-run, alive
        (live,) = staging_beside(out)
        # A run in another PID namespace names a process id that is not alive here.
        gone = _a_gone_pid()
        other = out.parent / f".X.staging-0badc0de-{gone}-{_host()}"
        other.mkdir()
        capsys.readouterr()

        started = time.monotonic()
        assert _run(pattern, out, "--", *IN_MEMORY) == 2
        assert _refusal(capsys) == [
            f"image-augment: error: another run is writing {out} (it holds "
            f"{out.parent / '.X.lock'}); wait for it to end, or choose another folder."
        ]
        assert time.monotonic() - started < 30
        assert staging_beside(out) == sorted([live, other.name])  # nothing of theirs deleted
        assert not out.exists()
    finally:
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(timeout=60)

    # The first run is gone: nobody holds the lock, so the staging folders are stale.
    assert _run(pattern, out, "--", *IN_MEMORY) == 0
    assert staging_beside(out) == [] and not (out.parent / ".X.lock").exists()
    assert sum(1 for _ in read_images(str(out), channels=1)) == 20 * (1 + COPIES)


def _a_gone_pid() -> int:
    """The process id of a process that has ended."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# A 1 MB filesystem fills up during the Beam run (real photo crops: ~1.3 MB of input).
@pytest.fixture
def small_disk(tmp_path):
    mount = tmp_path / "small"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode:
        pytest.skip(f"cannot mount a 1 MB tmpfs here (needs root): {made.stderr.strip()!r}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


@pytest.mark.parametrize("beam_args", [IN_MEMORY, MULTI])
def test_a_full_disk_fails_the_run_with_one_line_and_publishes_nothing(
    tmp_path, small_disk, beam_args
):
    from tests.stopped_runs import cli, run_stopped

    photos = real.photo_crops(64, 200, seed=1)
    records = [
        image_example(tf.io.encode_png(p).numpy(), i % 3, f"p{i}") for i, p in enumerate(photos)
    ]
    write_records(tmp_path / "in/photos.tfrecord.gz", records, gzip=True)
    out = small_disk / "out"
    finished = run_stopped(
        cli("run", "--input", str(tmp_path / "in/*"), "--output", str(out))
        + ["--policy", "no-flip", "--copies", "2", "--", *beam_args],
        None,
        tmp_path,
    )
    assert finished.returncode == 1, finished.stderr[-3000:]
    line = f"image-augment: failed: disk full writing {out}"
    if beam_args == IN_MEMORY:
        assert finished.other_stderr_lines == [line]
    else:  # worker processes may still print how they ended; the launcher's verdict is last
        assert finished.other_stderr_lines[-1] == line
    assert list(small_disk.iterdir()) == []  # no output, no staging, no lock
    assert finished.left_alive == []


class _FullDisk(beam.DoFn):
    def process(self, element):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), f"/mnt/full/{element}")


def test_a_full_disk_is_found_however_beam_wraps_it():
    from tfx_image_augment.io import failures

    with pytest.raises(Exception) as raised:
        with beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"])) as pipeline:
            _ = pipeline | beam.Create(["shard-0"]) | beam.ParDo(_FullDisk())
    wrapped = raised.value
    assert not isinstance(wrapped, OSError)  # Beam's RuntimeError, the OSError behind it
    assert failures.disk_full(wrapped) == "/mnt/full/shard-0"
    # From a worker process only Beam's text crosses: the error is read back from it.
    text = RuntimeError(traceback.format_exception_only(type(wrapped), wrapped)[-1])
    assert text.__cause__ is None and text.__context__ is None
    assert failures.os_error_in(text).errno == errno.ENOSPC
    assert failures.disk_full(text) == "/mnt/full/shard-0"
    # What Beam 2.59 said on a full tmpfs (no file name): the output being written is named.
    measured = RuntimeError(
        "OSError: [Errno 28] No space left on device [while running "
        "'Augment[data]/WriteCopies[data]/Write/WriteImpl/WriteBundles']"
    )
    failures.note_writing("/data/.out.staging-1", "/data/out")
    assert failures.disk_full(measured) == "/data/out"
    assert failures.disk_full(RuntimeError("OSError: [Errno 13] Permission denied")) is None
