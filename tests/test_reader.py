"""The reader needs TensorFlow only: real digits written as TFRecords (gzipped or not, in a
CLI-style folder or a TFX Split- layout) come back as the same pixels and labels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.reader import read_images

from pipelines.data import image_example
from tests import images as real


def _write(path, images, labels, gzip: bool) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    options = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    with tf.io.TFRecordWriter(str(path), options) as writer:
        for i, (image, label) in enumerate(zip(images, labels, strict=True)):
            writer.write(image_example(tf.io.encode_png(image).numpy(), label, f"d{i}"))


def _by_label(pairs):
    return sorted(((int(label), image.tobytes()) for image, label in pairs))


def test_gzipped_and_plain_files_read_back_as_the_same_pixels_and_labels(tmp_path):
    digits, labels = real.digits(32)
    _write(tmp_path / "a.tfrecord.gz", digits[:10], labels[:10], gzip=True)
    _write(tmp_path / "b.tfrecord", digits[10:16], labels[10:16], gzip=False)
    pairs = list(read_images(str(tmp_path / "*.tfrecord*"), channels=1).as_numpy_iterator())
    assert _by_label(pairs) == _by_label(zip(digits[:16], labels[:16], strict=True))


def test_a_tfx_split_folder_and_batches(tmp_path):
    digits, labels = real.digits(32)
    _write(tmp_path / "Split-train/data_tfrecord-00000-of-00001.gz", digits[:8], labels[:8], True)
    _write(
        tmp_path / "Split-eval/data_tfrecord-00000-of-00001.gz", digits[8:11], labels[8:11], True
    )
    batch_images, batch_labels = next(
        iter(read_images(str(tmp_path), channels=1, split="eval", batch_size=8))
    )
    assert batch_images.shape == (3, 32, 32, 1) and batch_images.dtype == tf.uint8
    assert sorted(batch_labels.numpy().tolist()) == sorted(labels[8:11].tolist())
    np.testing.assert_array_equal(np.sort(batch_images.numpy(), axis=0), np.sort(digits[8:11], 0))


def test_nothing_to_read_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="No TFRecord files"):
        read_images(str(tmp_path / "missing-*"))
