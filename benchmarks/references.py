"""The two reference rows the offline figures are read against, on the same input files.

    python -m benchmarks.references beam-copy INPUT_GLOB OUTPUT_DIR
    python -m benchmarks.references codec INPUT_GLOB

`beam-copy`: Beam's in-memory DirectRunner reading the TFRecords and writing them back gzipped,
record for record, no parsing: what any Beam job over these files pays before doing anything.
Prints `REFERENCE <records> <seconds>` (the pipeline's run, as `expansion_seconds` is ours).

`codec`: every image parsed, decoded and re-encoded in its own format (PNG at TensorFlow's
default level, JPEG at quality 95) by a parallel tf.data map on all cores, nothing written:
the cost of touching each image's pixels at all. Prints `REFERENCE <images> <seconds>`.
"""

from __future__ import annotations

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def beam_copy(pattern: str, output_dir: str) -> None:
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    options = PipelineOptions(["--runner=DirectRunner", "--direct_num_workers=1"])
    started = time.perf_counter()
    with beam.Pipeline(options=options) as pipeline:
        records = pipeline | beam.io.ReadFromTFRecord(
            pattern, coder=beam.coders.BytesCoder(), validate=False
        )
        records | beam.io.WriteToTFRecord(
            os.path.join(output_dir, "data_tfrecord"),
            file_name_suffix=".gz",
            compression_type=beam.io.filesystem.CompressionTypes.GZIP,
        )
    seconds = time.perf_counter() - started
    import tensorflow as tf

    written = sum(
        1
        for _ in tf.data.TFRecordDataset(
            tf.io.gfile.glob(os.path.join(output_dir, "data_tfrecord*.gz")), "GZIP"
        )
    )
    print(f"REFERENCE {written} {seconds:.3f}")


def codec(pattern: str) -> None:
    import tensorflow as tf

    spec = {"image": tf.io.FixedLenFeature([], tf.string)}

    def decode_encode(record):
        data = tf.io.parse_single_example(record, spec)["image"]
        pixels = tf.io.decode_image(data, channels=3, expand_animations=False)
        is_jpeg = tf.strings.substr(data, 0, 2) == b"\xff\xd8"
        return tf.cond(
            is_jpeg,
            lambda: tf.io.encode_jpeg(pixels, quality=95),
            lambda: tf.io.encode_png(pixels),
        )

    files = tf.io.gfile.glob(pattern)
    dataset = (
        tf.data.TFRecordDataset(files)
        .map(decode_encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=False)
        .prefetch(64)
    )
    for _ in dataset.take(64):  # warm up: trace and start the threads
        pass
    started = time.perf_counter()
    images = sum(1 for _ in dataset)
    print(f"REFERENCE {images} {time.perf_counter() - started:.3f}")


if __name__ == "__main__":
    if sys.argv[1] == "beam-copy":
        beam_copy(sys.argv[2], sys.argv[3])
    else:
        codec(sys.argv[2])
