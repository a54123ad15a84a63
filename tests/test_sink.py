"""The gzipped TFRecord sink: files every reader takes, at the level their records fit."""

from __future__ import annotations

import gzip

import apache_beam as beam
import numpy as np
import tensorflow as tf
from apache_beam.testing.util import assert_that, equal_to
from tfx_image_augment.offline.beam import sink
from tfx_image_augment.offline.beam.sink import GzipTFRecordSink

from pipelines.data import image_example, photo_crops
from tests.records import read_records


def _write(records: list[bytes], prefix: str, num_shards: int = 1) -> list[str]:
    with beam.Pipeline() as pipeline:
        _ = (
            pipeline
            | beam.Create(records, reshuffle=False)
            | beam.io.Write(GzipTFRecordSink(prefix, ".gz", num_shards))
        )
    return sorted(tf.io.gfile.glob(prefix + "*"))


def _photo_records(count: int, encoding: str) -> list[bytes]:
    photos = photo_crops(224, count, seed=3)
    encode = {
        "jpeg": lambda p: tf.io.encode_jpeg(p, quality=95).numpy(),
        "raw": lambda p: p.tobytes(),
    }[encoding]
    return [image_example(encode(p), i % 3, f"p{i}") for i, p in enumerate(photos)]


def test_files_are_named_like_write_to_tfrecord_and_read_by_tensorflow_beam_and_gzip(tmp_path):
    records = _photo_records(6, "jpeg")
    files = _write(records, str(tmp_path / "data"), num_shards=2)
    assert [f.rsplit("/", 1)[1] for f in files] == [
        "data-00000-of-00002.gz",
        "data-00001-of-00002.gz",
    ]
    assert sorted(read_records(str(tmp_path / "data*"))) == sorted(records)
    with beam.Pipeline() as pipeline:
        read = pipeline | beam.io.ReadFromTFRecord(str(tmp_path / "data*"))
        assert_that(read, equal_to(records))
    # Python's gzip reads the frames: length, its masked CRC, data, its masked CRC.
    raw = b"".join(gzip.decompress(open(f, "rb").read()) for f in files)
    assert len(raw) == sum(len(r) + 16 for r in records)
    first_length = int.from_bytes(raw[:8], "little")
    assert raw[12 : 12 + first_length] in records


def test_encoded_images_are_stored_and_raw_pixels_compressed(tmp_path):
    jpegs = _photo_records(4, "jpeg")
    (stored,) = _write(jpegs, str(tmp_path / "jpeg"))
    framed = sum(len(r) + 16 for r in jpegs)
    # Stored blocks: the frames plus a few bytes of gzip and block headers, no deflate.
    assert framed < tf.io.gfile.stat(stored).length < framed * 1.01
    pixels = _photo_records(4, "raw")
    (compressed,) = _write(pixels, str(tmp_path / "raw"))
    assert tf.io.gfile.stat(compressed).length < 0.9 * sum(len(r) + 16 for r in pixels)
    assert read_records(compressed) == pixels
    assert sink.level_for(jpegs[0]) == sink.STORED and sink.level_for(pixels[0]) == sink.FAST


def test_the_masked_crc_is_tensorflows(tmp_path):
    # TensorFlow checks both CRCs of every record on read: records of every length round-trip.
    records = [bytes(np.random.default_rng(n).integers(0, 256, n, np.uint8)) for n in range(40)]
    _write(records, str(tmp_path / "crc"))
    assert read_records(str(tmp_path / "crc*")) == records


def test_an_empty_shard_is_a_valid_empty_gzip_file(tmp_path):
    files = _write([], str(tmp_path / "empty"), num_shards=1)
    assert len(files) == 1 and gzip.decompress(open(files[0], "rb").read()) == b""
    assert read_records(files[0]) == []
