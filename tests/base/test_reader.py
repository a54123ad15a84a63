"""The reader needs TensorFlow only: real digits written as TFRecords (gzipped or not, in a
CLI-style folder or a TFX Split- layout) come back as the same pixels and labels."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.io.reader import read_images

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


def _marked(folder, digits, labels, split_dirs):
    """Writes each split's digits as one gzipped shard, then the completion marker listing them
    (as a finished run does); `split_dirs` maps split -> folder relative to `folder`."""
    from tfx_image_augment.io.completion import describe_output, write_marker

    counts = {}
    for i, (split, relative) in enumerate(split_dirs.items()):
        shard = folder / relative / f"data_tfrecord-{split}-00000-of-00001.gz"
        _write(shard, digits[i * 8 : i * 8 + 8], labels[i * 8 : i * 8 + 8], gzip=True)
        counts[split] = 8
    write_marker(
        str(folder),
        describe_output(str(folder), split_dirs, counts, "data_tfrecord", [], "quarantine", 0),
    )


def test_a_marked_folder_is_read_through_its_marker_alone(tmp_path):
    from tfx_image_augment.io.completion import IncompleteOutputError

    digits, labels = real.digits(32)
    out = tmp_path / "out"
    _marked(out, digits, labels, {"data": ""})
    # A shard the marker does not list (an earlier run's, a half-written one) is not read.
    _write(out / "data_tfrecord-stale-00000-of-00002.gz", digits[20:25], labels[20:25], True)
    pairs = list(read_images(str(out), channels=1).as_numpy_iterator())
    assert _by_label(pairs) == _by_label(zip(digits[:8], labels[:8], strict=True))

    shard = out / "data_tfrecord-data-00000-of-00001.gz"
    size = shard.stat().st_size
    shard.write_bytes(shard.read_bytes()[:-10])
    with pytest.raises(IncompleteOutputError) as raised:
        read_images(str(out))
    assert str(raised.value) == (
        f"{shard} has {size - 10} bytes, its completion marker says {size}: the folder was "
        "changed after the run that wrote it."
    )


def test_an_artifact_is_read_by_split_and_its_split_folders_through_its_marker(tmp_path):
    digits, labels = real.digits(32)
    artifact = tmp_path / "artifact"
    _marked(artifact, digits, labels, {"train": "Split-train", "eval": "Split-eval"})
    _write(artifact / "Split-train/data_tfrecord-stale.gz", digits[30:33], labels[30:33], True)
    for source in (
        read_images(str(artifact), channels=1, split="eval"),
        read_images(str(artifact / "Split-eval"), channels=1),
    ):
        assert _by_label(source.as_numpy_iterator()) == _by_label(
            zip(digits[8:16], labels[8:16], strict=True)
        )
    assert len(list(read_images(str(artifact / "Split-train"), channels=1))) == 8
    with pytest.raises(RuntimeError, match=r"holds the splits \['eval', 'train'\]: name one"):
        read_images(str(artifact))


def test_an_image_augment_folder_without_its_marker_is_refused_with_the_reason(tmp_path):
    from tfx_image_augment.io.completion import IncompleteOutputError

    digits, labels = real.digits(32)
    out = tmp_path / "out"  # what a run killed before publishing left, with an older version
    _write(out / "data_tfrecord-copies-00000-of-00001.gz", digits[:4], labels[:4], True)
    (out / "augment_summary.json").write_text("{}")
    artifact = tmp_path / "artifact"  # an executor's folder without its marker
    _write(artifact / "Split-train/data_tfrecord-00000-of-00001.gz", digits[:4], labels[:4], True)
    (artifact / "quarantine").mkdir()
    for path, split, folder in (
        (out, None, out),
        (artifact, "train", artifact),
        (artifact / "Split-train", None, artifact),
    ):
        with pytest.raises(IncompleteOutputError) as raised:
            read_images(str(path), split=split)
        assert str(raised.value) == (
            f"{folder} was written by image-augment but has no completion marker (_SUCCESS): "
            "the run that wrote it failed, was stopped or is still running (or an older "
            "version wrote it). Run it again (the CLI with --overwrite)."
        )
    # A glob is the caller's own choice of files, and is read as it matches.
    assert len(list(read_images(str(out / "data_tfrecord-*"), channels=1))) == 4


def test_another_tools_success_file_is_not_a_marker(tmp_path):
    digits, labels = real.digits(32)
    _write(tmp_path / "spark/part-r-00000.tfrecord", digits[:5], labels[:5], gzip=False)
    (tmp_path / "spark/_SUCCESS").write_text("")  # Spark's and Hadoop's: empty
    pairs = list(read_images(str(tmp_path / "spark"), channels=1).as_numpy_iterator())
    assert _by_label(pairs) == _by_label(zip(digits[:5], labels[:5], strict=True))


def test_images_keep_their_channels_and_records_come_shuffled_unless_asked_not_to(tmp_path):
    digits, labels = real.digits(32)  # 1-channel PNGs
    photos = real.photo_crops(32, 4)  # 3-channel PNGs
    _write(tmp_path / "gray.tfrecord", digits[:40], labels[:40], gzip=False)
    _write(tmp_path / "colour.tfrecord", photos, [0, 1, 2, 3], gzip=False)
    gray = next(iter(read_images(str(tmp_path / "gray.tfrecord"))))[0]
    colour = next(iter(read_images(str(tmp_path / "colour.tfrecord"))))[0]
    assert gray.shape == (32, 32, 1) and colour.shape == (32, 32, 3)  # as written

    def order(**kwargs):
        pairs = read_images(str(tmp_path / "gray.tfrecord"), **kwargs).as_numpy_iterator()
        return [image.tobytes() for image, _ in pairs]

    in_file_order = order(shuffle_buffer=0)
    assert in_file_order == [d.tobytes() for d in digits[:40]]
    assert order(seed=1) == order(seed=1) != in_file_order  # shuffled, reproducibly by seed
    assert sorted(order()) == sorted(in_file_order)
