"""Progress of an offline run: the input's size known before the run, and a rate, a percentage
and an ETA while it runs (a bar on a terminal, plain lines in a log)."""

from __future__ import annotations

import logging
import re

import tensorflow as tf
from tfx_image_augment.cli.commands import main
from tfx_image_augment.io.folders import scan_folder
from tfx_image_augment.offline.beam import progress
from tfx_image_augment.offline.beam.progress import (
    ProgressMonitor,
    WorkerProgress,
    input_size,
    progress_line,
)

from pipelines.data import image_example
from tests import images as real
from tests.records import write_records


def _digit_records(count: int) -> list[bytes]:
    digits, labels = real.digits(32)
    return [
        image_example(tf.io.encode_png(image).numpy(), label, f"d{i}")
        for i, (image, label) in enumerate(zip(digits[:count], labels[:count], strict=True))
    ]


def test_the_input_size_is_its_record_bytes_read_from_the_files_gzipped_or_not(tmp_path):
    records = _digit_records(30)
    write_records(tmp_path / "a/part-0.tfrecord", records[:10])
    write_records(tmp_path / "a/part-1.tfrecord.gz", records[10:], gzip=True)
    framed = sum(len(r) + progress.RECORD_FRAME_BYTES for r in records)
    # Gzipped files count by their uncompressed size (the trailer), so both kinds mean the
    # same bytes a worker counts.
    assert input_size([str(tmp_path / "a/*")]) == (framed, progress.BYTES)
    counted = WorkerProgress(None, "train")
    for record in records:
        counted.finished(len(record))
    assert counted.counts["bytes"] == framed and counted.counts["examples"] == 30


def test_an_empty_gzip_shard_or_a_folder_in_the_glob_keeps_the_total(tmp_path):
    records = _digit_records(5)
    write_records(tmp_path / "a/part-0.tfrecord.gz", records, gzip=True)
    write_records(tmp_path / "a/part-1.tfrecord.gz", [], gzip=True)  # as Beam writes spare shards
    (tmp_path / "a/part-2").mkdir()
    framed = sum(len(r) + progress.RECORD_FRAME_BYTES for r in records)
    assert input_size([str(tmp_path / "a/part-*")]) == (framed, progress.BYTES)


def test_a_folder_of_images_counts_its_images(tmp_path):
    for name in ("cat", "dog"):
        (tmp_path / "pics" / name).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "pics" / name / f"{i}.png").write_bytes(b"not decoded here")
    assert input_size([scan_folder(str(tmp_path / "pics"))]) == (6, progress.EXAMPLES)


def test_the_line_gives_percentage_rate_and_eta_and_never_100_before_the_end():
    counts = {"examples": 250, "bytes": 2_500, "copies": 1_000}
    line = progress_line(counts, 10_000, progress.BYTES, elapsed=10.0)
    assert line == "250 examples done (25%), 1,000 copies written (100/s), ETA 0:00:30"
    almost = progress_line({**counts, "bytes": 9_999}, 10_000, progress.BYTES, elapsed=10.0)
    assert "(99%)" in almost and "ETA 0:00:00" in almost
    unknown = progress_line(counts, None, progress.BYTES, elapsed=10.0)
    assert unknown == "250 examples done, 1,000 copies written (100/s)"
    final = progress_line({**counts, "bytes": 10_000}, 10_000, progress.BYTES, 80.0, final=True)
    assert final == "250 examples done (100%): 1,000 copies written in 0:01:20 (12/s)"
    # The first news has no time behind it: no rate, no ETA (not "(585,797,130/s), ETA 0:00:00").
    first = progress_line(counts, 10_000, progress.BYTES, elapsed=0.0)
    assert first == "250 examples done (25%), 1,000 copies written"


def test_a_terminal_gets_a_bar_that_ends_full(tmp_path, capsys):
    with ProgressMonitor(3, progress.EXAMPLES, logging.getLogger("t"), terminal=True) as monitor:
        worker = WorkerProgress(monitor.folder, "train")
        for _ in range(3):
            worker.finished(100, copies=4)
        worker.finish()
    err = capsys.readouterr().err
    assert "augmenting" in err and "100%" in err and "3/3" in err and "12 copies" in err


def test_a_local_run_logs_its_progress_against_the_input_size(tmp_path, monkeypatch, capsys):
    records = _digit_records(200)
    write_records(tmp_path / "in/part-0.tfrecord", records[:100])
    write_records(tmp_path / "in/part-1.tfrecord.gz", records[100:], gzip=True)
    # Lines as often as the run gives news (10 s apart otherwise: the run takes seconds).
    monkeypatch.setattr(ProgressMonitor, "INTERVAL", 0.05)
    monkeypatch.setattr(ProgressMonitor, "LOG_SECONDS", 0.0)
    monkeypatch.setattr(WorkerProgress, "WRITE_SECONDS", 0.0)
    args = ["run", "--input", str(tmp_path / "in/*"), "--output", str(tmp_path / "out")]
    code = main([*args, "--copies", "4", "--batch-size", "16", "--", "--direct_num_workers=1"])
    assert code == 0
    lines = [line for line in capsys.readouterr().err.splitlines() if "examples done" in line]
    during, last = lines[:-1], lines[-1]
    assert "image-augment: 200 examples done (100%): 800 copies written in 0:00:" in last
    assert any("%), " in line and "copies written" in line and ", ETA " in line for line in during)
    # The line where the first news arrives has no time behind it: no rate (it read
    # "(585,797,130/s), ETA 0:00:00"); later rates are a run's, not microseconds'.
    assert "/s)" not in during[0] and ", ETA " not in during[0]
    rates = [int(m.replace(",", "")) for m in re.findall(r"\(([\d,]+)/s\)", "\n".join(during))]
    assert rates and max(rates) < 100_000
