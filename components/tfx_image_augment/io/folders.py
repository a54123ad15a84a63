"""Images straight from folders, as TFX-layout tf.Examples.

The layout Keras's `image_dataset_from_directory` reads: `root/<class>/<image>` (labels from
the folder names, sorted, as their index) or a flat `root/<image>` (no labels). Each image file
becomes one record with `image` (its bytes, as stored), `id` (its path relative to `root`, the
stable key its seeds derive from) and, with classes, `label` (int64 index) and `label_text`.
Files without an image suffix are skipped and counted, as Keras does.
"""

from __future__ import annotations

import dataclasses
import os

IMAGE_SUFFIXES = (".bmp", ".gif", ".jpeg", ".jpg", ".png")
LABELS_FILE = "labels.txt"  # written beside the output: class names, one per line, by index
ID_FEATURE, LABEL_FEATURE, LABEL_TEXT_FEATURE = "id", "label", "label_text"


@dataclasses.dataclass(frozen=True)
class ImageFolder:
    """A folder of images: its files (relative paths, sorted) and class names (sorted)."""

    root: str
    files: tuple[str, ...]
    class_names: tuple[str, ...]  # empty for a flat folder
    skipped: int = 0  # files without an image suffix

    def label_of(self, relative_path: str) -> int | None:
        if not self.class_names:
            return None
        return self.class_names.index(relative_path.split("/", 1)[0])


def _gfile():
    import tensorflow as tf  # only for remote folders (gs://...)

    return tf.io.gfile


def _walk(root: str):
    if "://" in root:
        yield from _gfile().walk(root)
    else:
        yield from os.walk(root)


def scan_folder(root: str) -> ImageFolder:
    """The images under `root`: one level of class subfolders, or images directly in it.

    Raises ValueError with one sentence when there are no images, or when images sit both
    directly in `root` and in subfolders (which layout is meant cannot be told).
    """
    root = root.rstrip("/") or "/"
    top_files, class_files, skipped = [], {}, 0
    for folder, subfolders, names in _walk(root):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        relative = os.path.relpath(folder, root) if "://" not in root else folder[len(root) :]
        relative = relative.strip("/")
        depth = 0 if relative in ("", ".") else relative.count("/") + 1
        for name in sorted(names):
            if name.startswith("."):
                continue
            if not name.lower().endswith(IMAGE_SUFFIXES):
                skipped += 1
                continue
            if depth == 0:
                top_files.append(name)
            else:
                class_files.setdefault(relative.split("/")[0], []).append(f"{relative}/{name}")
    if top_files and class_files:
        raise ValueError(
            f"--input {root} holds images both directly ({top_files[0]}) and in class folders "
            f"({sorted(class_files)[0]}/): use one layout, root/<class>/<image> or root/<image>."
        )
    if not top_files and not class_files:
        raise ValueError(
            f"--input {root} is a folder without image files ({', '.join(IMAGE_SUFFIXES)}); "
            f"for TFRecord files give a glob, e.g. '{root}/*'."
        )
    class_names = tuple(sorted(class_files))
    files = tuple(top_files) if top_files else tuple(f for c in class_names for f in class_files[c])
    return ImageFolder(root, files, class_names, skipped)


def read_file(root: str, relative_path: str) -> bytes:
    path = f"{root}/{relative_path}"
    if "://" in root:
        with _gfile().GFile(path, "rb") as handle:
            return handle.read()
    with open(path, "rb") as handle:
        return handle.read()


def image_record(folder: ImageFolder, relative_path: str, data: bytes) -> bytes:
    """The serialized tf.Example of one image file (deterministic bytes)."""
    import tensorflow as tf

    example = tf.train.Example()
    features = example.features.feature
    features["image"].bytes_list.value.append(data)
    features[ID_FEATURE].bytes_list.value.append(relative_path.encode())
    label = folder.label_of(relative_path)
    if label is not None:
        features[LABEL_FEATURE].int64_list.value.append(label)
        features[LABEL_TEXT_FEATURE].bytes_list.value.append(folder.class_names[label].encode())
    return example.SerializeToString(deterministic=True)


def folder_records(folder: ImageFolder, limit: int | None = None):
    """The records of `folder`'s images in order (the first `limit`), read one by one."""
    for relative_path in folder.files[:limit]:
        yield image_record(folder, relative_path, read_file(folder.root, relative_path))
