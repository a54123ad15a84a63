"""Peak memory with one very large image: the `image-augment` CLI on a few hundred-kilopixel
photos plus one 49 MP JPEG (a real photo tiled to 7000x7000), K=2, each run a fresh process.

    python -m benchmarks.memory

Rows: the normal photos alone (the baseline); with the 49 MP JPEG, which the default
max_image_pixels (50 M) lets through, so it is augmented (one copy per TF call: batches are
bounded by pixels); and with --max-image-pixels 40000000, which quarantines it from its header
before decoding. Peak memory is the CLI process's max RSS (the in-memory DirectRunner: one
process). The 49 MP JPEG is in the first file, so the preview draws it too.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import tempfile
import time

from benchmarks import workloads
from benchmarks.common import write_results
from benchmarks.offline import _measure

COPIES = 2
LARGE_SIDE = 7000  # 49,000,000 pixels: just under the default max_image_pixels
NORMAL_IMAGES = 24


def write_large_jpeg(path: pathlib.Path) -> int:
    """One record: scikit-learn's china photo tiled to LARGE_SIDE x LARGE_SIDE, JPEG q90.
    Returns the JPEG's size in bytes."""
    import numpy as np
    import tensorflow as tf

    from pipelines.data import image_example, sample_photos

    photo = sample_photos()[0]
    reps = (math.ceil(LARGE_SIDE / photo.shape[0]), math.ceil(LARGE_SIDE / photo.shape[1]), 1)
    large = np.tile(photo, reps)[:LARGE_SIDE, :LARGE_SIDE]
    jpeg = tf.io.encode_jpeg(large, quality=90).numpy()
    del large
    with tf.io.TFRecordWriter(str(path)) as writer:
        writer.write(image_example(jpeg, 3, "large_000000"))
    return len(jpeg)


def run(pattern: str, output: pathlib.Path, extra: list[str]) -> dict:
    command = [
        sys.executable,
        "-m",
        "tfx_image_augment.cli.commands",
        "run",
        "--input",
        pattern,
        "--output",
        str(output),
        "--policy",
        "standard",
        "--copies",
        str(COPIES),
        "--seed",
        "1",
        "--key-feature",
        "id",
        "--max-quarantine-fraction",
        "0.5",
        *extra,
        "--",
        "--direct_num_workers=1",
    ]
    _, peak, _ = _measure(command)
    summary = json.loads((output / "augment_summary.json").read_text())
    return {
        "examples_in": summary["examples_in"],
        "copies": summary["copies_written"],
        "quarantined": summary["quarantined"],
        "seconds": summary["expansion_seconds"],
        "peak_rss_mib": round(peak),
    }


def main(argv=None) -> list[dict]:
    started = time.time()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        normal = workloads.photo_jpeg(root / "normal", NORMAL_IMAGES)
        mixed = workloads.photo_jpeg(root / "mixed", NORMAL_IMAGES)  # the same normal photos
        # "part-000-big" sorts first: the preview decodes the large image as well.
        big = pathlib.Path(mixed).parent / "part-000-big.tfrecord"
        jpeg_bytes = write_large_jpeg(big)
        runs = {
            f"{NORMAL_IMAGES} photos 224x224": (normal, []),
            f"{NORMAL_IMAGES} photos + one 7000x7000 JPEG (49 MP)": (mixed, []),
            f"{NORMAL_IMAGES} photos + the 49 MP JPEG, --max-image-pixels 40000000": (
                mixed,
                ["--max-image-pixels", "40000000"],
            ),
        }
        for i, (name, (pattern, extra)) in enumerate(runs.items()):
            result = run(pattern, root / f"out_{i}", extra)
            rows.append({"input": name, **result})
            print(rows[-1], file=sys.stderr)
    write_results(
        "memory",
        rows,
        table(rows),
        "python -m benchmarks.memory",
        started,
        extra={"copies": COPIES, "large_jpeg_bytes": jpeg_bytes},
    )
    return rows


def table(rows: list[dict]) -> str:
    lines = [
        f"K = {COPIES}, policy standard, in-memory DirectRunner, default --batch-size "
        "(1024; calls bounded by 64 x 224 x 224 pixels).",
        "",
        "| input | copies written | quarantined | expansion s | peak RSS MiB |",
        "|---|---:|---|---:|---:|",
    ]
    for row in rows:
        quarantined = ", ".join(f"{k}: {v}" for k, v in row["quarantined"].items()) or "none"
        lines.append(
            f"| {row['input']} | {row['copies']} | {quarantined} | {row['seconds']} | "
            f"{row['peak_rss_mib']:,} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
