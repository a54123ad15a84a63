"""Writing records: Beam's WriteToTFRecord path against our sink, per record, without Beam.

    python -m benchmarks.sink

The same serialized tf.Examples (real photo crops: 224-px JPEG q95 and 32-px PNG level 1, the
offline benchmark's output formats) written into memory the two ways: Beam's TFRecord framing
(crcmod CRC-32C) into Beam's gzip file (zlib level 6), and `offline/beam/sink.py` (CRC-32C from
google-crc32c where installed; gzip at the level the first record fits: stored blocks for
encoded images). Median of 5 repeats of 400 records each.
"""

from __future__ import annotations

import io
import statistics
import time

from benchmarks.common import write_results

RECORDS = 400
REPEATS = 5


class _Memory(io.BytesIO):
    mode = "wb"  # Beam's CompressedFile asks

    def close(self):  # keep the bytes for the size
        pass


def _workloads() -> dict[str, list[bytes]]:
    import tensorflow as tf

    from pipelines.data import image_example, photo_crops

    def records(size, encode):
        crops = photo_crops(size, RECORDS, seed=2)
        return [image_example(encode(p), i % 10, f"p{i}") for i, p in enumerate(crops)]

    return {
        "224x224 JPEG q95": records(224, lambda p: tf.io.encode_jpeg(p, quality=95).numpy()),
        "32x32 PNG level 1": records(32, lambda p: tf.io.encode_png(p, compression=1).numpy()),
    }


def _beam(records: list[bytes]) -> int:
    from apache_beam.io.filesystem import CompressedFile, CompressionTypes
    from apache_beam.io.tfrecordio import _TFRecordUtil

    memory = _Memory()
    handle = CompressedFile(memory, CompressionTypes.GZIP)
    for record in records:
        _TFRecordUtil.write_record(handle, record)
    handle.close()
    return len(memory.getvalue())


def _ours(records: list[bytes]) -> int:
    from tfx_image_augment.offline.beam.sink import _GzipFile

    memory = _Memory()
    handle = _GzipFile(memory)
    for record in records:
        handle.write_record(record)
    handle.close()
    return len(memory.getvalue())


def main() -> list[dict]:
    started = time.time()
    rows = []
    for workload, records in _workloads().items():
        payload = sum(len(r) for r in records)
        for name, write in (("Beam WriteToTFRecord (level 6, crcmod)", _beam), ("ours", _ours)):
            size = write(records)  # warm-up, and the file's size
            seconds = []
            for _ in range(REPEATS):
                start = time.perf_counter()
                write(records)
                seconds.append(time.perf_counter() - start)
            rows.append(
                {
                    "workload": workload,
                    "writer": name,
                    "us_per_record": round(statistics.median(seconds) / len(records) * 1e6, 1),
                    "file_over_payload": round(size / payload, 3),
                }
            )
    lines = [
        "| records | writer | us per record (median) | file size / record bytes |",
        "|---|---|---:|---:|",
    ]
    lines += [
        f"| {r['workload']} | {r['writer']} | {r['us_per_record']} | {r['file_over_payload']} |"
        for r in rows
    ]
    write_results("sink", rows, "\n".join(lines), "python -m benchmarks.sink", started)
    return rows


if __name__ == "__main__":
    main()
