"""The completion marker: the one file that says an output folder is whole, and what it holds.

A run writes `_SUCCESS` last, only after its data, quarantine, model and summary are complete
and every check passed. It lists each TFRecord file of each split and of the quarantine, with
its size in bytes, and each split's record count (from the run's counters):

    {"format": "image-augment-output/1",
     "splits": {"data": {"records": 160, "files": {"data_tfrecord-copies-00000-of-00001.gz": 51234,
                                                   ...}}},
     "quarantine": {"records": 0, "files": {"quarantine/Split-data/quarantine_tfrecord-...": 20}}}

Paths are relative to the folder. Readers trust the marker and nothing else: they read exactly
the files it lists, and refuse a folder that image-augment wrote but that has no marker (the run
failed, was stopped, or an older version wrote it). Needs TensorFlow only (tf.io.gfile, so
gs:// works too).
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Mapping

import tensorflow as tf

MARKER_FILE = "_SUCCESS"
MARKER_FORMAT = "image-augment-output/1"
SUMMARY_FILE = "augment_summary.json"
MODEL_DIR = "augmentation_model"
QUARANTINE_DIR = "quarantine"
BEAM_TEMP_PREFIX = "beam-temp-"
STAGING_INFIX = ".staging-"


class IncompleteOutputError(RuntimeError):
    """An image-augment output folder without a valid completion marker."""


def _join(folder: str, relative: str) -> str:
    return os.path.join(folder, *relative.split("/"))


def _tfrecord_files(folder: str, relative_dir: str, prefix: str) -> dict[str, int]:
    """{path relative to `folder`: size} of the files `relative_dir/prefix*` (not folders)."""
    base = _join(folder, relative_dir) if relative_dir else folder
    files = {}
    for path in sorted(tf.io.gfile.glob(os.path.join(base, f"{prefix}*"))):
        if tf.io.gfile.isdir(path):
            continue
        name = (
            posixpath.join(relative_dir, os.path.basename(path))
            if relative_dir
            else (os.path.basename(path))
        )
        files[name] = tf.io.gfile.stat(path).length
    return files


def describe_output(
    folder: str,
    split_dirs: Mapping[str, str],
    split_records: Mapping[str, int],
    data_prefix: str,
    quarantine_dirs: Iterable[str],
    quarantine_prefix: str,
    quarantine_records: int,
) -> dict:
    """The marker of the output laid out in `folder`: `split_dirs` maps each split to its folder
    relative to `folder` ("" for the folder itself), `quarantine_dirs` lists the quarantine's."""
    quarantine_files: dict[str, int] = {}
    for relative_dir in quarantine_dirs:
        quarantine_files.update(_tfrecord_files(folder, relative_dir, quarantine_prefix))
    return {
        "format": MARKER_FORMAT,
        "splits": {
            name: {
                "records": int(split_records[name]),
                "files": _tfrecord_files(folder, relative_dir, data_prefix),
            }
            for name, relative_dir in split_dirs.items()
        },
        "quarantine": {"records": int(quarantine_records), "files": quarantine_files},
    }


def write_marker(folder: str, marker: dict) -> None:
    """Writes `folder/_SUCCESS`; the caller does so last."""
    with tf.io.gfile.GFile(os.path.join(folder, MARKER_FILE), "w") as handle:
        handle.write(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def read_marker(folder: str) -> dict | None:
    """The marker of `folder`, or None when it has none of ours (another tool's `_SUCCESS`,
    e.g. Spark's empty one, is not ours)."""
    path = os.path.join(folder, MARKER_FILE)
    if not tf.io.gfile.exists(path) or tf.io.gfile.isdir(path):
        return None
    with tf.io.gfile.GFile(path) as handle:
        text = handle.read()
    try:
        marker = json.loads(text)
    except json.JSONDecodeError:
        return None
    if not isinstance(marker, dict) or marker.get("format") != MARKER_FORMAT:
        return None
    return marker


def is_image_augment_entry(name: str) -> bool:
    """Whether a folder entry is one an image-augment run writes (a data shard is matched by
    the caller, which knows the prefix)."""
    return (
        name in (MARKER_FILE, SUMMARY_FILE, MODEL_DIR, QUARANTINE_DIR)
        or name.startswith(BEAM_TEMP_PREFIX)
        or STAGING_INFIX in name
    )


def looks_like_output(folder: str) -> bool:
    """Whether `folder` holds what only an image-augment run writes (summary, model,
    quarantine, Beam's temporary folders, a staging folder)."""
    try:
        entries = tf.io.gfile.listdir(folder)
    except tf.errors.NotFoundError:
        return False
    return any(
        is_image_augment_entry(entry.rstrip("/")) and entry.rstrip("/") != MARKER_FILE
        for entry in entries
    )


def listed_files(folder: str, marker: dict, split: str | None) -> list[str]:
    """The files of `split` that `marker` lists, each checked to be there with its size.

    `split` may be None when the output has one split. Raises IncompleteOutputError naming the
    first file that is missing or changed, or the splits when `split` is not one of them."""
    splits = marker["splits"]
    if split is None:
        if len(splits) != 1:
            raise IncompleteOutputError(
                f"{folder} holds the splits {sorted(splits)}: name one (split=...)."
            )
        (split,) = splits
    if split not in splits:
        raise IncompleteOutputError(
            f"{folder} has no split {split!r}; its marker lists {sorted(splits)}."
        )
    paths = []
    for relative, size in sorted(splits[split]["files"].items()):
        path = _join(folder, relative)
        if not tf.io.gfile.exists(path):
            raise IncompleteOutputError(
                f"{path} is listed in {os.path.join(folder, MARKER_FILE)} but is missing: the "
                "folder was changed after the run that wrote it."
            )
        actual = tf.io.gfile.stat(path).length
        if actual != size:
            raise IncompleteOutputError(
                f"{path} has {actual} bytes, its completion marker says {size}: the folder "
                "was changed after the run that wrote it."
            )
        paths.append(path)
    return paths
