"""The embedded default dataset: scikit-learn's 1,797 real digits as 32x32 PNG tf.Examples.

No download: the digits ship inside scikit-learn. They are upsampled from 8x8 to 32x32
(bilinear), where rotate/translate/zoom help (measured: 91.8% -> 93.8% held-out accuracy with
150 training images), and used with the `no-flip` preset (a mirrored 6 is not a 6).
"""

from __future__ import annotations

import functools
import os

import numpy as np

DIGITS_SIZE = 32


def digits_images(size: int = DIGITS_SIZE) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [1797, size, size, 1] images and int64 labels."""
    import tensorflow as tf
    from sklearn.datasets import load_digits

    data = load_digits()
    images = (data.images / 16.0 * 255.0).astype(np.float32)[..., None]
    resized = tf.image.resize(images, [size, size], method="bilinear").numpy()
    return np.clip(np.round(resized), 0, 255).astype(np.uint8), data.target.astype(np.int64)


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


def image_example(png: bytes, label: int, example_id: str) -> bytes:
    import tensorflow as tf

    example = tf.train.Example()
    features = example.features.feature
    features["image"].bytes_list.value.append(png)
    features["label"].int64_list.value.append(int(label))
    features["id"].bytes_list.value.append(example_id.encode())
    return example.SerializeToString(deterministic=True)


def write_digits(root: str, train_count: int = 300, seed: int = 0) -> str:
    """Writes root/train/data.tfrecord and root/eval/data.tfrecord once; returns root.

    The split is a seeded permutation; files are only written when absent, so a second run
    sees identical inputs and TFX's cache applies.
    """
    import tensorflow as tf

    paths = {split: os.path.join(root, split, "data.tfrecord") for split in ("train", "eval")}
    if all(tf.io.gfile.exists(p) for p in paths.values()):
        return root
    images, labels = digits_images()
    order = np.random.default_rng(seed).permutation(len(images))
    chosen = {"train": order[:train_count], "eval": order[train_count:]}
    for split, indices in chosen.items():
        tf.io.gfile.makedirs(os.path.dirname(paths[split]))
        with tf.io.TFRecordWriter(paths[split]) as writer:
            for i in indices:
                png = tf.io.encode_png(images[i]).numpy()
                writer.write(image_example(png, labels[i], f"digits_{i:04d}"))
    return root
