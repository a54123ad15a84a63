"""What a user would write instead: one process, tf.data, Keras 3 built-in random layers.

    python -m benchmarks.handwritten_tfdata INPUT_GLOB OUTPUT_DIR COPIES

Reads tf.Examples, decodes, applies the `standard` preset's ops with Keras 3's built-ins
(RandomFlip, RandomRotation, RandomZoom, RandomTranslation, RandomBrightness, RandomContrast;
no built-in saturation), re-encodes in the input's format, writes gzipped TFRecords with
TFRecordWriter. Prints the number of copies written and the seconds taken.
"""

import os
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "0"  # Keras 3, the default tf.keras
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

from benchmarks.common import keras3_standard_chain  # noqa: E402


def main(pattern: str, output_dir: str, copies: int) -> None:
    chain = keras3_standard_chain(tf.keras.layers)
    spec = {
        "image": tf.io.FixedLenFeature([], tf.string),
        "label": tf.io.FixedLenFeature([], tf.int64),
    }

    def parse(record):
        parsed = tf.io.parse_single_example(record, spec)
        data = parsed["image"]
        is_jpeg = tf.strings.substr(data, 0, 2) == b"\xff\xd8"
        return (
            tf.io.decode_image(data, channels=3, expand_animations=False),
            parsed["label"],
            is_jpeg,
        )

    def augment(image, label, is_jpeg):
        x = tf.cast(image, tf.float32)[None]
        for layer in chain:
            x = layer(x, training=True)
        out = tf.cast(tf.clip_by_value(tf.round(x[0]), 0, 255), tf.uint8)
        encoded = tf.cond(
            is_jpeg, lambda: tf.io.encode_jpeg(out, quality=95), lambda: tf.io.encode_png(out)
        )
        return encoded, label

    files = tf.io.gfile.glob(pattern)
    dataset = (
        tf.data.TFRecordDataset(files)
        .map(parse, num_parallel_calls=tf.data.AUTOTUNE)
        .flat_map(lambda *item: tf.data.Dataset.from_tensors(item).repeat(copies))
        .map(augment, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(64)
    )
    os.makedirs(output_dir, exist_ok=True)
    started = time.perf_counter()
    written = 0
    options = tf.io.TFRecordOptions(compression_type="GZIP")
    with tf.io.TFRecordWriter(os.path.join(output_dir, "data.tfrecord.gz"), options) as writer:
        for encoded, label in dataset:
            example = tf.train.Example()
            example.features.feature["image"].bytes_list.value.append(encoded.numpy())
            example.features.feature["label"].int64_list.value.append(int(label))
            writer.write(example.SerializeToString())
            written += 1
    print(f"HANDWRITTEN {written} {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]))
