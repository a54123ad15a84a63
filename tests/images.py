"""Real images for tests: scikit-learn's two photos and digits (always there) and, when present,
the CIFAR-10 sample beside the project."""

from __future__ import annotations

import functools

import numpy as np

from pipelines.data import digits_images, photo_crops, sample_photos  # noqa: F401


@functools.cache
def digits(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits upsampled to size x size, uint8 [N, H, W, 1]."""
    return digits_images(size)


def cifar_images(cifar_dir, split: str = "train", count: int | None = None) -> np.ndarray:
    """Decoded CIFAR-10 sample images, uint8 [N, 32, 32, 3]."""
    import tensorflow as tf

    path = next((cifar_dir / split).glob("*.tfrecord"))
    images = []
    for record in tf.data.TFRecordDataset(str(path)).take(count or -1).as_numpy_iterator():
        example = tf.train.Example.FromString(record)
        png = example.features.feature["image"].bytes_list.value[0]
        images.append(tf.io.decode_png(png, channels=3).numpy())
    return np.stack(images)
