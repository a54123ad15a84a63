"""Reading and writing TFRecord files in tests: TensorFlow only (base install)."""

from __future__ import annotations

import pathlib
from collections.abc import Iterable

import tensorflow as tf
from tfx_image_augment.io.records import compression_of


def read_records(pattern: str) -> list[bytes]:
    """All records of the TFRecord files matching `pattern`, gzipped or not."""
    records = []
    for path in sorted(tf.io.gfile.glob(pattern)):
        records.extend(r.numpy() for r in tf.data.TFRecordDataset(path, compression_of(path)))
    return records


def write_records(path: pathlib.Path, records: Iterable[bytes], gzip: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else None)
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for record in records:
            writer.write(record)
