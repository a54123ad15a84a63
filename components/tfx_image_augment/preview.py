"""A contact sheet: each original image beside its augmented copies, as one PNG."""

from __future__ import annotations

import numpy as np


def contact_sheet(
    originals: np.ndarray, copies: np.ndarray, cell: int = 96, gap: int = 4
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
            scale = cell / max(image.shape[0], image.shape[1])
            size = (max(1, round(image.shape[0] * scale)), max(1, round(image.shape[1] * scale)))
            resized = tf.image.resize(image, size, method="nearest").numpy().astype(np.uint8)
            top = gap + r * (cell + gap) + (cell - size[0]) // 2
            left = gap + c * (cell + gap) + (cell - size[1]) // 2
            sheet[top : top + size[0], left : left + size[1]] = resized
    return sheet


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

    from tfx_image_augment.codec import Quarantined, decode_pixels
    from tfx_image_augment.config import copy_seed
    from tfx_image_augment.core import augment
    from tfx_image_augment.records import compression_of, stable_key

    copies = min(config.num_copies, max_copies)
    chosen = []
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
            chosen.append((pixels, key))
            if len(chosen) == rows:
                break
        if len(chosen) == rows:
            break
    if not chosen:
        return None, None
    policy = config.loaded_policy
    originals, sheets = [], []
    for pixels, key in chosen:
        seeds = np.array([copy_seed(config.seed, key, k) for k in range(1, copies + 1)], np.int64)
        batch = np.repeat(pixels[None], copies, axis=0)
        out = augment(batch, seeds, policy, value_range=config.value_range).numpy()
        if out.dtype != np.uint8:  # raw float pixels: show them in 0..255
            low, high = config.value_range or (0.0, 1.0)
            out = np.clip((out - low) / (high - low) * 255, 0, 255).astype(np.uint8)
            pixels = np.clip((pixels - low) / (high - low) * 255, 0, 255).astype(np.uint8)
        originals.append(pixels)
        sheets.append(out)
    shapes = {o.shape for o in originals}
    if len(shapes) > 1:  # mixed sizes: keep the rows of the first size only
        keep = [i for i, o in enumerate(originals) if o.shape == originals[0].shape]
        originals, sheets = [originals[i] for i in keep], [sheets[i] for i in keep]
    return contact_sheet(np.stack(originals), np.stack(sheets)), originals[0].shape[-1]


PREVIEW_FILE = "preview.png"


def write_augmentation_model(model_dir: str, input_pattern: str, config) -> None:
    """The `augmentation_model` folder: policy.json and saved_model/ for the data's channel
    count, and preview.png drawn from `input_pattern` (left out when nothing there decodes)."""
    import os

    from tfx_image_augment.export import export_augmentation_model
    from tfx_image_augment.killpoints import killpoint

    sheet, channels = preview_from_pattern(input_pattern, config)
    export_augmentation_model(config.loaded_policy, config.seed, model_dir, channels=channels or 3)
    killpoint("model-export")
    if sheet is not None:
        write_png(os.path.join(model_dir, PREVIEW_FILE), sheet)
