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

The marker also lists everything else the run wrote there (`contents`: every file, recursively,
with its size, and every folder), so a folder is known to be image-augment's by what its marker
lists, never by the names in it: `foreign_path` names the first thing in a folder that no
marker of ours lists (a file someone added, or changed), and `--overwrite` refuses such a folder.

    "contents": {"files": {"augment_summary.json": 412, "augmentation_model/policy.json": 980,
                           "data_tfrecord-copies-00000-of-00001.gz": 51234, ...},
                 "folders": ["augmentation_model", "augmentation_model/saved_model", ...]}

While a folder is being published object by object (gs://), `_PUBLISHING` (same format, no
splits) lists what may be in it; it is deleted once the marker is written.
"""

from __future__ import annotations

import json
import os
import posixpath
from collections.abc import Iterable, Mapping

from tfx_image_augment.core.lazy import tf

MARKER_FILE = "_SUCCESS"
PENDING_FILE = "_PUBLISHING"  # the contents of a folder being published object by object
CONTENTS_KEY = "contents"
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


def list_contents(folder: str) -> dict:
    """{"files": {relative path: size}, "folders": [relative path]} of everything under
    `folder`, recursively (its own marker and pending list aside)."""
    files: dict[str, int] = {}
    folders: list[str] = []
    base = folder.rstrip("/")
    for directory, subdirs, names in tf.io.gfile.walk(folder):
        relative_dir = directory.rstrip("/")[len(base) :].strip("/").replace(os.sep, "/")
        for subdir in subdirs:
            folders.append(posixpath.join(relative_dir, subdir.rstrip("/")))
        for name in names:
            relative = posixpath.join(relative_dir, name)
            if relative in (MARKER_FILE, PENDING_FILE):
                continue
            files[relative] = tf.io.gfile.stat(os.path.join(directory, name)).length
    return {"files": dict(sorted(files.items())), "folders": sorted(folders)}


def write_marker(folder: str, marker: dict, name: str = MARKER_FILE) -> None:
    """Writes `folder/_SUCCESS` (or `name`), adding the list of everything in `folder`
    (`contents`) unless `marker` has it; the caller does so last."""
    if CONTENTS_KEY not in marker:
        marker = {**marker, CONTENTS_KEY: list_contents(folder)}
    with tf.io.gfile.GFile(os.path.join(folder, name), "w") as handle:
        handle.write(json.dumps(marker, indent=2, sort_keys=True) + "\n")


def read_marker(folder: str, name: str = MARKER_FILE) -> dict | None:
    """The marker of `folder`, or None when it has none of ours (another tool's `_SUCCESS`,
    e.g. Spark's empty one, is not ours)."""
    path = os.path.join(folder, name)
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
        name in (MARKER_FILE, PENDING_FILE, SUMMARY_FILE, MODEL_DIR, QUARANTINE_DIR)
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


def _owned(folder: str) -> tuple[dict[str, set[int]], set[str]]:
    """({file: its sizes}, folders) that the markers of `folder` say image-augment wrote there:
    its `_SUCCESS`, and while it is being published object by object, `_PUBLISHING` (which
    lists the new contents and the `previous` ones)."""
    files: dict[str, set[int]] = {}
    folders: set[str] = set()
    for name in (MARKER_FILE, PENDING_FILE):
        marker = read_marker(folder, name) or {}
        for contents in (marker.get(CONTENTS_KEY), marker.get("previous")):
            if not isinstance(contents, dict):
                continue
            for relative, size in (contents.get("files") or {}).items():
                files.setdefault(relative, set()).add(size)
            folders.update(contents.get("folders") or [])
    return files, folders


def _first_file(folder: str, relative_dir: str) -> str | None:
    """The first file (relative to `folder`) under its subfolder `relative_dir`, if any."""
    for directory, _, names in tf.io.gfile.walk(_join(folder, relative_dir)):
        if names:
            inner = directory.rstrip("/")[len(folder.rstrip("/")) :].strip("/")
            return posixpath.join(inner.replace(os.sep, "/"), sorted(names)[0])
    return None


def foreign_path(folder: str) -> str | None:
    """The first path under `folder` (relative, `/`-separated) that no marker of ours lists:
    a file someone added or changed (its size differs), a folder we did not make (its first
    file, if it has one), a symbolic link, a FIFO. None when the markers list everything
    there: the folder is image-augment's own output, whole (its marker and pending list
    aside). Without a marker of ours the first entry is foreign."""
    files, folders = _owned(folder)
    own = {MARKER_FILE} if read_marker(folder) is not None else set()
    if read_marker(folder, PENDING_FILE) is not None:
        own.add(PENDING_FILE)
    local = "://" not in folder or folder.startswith("file://")

    def visit(relative_dir: str) -> str | None:
        directory = _join(folder, relative_dir) if relative_dir else folder
        for entry in sorted(e.rstrip("/") for e in tf.io.gfile.listdir(directory)):
            relative = posixpath.join(relative_dir, entry)
            if relative in own:
                continue
            path = os.path.join(directory, entry)
            if local and os.path.islink(path.removeprefix("file://")):
                return relative
            if tf.io.gfile.isdir(path):
                if relative not in folders:
                    return _first_file(folder, relative) or relative
                found = visit(relative)
                if found:
                    return found
            elif local and not os.path.isfile(path.removeprefix("file://")):
                return relative  # a FIFO, a socket, a device
            elif tf.io.gfile.stat(path).length not in files.get(relative, ()):
                return relative
        return None

    return visit("")
