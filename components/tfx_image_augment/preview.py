"""A contact sheet: each original image beside its augmented copies, as one PNG."""

from __future__ import annotations

import numpy as np

CELL = 96


def contact_sheet(
    originals: np.ndarray, copies: np.ndarray, cell: int = CELL, gap: int = 4
) -> np.ndarray:
    """originals [N,H,W,C], copies [N,K,H,W,C] (uint8) -> a uint8 RGB grid, one row per image,
    the original in the first column. Small images are enlarged (nearest) to `cell` pixels."""
    import tensorflow as tf

    rows, columns = copies.shape[0], copies.shape[1] + 1
    sheet = np.full((rows * (cell + gap) + gap, columns * (cell + gap) + gap, 3), 255, np.uint8)
    for r in range(rows):
        for c in range(columns):
            image = originals[r] if c == 0 else copies[r, c - 1]
            if image.shape[-1] == 1:
                image = np.repeat(image, 3, axis=-1)
            image = image[..., :3]
            size = _cell_size(image.shape, cell)
            resized = tf.image.resize(image, size, method="nearest").numpy().astype(np.uint8)
            top = gap + r * (cell + gap) + (cell - size[0]) // 2
            left = gap + c * (cell + gap) + (cell - size[1]) // 2
            sheet[top : top + size[0], left : left + size[1]] = resized
    return sheet


def _cell_size(shape, cell: int) -> tuple[int, int]:
    """(height, width) of an image of `shape` drawn in a sheet cell: its longer side `cell`."""
    scale = cell / max(shape[0], shape[1])
    return max(1, round(shape[0] * scale)), max(1, round(shape[1] * scale))


def _thumbnail(image: np.ndarray, cell: int = CELL) -> np.ndarray:
    """A uint8 image larger than a cell shrunk to the size `contact_sheet` draws it at (the same
    nearest resize, so the sheet is unchanged), so no full-size copy of a large image is kept."""
    import tensorflow as tf

    if max(image.shape[:2]) <= cell:
        return image
    return (
        tf.image.resize(image, _cell_size(image.shape, cell), method="nearest")
        .numpy()
        .astype(np.uint8)
    )


def _for_display(images: np.ndarray, value_range) -> np.ndarray:
    """uint8 as is; float (raw or 16-bit pixels) from `value_range` to 0..255."""
    from tfx_image_augment.codec import DEFAULT_VALUE_RANGE

    if images.dtype == np.uint8:
        return images
    low, high = value_range or DEFAULT_VALUE_RANGE
    return np.clip((images - low) / (high - low) * 255, 0, 255).astype(np.uint8)


def write_png(path: str, image: np.ndarray) -> None:
    import tensorflow as tf

    tf.io.gfile.makedirs(path.rsplit("/", 1)[0]) if "/" in path else None
    with tf.io.gfile.GFile(path, "wb") as handle:
        handle.write(tf.io.encode_png(image).numpy())


def preview_from_pattern(pattern: str, config, rows: int = 6, max_copies: int = 6):
    """(sheet, channels) from the first decodable records of `pattern`: each beside the copies
    the offline expansion writes for it (the same seeds). None when nothing decodes."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    from tfx_image_augment.codec import MAX_BATCH_PIXELS, Quarantined, core_inputs, decode_pixels
    from tfx_image_augment.config import copy_seed
    from tfx_image_augment.core import augment
    from tfx_image_augment.records import compression_of, stable_key

    copies = min(config.num_copies, max_copies)
    policy = config.loaded_policy
    shapes, originals, sheets = [], [], []
    for path in sorted(tf.io.gfile.glob(pattern)):
        for record in tf.data.TFRecordDataset(path, compression_of(path)).take(rows * 4):
            try:
                example = tf.train.Example.FromString(record.numpy())
                pixels, _ = decode_pixels(
                    example.features.feature[config.image_feature], config, config.image_feature
                )
                key = stable_key(example, config)
            except (Quarantined, DecodeError):  # a preview skips what it cannot show
                continue
            seeds = np.array(
                [copy_seed(config.seed, key, k) for k in range(1, copies + 1)], np.int64
            )
            images, value_range = core_inputs(pixels[None], config)
            # As on the workers, a large image's copies are augmented a few at a time, and only
            # thumbnails are kept.
            per_call = max(1, MAX_BATCH_PIXELS // (pixels.shape[0] * pixels.shape[1]))
            thumbnails = []
            for start in range(0, copies, per_call):
                chunk = seeds[start : start + per_call]
                out = augment(
                    np.repeat(images, len(chunk), axis=0), chunk, policy, value_range=value_range
                ).numpy()
                thumbnails.extend(_thumbnail(copy) for copy in _for_display(out, value_range))
            shapes.append(pixels.shape)
            originals.append(_thumbnail(_for_display(images, value_range)[0]))
            sheets.append(np.stack(thumbnails))
            if len(originals) == rows:
                break
        if len(originals) == rows:
            break
    if not originals:
        return None, None
    if len(set(shapes)) > 1:  # mixed sizes: keep the rows of the first size only
        keep = [i for i, shape in enumerate(shapes) if shape == shapes[0]]
        originals, sheets = [originals[i] for i in keep], [sheets[i] for i in keep]
    return contact_sheet(np.stack(originals), np.stack(sheets)), shapes[0][-1]


PREVIEW_FILE = "preview.png"


def write_augmentation_model(model_dir: str, input_pattern: str, config) -> None:
    """The `augmentation_model` folder: policy.json and saved_model/ for the data's channel
    count, and preview.png drawn from `input_pattern` (left out when nothing there decodes)."""
    import os

    from tfx_image_augment.export import export_augmentation_model

    sheet, channels = preview_from_pattern(input_pattern, config)
    export_augmentation_model(config.loaded_policy, config.seed, model_dir, channels=channels or 3)
    if sheet is not None:
        write_png(os.path.join(model_dir, PREVIEW_FILE), sheet)
