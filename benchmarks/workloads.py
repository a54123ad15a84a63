"""Benchmark inputs built from real images: tiled CIFAR-10 PNGs and crops of real JPEG photos."""

from __future__ import annotations

import os
import pathlib

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
CIFAR_DIR = pathlib.Path(
    os.environ.get("IMAGE_AUGMENT_CIFAR_DIR", PROJECT_ROOT.parent / "shared/data/cifar10_sample")
)


def _write(path: pathlib.Path, records, shards: int) -> str:
    import tensorflow as tf

    path.mkdir(parents=True, exist_ok=True)
    writers = [tf.io.TFRecordWriter(str(path / f"part-{i:03d}.tfrecord")) for i in range(shards)]
    for i, record in enumerate(records):
        writers[i % shards].write(record)
    for writer in writers:
        writer.close()
    return str(path / "part-*.tfrecord")


def cifar_png(root: pathlib.Path, count: int) -> str:
    """`count` records: the real CIFAR-10 sample (or, without it, real photo crops at 32x32)
    repeated, each repeat with its own `id` so keys stay distinct."""
    import tensorflow as tf

    from pipelines.data import image_example, photo_crops

    sources = []
    train = CIFAR_DIR / "train"
    if train.is_dir():
        for path in sorted(train.glob("*.tfrecord")):
            for record in tf.data.TFRecordDataset(str(path)):
                example = tf.train.Example.FromString(record.numpy())
                features = example.features.feature
                sources.append(
                    (features["image"].bytes_list.value[0], features["label"].int64_list.value[0])
                )
    else:
        for i, crop in enumerate(photo_crops(32, 128, seed=5)):
            sources.append((tf.io.encode_png(crop).numpy(), i % 10))
    records = (
        image_example(sources[i % len(sources)][0], sources[i % len(sources)][1], f"cifar_{i:06d}")
        for i in range(count)
    )
    return _write(root / f"cifar_png_{count}", records, shards=4)


def photo_jpeg(root: pathlib.Path, count: int, size: int = 224) -> str:
    """`count` size x size JPEG crops cut at seeded positions from scikit-learn's photos."""
    import tensorflow as tf

    from pipelines.data import image_example, photo_crops

    crops = photo_crops(size, count, seed=11)
    records = (
        image_example(tf.io.encode_jpeg(crop, quality=90).numpy(), i % 10, f"photo_{i:06d}")
        for i, crop in enumerate(crops)
    )
    return _write(root / f"photo_jpeg_{count}", records, shards=4)
