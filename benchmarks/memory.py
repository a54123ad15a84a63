"""Peak memory of the `image-augment` CLI, each run a fresh process (the in-memory DirectRunner:
one process, so its max RSS is the run's):

- with one very large image: a few hundred-kilopixel photos plus one 49 MP JPEG (a real photo
  tiled to 7000x7000), K=2;
- with the number of inputs (issue 19): 224x224 JPEG photo crops, 1,000 and 12,000 inputs, K=4,
  the empty policy; `rss_12k_over_1k_224` is the second's peak over the first's (target
  <= 1.15: memory must not grow with the dataset). The same with classes balanced
  (`rss_12k_over_1k_224_balanced`, same target), and with MixUp, whose copies meet their
  partners in a GroupByKey that the in-memory DirectRunner holds whole (a known limit: no
  target).

    python -m benchmarks.memory [--scaling-sizes 1000,12000] [--note TEXT]

Large-image rows: the normal photos alone (the baseline); with the 49 MP JPEG, which the default
max_image_pixels (50 M) lets through, so it is augmented (one copy per TF call: batches are
bounded by pixels); and with --max-image-pixels 40000000, which quarantines it from its header
before decoding. Peak memory is the CLI process's max RSS (the in-memory DirectRunner: one
process). The 49 MP JPEG is in the first file, so the preview draws it too.
"""

from __future__ import annotations

import argparse
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
SCALING_SIZES = (1000, 12000)
SCALING_COPIES = 4
EMPTY_POLICY = '{"version": 1, "ops": []}'
# variant -> (policy, extra CLI arguments, its ratios' name suffix) of the scaling runs.
SCALING_VARIANTS = {
    "empty policy": (EMPTY_POLICY, [], ""),
    "empty policy, classes balanced": (
        EMPTY_POLICY,
        ["--label-feature", "label", "--balance", "equal"],
        "_balanced",
    ),
    "mixup": ('{"version": 1, "ops": [{"op": "mixup"}]}', [], "_mixup"),
}


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


def run(
    pattern: str,
    output: pathlib.Path,
    extra: list[str],
    policy: str = "standard",
    copies: int = COPIES,
) -> dict:
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
        policy,
        "--copies",
        str(copies),
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


def scaling(root: pathlib.Path, sizes: tuple[int, ...]) -> list[dict]:
    """Peak RSS of one run per size and variant: 224 px JPEG crops (10 classes of equal size),
    K=4 (with the empty policy the run is the reading, decoding, encoding and writing; what it
    holds is the runner's)."""
    rows = []
    for count in sizes:
        pattern = workloads.photo_jpeg(root / "scaling", count)
        for i, (variant, (policy, extra, _)) in enumerate(SCALING_VARIANTS.items()):
            output = root / f"scaling_out_{count}_{i}"
            result = run(pattern, output, extra, policy, SCALING_COPIES)
            rows.append({"variant": variant, "inputs": count, **result})
            print(rows[-1], file=sys.stderr)
    return rows


def scaling_ratios(rows: list[dict]) -> dict:
    """rss_<many>k_over_<few>k_224[_variant] for every measured size over the smallest."""
    found = {}
    for variant, (_, _, suffix) in SCALING_VARIANTS.items():
        # Rows written before the variants were the empty policy's.
        by_size = {
            row["inputs"]: row["peak_rss_mib"]
            for row in rows
            if row.get("variant", "empty policy") == variant
        }
        if not by_size:
            continue
        few = min(by_size)
        for many in sorted(by_size):
            if many != few:
                name = f"rss_{many // 1000}k_over_{few // 1000}k_224{suffix}"
                found[name] = round(by_size[many] / by_size[few], 2)
    return found


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--scaling-sizes",
        default=",".join(str(n) for n in SCALING_SIZES),
        help="input counts of the scaling runs, the smallest first (default: 1000,12000)",
    )
    parser.add_argument("--note", default="", help="a line for the results (the machine's load)")
    args = parser.parse_args(argv)
    sizes = tuple(sorted(int(n) for n in args.scaling_sizes.split(",")))
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
        scaling_rows = scaling(root, sizes)
    command = "python -m benchmarks.memory" + (
        f" --scaling-sizes {args.scaling_sizes}" if sizes != SCALING_SIZES else ""
    )
    write_results(
        "memory",
        rows,
        table(rows, scaling_rows, args.note),
        command,
        started,
        extra={
            "copies": COPIES,
            "large_jpeg_bytes": jpeg_bytes,
            "scaling": {
                "image": "224x224 JPEG photo crops",
                "copies": SCALING_COPIES,
                "policy": EMPTY_POLICY,
                "rows": scaling_rows,
                "ratios": scaling_ratios(scaling_rows),
            },
            "note": args.note,
        },
    )
    return rows


def table(rows: list[dict], scaling_rows: list[dict], note: str = "") -> str:
    ratios = scaling_ratios(scaling_rows)
    lines = [note, ""] if note else []
    lines += [
        f"Peak RSS with the number of inputs: 224x224 JPEG photo crops in 10 classes of equal "
        f"size, K = {SCALING_COPIES}, in-memory DirectRunner.",
        "",
        "| run | inputs | copies written | expansion s | peak RSS MiB |",
        "|---|---:|---:|---:|---:|",
    ]
    for row in scaling_rows:
        lines.append(
            f"| {row.get('variant', 'empty policy')} | {row['inputs']:,} | {row['copies']:,} | "
            f"{row['seconds']} | {row['peak_rss_mib']:,} |"
        )
    lines += [""] + [
        f"`{name}` = {value:.2f} "
        + ("(a known limit: no target)" if name.endswith("_mixup") else "(target <= 1.15)")
        for name, value in ratios.items()
    ]
    lines += [
        "",
        f"One very large image: K = {COPIES}, policy standard, in-memory DirectRunner, default "
        "--batch-size (1024; calls bounded by 64 x 224 x 224 pixels).",
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
