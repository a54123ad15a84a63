"""The CLI's output folder on real digits: a folder holding files is refused, --overwrite
replaces it whole, a failed run leaves it as it was (its quarantine kept beside it), and what is
published is exactly what the completion marker lists."""

from __future__ import annotations

import json
import pathlib

import pytest
import tensorflow as tf
from tfx_image_augment.cli.commands import main
from tfx_image_augment.io import quarantine
from tfx_image_augment.io.reader import read_images

from pipelines.data import image_example
from tests import images as real
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
    from tfx_image_augment.io.completion import IncompleteOutputError
    from tfx_image_augment.io.reader import resolve_files

    from tests.stopped_runs import run_stopped

    out = tmp_path / "X"
    out.mkdir()
    (out / "data_tfrecord-old.gz").write_bytes(b"old")
    (out / "augment_summary.json").write_text("{}")
    (out / "_SUCCESS").write_text(json.dumps({"format": "image-augment-output/1"}))

    killed = run_stopped(["-c", REMOTE_PUBLISH, str(out)], "before-marker:SIGKILL", tmp_path)
    assert killed.returncode == -9, killed.stderr[-3000:]
    # The old marker and output are gone, the new files are in place, no marker vouches yet.
    assert sorted(p.name for p in out.iterdir()) == ["augment_summary.json", "data_tfrecord-new.gz"]
    with pytest.raises(IncompleteOutputError, match="has no completion marker"):
        resolve_files(str(out))

    finished = run_stopped(["-c", REMOTE_PUBLISH, str(out)], None, tmp_path)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert resolve_files(str(out)) == [str(out / "data_tfrecord-new.gz")]
    assert staging_beside(out) == []
