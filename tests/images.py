"""Real images for tests: scikit-learn's two photos and digits (always there) and, when present,
the CIFAR-10 sample beside the project."""

from __future__ import annotations

import functools

import numpy as np


@functools.cache
def sample_photos() -> np.ndarray:
    """scikit-learn's two real JPEG photos (china, flower), 427x640x3 uint8."""
    from sklearn.datasets import load_sample_images

    return np.stack(load_sample_images().images)


def photo_crops(size: int, count: int, seed: int = 0) -> np.ndarray:
    """`count` real size x size crops cut from the two photos at seeded positions."""
    photos = sample_photos()
    rng = np.random.default_rng(seed)
    crops = []
    for i in range(count):
        photo = photos[i % len(photos)]
        top = rng.integers(0, photo.shape[0] - size + 1)
        left = rng.integers(0, photo.shape[1] - size + 1)
        crops.append(photo[top : top + size, left : left + size])
    return np.stack(crops)


@functools.cache
def digits(size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 1,797 real 8x8 digits upsampled to size x size, uint8 [N, H, W, 1]."""
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0 * 255.0).astype(np.float32)[..., None]
    import tensorflow as tf

    resized = tf.image.resize(images, [size, size], method="bilinear").numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8), data.target.astype(np.int64)


def cifar_images(cifar_dir, split: str = "train", count: int | None = None) -> np.ndarray:
    """Decoded CIFAR-10 sample images, uint8 [N, 32, 32, 3]."""
    import tensorflow as tf

    from tests.pipeline_helpers import read_records

    path = next((cifar_dir / split).glob("*.tfrecord"))
    images = []
    for record in read_records(str(path))[:count]:
        example = tf.train.Example.FromString(record)
        png = example.features.feature["image"].bytes_list.value[0]
        images.append(tf.io.decode_png(png, channels=3).numpy())
    return np.stack(images)
