"""Reading augmented (or any TFX-layout) TFRecords back as a `tf.data.Dataset`.

    from tfx_image_augment.io.reader import read_images
    dataset = read_images("out/")                    # the CLI's output folder
    dataset = read_images(artifact_uri, split="train")       # ImageAugment's Examples artifact
    dataset = read_images("tfx_output/.../Split-train/*")   # a glob, gzipped or not

An image-augment output folder is read through its completion marker (see completion.py):
exactly the files it lists, and a folder that image-augment wrote without one (a failed or
stopped run) is refused with the reason. Globs are read as they match.

Elements are `(image, label)`: uint8 [H, W, C] decoded from PNG/JPEG, and the label as int64,
or with `num_classes` a float target [num_classes] (soft for mixed copies). Only TensorFlow is
needed, so any training job can use it.
"""

from __future__ import annotations

import os

import tensorflow as tf

from tfx_image_augment.io.completion import (
    MARKER_FILE,
    IncompleteOutputError,
    listed_files,
    looks_like_output,
    read_marker,
)
from tfx_image_augment.io.records import (
    BOX_SIDES,
    DATA_PREFIX,
    MIX_PARTNER_LABEL_FEATURE,
    MIX_WEIGHT_FEATURE,
    compression_of,
)

SPLIT_PREFIX = "Split-"
# Records held for shuffling by default: far more than the copies of one image (K + 1).
SHUFFLE_BUFFER = 10_000


def _refuse_unmarked(folder: str) -> None:
    if looks_like_output(folder):
        raise IncompleteOutputError(
            f"{folder} was written by image-augment but has no completion marker "
            f"({MARKER_FILE}): the run that wrote it failed, was stopped or is still running "
            "(or an older version wrote it). Run it again (the CLI with --overwrite)."
        )


def _marked_files(folder: str, split: str | None) -> list[str] | None:
    """The files that the completion marker of `folder` (or, for a Split- folder, of the
    artifact around it) lists; None when neither is an image-augment output."""
    folder = folder.rstrip("/") or folder
    marker = read_marker(folder)
    if marker is not None:
        return listed_files(folder, marker, split)
    _refuse_unmarked(folder)
    parent, name = os.path.split(folder)
    if name.startswith(SPLIT_PREFIX) and split is None and parent:
        parent_marker = read_marker(parent)
        if parent_marker is not None:
            return listed_files(parent, parent_marker, name[len(SPLIT_PREFIX) :])
        _refuse_unmarked(parent)
    return None


def resolve_files(path_or_glob: str, split: str | None = None) -> list[str]:
    """The TFRecord files to read from `path_or_glob`:

    - an image-augment output folder (the CLI's, or ImageAugment's Examples artifact): the
      files of `split` (None: its only split) that its completion marker lists, each checked
      to be there unchanged; without a marker it is refused (IncompleteOutputError);
    - a `Split-<name>` folder of such an artifact: the files the artifact's marker lists;
    - any other folder: its data_tfrecord-* files, else `Split-<split>/*` or all its files;
    - a glob: the files it matches.
    """
    if not tf.io.gfile.isdir(path_or_glob):
        files = tf.io.gfile.glob(path_or_glob)
    else:
        files = _marked_files(path_or_glob, split)
        if files is None:
            base = path_or_glob
            if split is not None:
                base = os.path.join(base, f"{SPLIT_PREFIX}{split}")
            pattern = os.path.join(base, f"{DATA_PREFIX}*")
            files = tf.io.gfile.glob(pattern) or tf.io.gfile.glob(os.path.join(base, "*"))
    files = sorted(f for f in files if not tf.io.gfile.isdir(f))
    if not files:
        raise FileNotFoundError(
            f"No TFRecord files at {path_or_glob!r}"
            + (f" (split {split!r})" if split else "")
            + "."
        )
    return files


def _records(files: list[str]) -> tf.data.Dataset:
    """The serialized records of `files`, gzipped or not: one TFRecordDataset per compression
    (a TFRecordDataset reads all its files with one)."""
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
    return records


