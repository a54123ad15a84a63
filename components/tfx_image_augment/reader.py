"""Reading augmented (or any TFX-layout) TFRecords back as a `tf.data.Dataset`.

    from tfx_image_augment.reader import read_images
    dataset = read_images("out/")                    # the CLI's output folder
    dataset = read_images("tfx_output/.../Split-train/*")   # a glob, gzipped or not

Elements are `(image, label)`: uint8 [H, W, C] decoded from PNG/JPEG, and the label as int64.
Only TensorFlow is needed, so any training job can use it.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfx_image_augment.records import DATA_PREFIX, compression_of


def resolve_files(path_or_glob: str, split: str | None = None) -> list[str]:
    """The TFRecord files of an output folder (its data_tfrecord-* or Split-<split>/*) or glob."""
    if tf.io.gfile.isdir(path_or_glob):
        base = path_or_glob
        if split is not None:
            base = os.path.join(base, f"Split-{split}")
        pattern = os.path.join(base, f"{DATA_PREFIX}*")
        files = tf.io.gfile.glob(pattern) or tf.io.gfile.glob(os.path.join(base, "*"))
    else:
        files = tf.io.gfile.glob(path_or_glob)
    files = sorted(f for f in files if not tf.io.gfile.isdir(f))
    if not files:
        raise FileNotFoundError(
            f"No TFRecord files at {path_or_glob!r}"
            + (f" (split {split!r})" if split else "")
            + "."
        )
    return files


def read_images(
    path_or_glob: str,
    image_feature: str = "image",
    label_feature: str = "label",
    channels: int = 3,
    split: str | None = None,
    batch_size: int | None = None,
    shuffle_buffer: int = 0,
    seed: int | None = None,
) -> tf.data.Dataset:
    """A dataset of (decoded uint8 image, int64 label) from TFRecords of tf.Examples."""
    files = resolve_files(path_or_glob, split)
    # One dataset per compression: a TFRecordDataset reads all its files with one.
    by_compression: dict[str, list[str]] = {}
    for path in files:
        by_compression.setdefault(compression_of(path), []).append(path)
    parts = [
        tf.data.TFRecordDataset(group, compression_type=kind, num_parallel_reads=tf.data.AUTOTUNE)
        for kind, group in by_compression.items()
    ]
    records = parts[0]
    for part in parts[1:]:
        records = records.concatenate(part)
    if shuffle_buffer:
        records = records.shuffle(shuffle_buffer, seed=seed)
    spec = {
        image_feature: tf.io.FixedLenFeature([], tf.string),
        label_feature: tf.io.FixedLenFeature([], tf.int64),
    }

    def decode(record):
        parsed = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_image(
            parsed[image_feature], channels=channels, expand_animations=False
        )
        return image, parsed[label_feature]

    dataset = records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
    if batch_size:
        dataset = dataset.batch(batch_size)
    return dataset.prefetch(tf.data.AUTOTUNE)


def read_detection(
    path_or_glob: str,
    image_feature: str = "image/encoded",
    label_feature: str = "image/object/class/label",
    box_feature_prefix: str = "image/object/bbox/",
    keypoint_feature_prefix: str | None = None,
    channels: int = 3,
    split: str | None = None,
) -> tf.data.Dataset:
    """Object Detection API records as dicts: "image" uint8 [H, W, C], "boxes" float [N, 4]
    (ymin, xmin, ymax, xmax, as stored), "labels" int64 [N], and with `keypoint_feature_prefix`
    (e.g. "image/object/keypoint/") "keypoints" [N, K, 2] (y, x) and "keypoint_visibility"
    int64 [N, K]. N differs per image: batch with `dataset.ragged_batch(n)`."""
    files = resolve_files(path_or_glob, split)
    by_compression: dict[str, list[str]] = {}
    for path in files:
        by_compression.setdefault(compression_of(path), []).append(path)
    parts = [
        tf.data.TFRecordDataset(group, compression_type=k) for k, group in by_compression.items()
    ]
    records = parts[0]
    for part in parts[1:]:
        records = records.concatenate(part)
    sides = ("ymin", "xmin", "ymax", "xmax")
    spec = {
        image_feature: tf.io.FixedLenFeature([], tf.string),
        label_feature: tf.io.VarLenFeature(tf.int64),
        **{box_feature_prefix + s: tf.io.VarLenFeature(tf.float32) for s in sides},
    }
    if keypoint_feature_prefix:
        spec.update(
            {
                keypoint_feature_prefix + "y": tf.io.VarLenFeature(tf.float32),
                keypoint_feature_prefix + "x": tf.io.VarLenFeature(tf.float32),
                keypoint_feature_prefix + "visibility": tf.io.VarLenFeature(tf.int64),
            }
        )

    def decode(record):
        parsed = tf.io.parse_single_example(record, spec)
        dense = {k: tf.sparse.to_dense(v) for k, v in parsed.items() if k != image_feature}
        boxes = tf.stack([dense[box_feature_prefix + s] for s in sides], axis=-1)
        out = {
            "image": tf.io.decode_image(
                parsed[image_feature], channels=channels, expand_animations=False
            ),
            "boxes": boxes,
            "labels": dense[label_feature],
        }
        if keypoint_feature_prefix:
            count = tf.shape(boxes)[0]
            points = tf.stack(
                [dense[keypoint_feature_prefix + "y"], dense[keypoint_feature_prefix + "x"]], -1
            )
            out["keypoints"] = tf.reshape(points, [count, -1, 2])
            out["keypoint_visibility"] = tf.reshape(
                dense[keypoint_feature_prefix + "visibility"], [count, -1]
            )
        return out

    return records.map(decode, num_parallel_calls=tf.data.AUTOTUNE)
