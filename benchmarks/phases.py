"""Where an offline copy's time goes, without Beam: the DoFns and their parts called directly.

    python -m benchmarks.phases [--quick]

On the offline benchmark's workloads (4,000 32x32 PNG records, 400 224x224 JPEG records; K=4,
`standard`, one process): decoding (DecodeFn, per input), the whole batch step (AugmentBatchFn:
core, encoding, protobuf), the core alone and the encoder alone on the same batches (so the
protobuf share is what remains), and writing every record as our sink does (TFRecord frames
with their CRCs, gzipped at the level the first record fits: `offline/beam/sink.py`). What is
left of a Beam run's time beyond the sum is Beam's.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import sys
import tempfile
import time
import zlib

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from tfx_image_augment import environment  # noqa: E402

from benchmarks import workloads  # noqa: E402
from benchmarks.common import write_results  # noqa: E402

COPIES = 4


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def measure(pattern: str) -> dict:
    import numpy as np
    import tensorflow as tf
    from tfx_image_augment.core.augment import augment_targets, compile_policy
    from tfx_image_augment.core.seeds import copy_seed
    from tfx_image_augment.io.codec import MAX_BATCH_PIXELS, encode_batch
    from tfx_image_augment.offline.beam.sink import GZIP_WBITS, framed, level_for
    from tfx_image_augment.offline.beam.transforms import AugmentBatchFn, DecodeFn
    from tfx_image_augment.offline.config import AugmentConfig

    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)))]
    config = AugmentConfig(policy="standard", num_copies=COPIES, seed=1, key_feature="id")
    decode, augment = DecodeFn(config.to_json(), "train"), AugmentBatchFn(config.to_json(), "t")
    decode.setup()
    augment.setup()
    list(augment.process(list(decode.process(records[0]))))  # trace the graphs first
    decoded: list = []
    decode_s = _seconds(lambda: decoded.extend(x for r in records for x in decode.process(r)))
    height, width = decoded[0].pixels.shape[:2]
    per_call = max(1, min(config.batch_size, MAX_BATCH_PIXELS // (height * width)))
    examples_per_batch = max(1, per_call // COPIES)
    batches = [
        decoded[i : i + examples_per_batch] for i in range(0, len(decoded), examples_per_batch)
    ]
    written: list = []
    batch_s = _seconds(lambda: [written.extend(augment.process(b)) for b in batches])
    plan = compile_policy(config.loaded_policy)
    core_s = encode_s = 0.0
    for batch in batches:
        copies = [(k, d) for d in batch for k in range(1, COPIES + 1)]
        images = np.stack([d.pixels for _, d in copies])
        seeds = np.array([copy_seed(1, d.key, k) for k, d in copies], np.int64)
        started = time.perf_counter()
        pixels = augment_targets(images, seeds, plan)["images"].numpy()
        core_s += time.perf_counter() - started
        started = time.perf_counter()
        encode_batch(pixels, batch[0].image_format, config.encode_rules)
        encode_s += time.perf_counter() - started
    serialized = [w if isinstance(w, bytes) else w.value for w in written]
    compressor = zlib.compressobj(level_for(serialized[0]), zlib.DEFLATED, GZIP_WBITS)
    gzip_s = _seconds(lambda: [compressor.compress(framed(r)) for r in serialized])
    copies = len(decoded) * COPIES
    per_copy = {
        "decode (per input / K)": decode_s / copies,
        "core": core_s / copies,
        "encode": encode_s / copies,
        "protobuf and the rest of the batch step": (batch_s - core_s - encode_s) / copies,
        "frame + gzip (K+1 records / K)": gzip_s / copies,
    }
    return {
        "inputs": len(records),
        "copies": copies,
        "copies_per_call": per_call,
        "microseconds_per_copy": {k: round(v * 1e6, 1) for k, v in per_copy.items()},
        "copies_per_second_without_beam": round(1 / sum(per_copy.values())),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a quarter of the inputs")
    args = parser.parse_args(argv)
    environment.configure()
    started = time.time()
    scale = 4 if args.quick else 1
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = pathlib.Path(tmp)
        for workload, pattern in (
            ("32x32 PNG", workloads.cifar_png(root, 4000 // scale)),
            ("224x224 JPEG", workloads.photo_jpeg(root, 400 // scale)),
        ):
            rows.append({"workload": workload, **measure(pattern)})
            print(rows[-1], file=sys.stderr)
    lines = [
        "Microseconds per augmented copy, one process, no Beam (K=4, `standard`).",
        "",
        "| phase | " + " | ".join(r["workload"] for r in rows) + " |",
        "|---|" + "---:|" * len(rows),
    ]
    for phase in rows[0]["microseconds_per_copy"]:
        cells = " | ".join(f"{r['microseconds_per_copy'][phase]:,.1f}" for r in rows)
        lines.append(f"| {phase} | {cells} |")
    cells = " | ".join(f"{r['copies_per_second_without_beam']:,}" for r in rows)
    lines.append(f"| **copies/s without Beam** | {cells} |")
    command = "python -m benchmarks.phases" + (" --quick" if args.quick else "")
    write_results(
        "phases" + ("_quick" if args.quick else ""), rows, "\n".join(lines), command, started
    )


if __name__ == "__main__":
    main()