def read_images(
    path_or_glob: str,
    image_feature: str = "image",
    label_feature: str = "label",
    channels: int = 0,
    split: str | None = None,
    batch_size: int | None = None,
    shuffle_buffer: int = SHUFFLE_BUFFER,
    seed: int | None = None,
    num_classes: int | None = None,
) -> tf.data.Dataset:
    """A dataset of (decoded uint8 image, int64 label) from TFRecords of tf.Examples.

    Images keep the channels they were written with (`channels=0`); give 1 or 3 to convert.
    The records are shuffled through a buffer of `shuffle_buffer` (a written dataset holds the
    copies of one image side by side; a buffer larger than K + 1 spreads them apart), in an
    order fixed by `seed` when given; `shuffle_buffer=0` reads them in file order.
    With `num_classes`, the label is a float32 target [num_classes]: one-hot, or for a copy of
    a mixing policy (mixup, cutmix) `w * one_hot(label) + (1 - w) * one_hot(partner label)`
    from its `aug_mix_weight` and `aug_mix_partner_label` (train with a loss that takes soft
    targets, e.g. `CategoricalCrossentropy`).
    """
    records = _records(resolve_files(path_or_glob, split))
    if shuffle_buffer:
        records = records.shuffle(shuffle_buffer, seed=seed)
    spec = {
        image_feature: tf.io.FixedLenFeature([], tf.string),
        label_feature: tf.io.FixedLenFeature([], tf.int64),
    }
    if num_classes:
        # An original, or a copy that no mixing op touched, has weight 1: its partner's label
        # (0 when absent) then counts for nothing.
        spec[MIX_WEIGHT_FEATURE] = tf.io.FixedLenFeature([], tf.float32, default_value=1.0)
        spec[MIX_PARTNER_LABEL_FEATURE] = tf.io.FixedLenFeature([], tf.int64, default_value=0)

    def decode(record):
        parsed = tf.io.parse_single_example(record, spec)
        image = tf.io.decode_image(
            parsed[image_feature], channels=channels, expand_animations=False
        )
        if not num_classes:
            return image, parsed[label_feature]
        weight = parsed[MIX_WEIGHT_FEATURE]
        own = tf.one_hot(parsed[label_feature], num_classes)
        partner = tf.one_hot(parsed[MIX_PARTNER_LABEL_FEATURE], num_classes)
        return image, weight * own + (1.0 - weight) * partner

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
    instance_mask_feature: str | None = None,
) -> tf.data.Dataset:
    """Object Detection API records as dicts: "image" uint8 [H, W, C], "boxes" float [N, 4]
    (ymin, xmin, ymax, xmax, as stored), "labels" int64 [N], with `keypoint_feature_prefix`
    (e.g. "image/object/keypoint/") "keypoints" [N, K, 2] (y, x) and "keypoint_visibility"
    int64 [N, K], and with `instance_mask_feature` (e.g. "image/object/mask", one PNG per
    object) "instance_masks" uint8 [N, H, W] (the stored values). N differs per image: batch
    with `dataset.ragged_batch(n)`."""
    records = _records(resolve_files(path_or_glob, split))
    sides = BOX_SIDES
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
    if instance_mask_feature:
        spec[instance_mask_feature] = tf.io.VarLenFeature(tf.string)

    def decode(record):
        parsed = tf.io.parse_single_example(record, spec)
        dense = {k: tf.sparse.to_dense(v) for k, v in parsed.items() if k != image_feature}
        boxes = tf.stack([dense[box_feature_prefix + s] for s in sides], axis=-1)
        image = tf.io.decode_image(
            parsed[image_feature], channels=channels, expand_animations=False
        )
        out = {"image": image, "boxes": boxes, "labels": dense[label_feature]}
        if instance_mask_feature:
            out["instance_masks"] = _decoded_masks(dense[instance_mask_feature], tf.shape(image))
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


def _decoded_masks(encoded: tf.Tensor, image_shape: tf.Tensor) -> tf.Tensor:
    """uint8 [N, H, W] of N encoded one-channel masks ([0, H, W] for none)."""

    def one(data):
        return tf.io.decode_image(data, channels=1, expand_animations=False)[..., 0]

    return tf.cond(
        tf.size(encoded) > 0,
        lambda: tf.map_fn(one, encoded, fn_output_signature=tf.TensorSpec([None, None], tf.uint8)),
        lambda: tf.zeros([0, image_shape[0], image_shape[1]], tf.uint8),
    )
