"""Where an offline copy's time goes, without Beam: the DoFns and their parts called directly.

    python -m benchmarks.phases [--quick]

On the offline benchmark's workloads (4,000 32x32 PNG records, 400 224x224 JPEG records; K=4,
`standard`, one process): decoding (DecodeFn, per input), the whole batch step (AugmentBatchFn:
core, encoding, protobuf), the core alone and the encoder alone on the same batches (their
share; the batch step runs them in parts at once), and writing every record as our sink does
(TFRecord frames with their CRCs, gzipped at the level the first record fits:
`offline/beam/sink.py`). What is left of a Beam run's time beyond the sum is Beam's.

Then the core by stage at 224 px (`stage_profile`): each stage of `standard` as a policy of its
own in one core call of 64 crops, beside the peer's albumentations transform for the same stage
(when albumentations is installed) and one TensorFlow element-wise pass for scale: the profile
that shows where the 224 px gap to the peer is.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pathlib
import sys
import tempfile
import time
import zlib
from random import Random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

from tfx_image_augment import environment  # noqa: E402

from benchmarks import workloads  # noqa: E402
from benchmarks.common import write_results  # noqa: E402
from benchmarks.summary import stage_table  # noqa: E402

COPIES = 4


def _seconds(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def microseconds_per_image(fn, images: int, repeats: int) -> float:
    """`fn`'s wall time per image (a call does `images`), after one call that traces or warms up."""
    fn()
    return _seconds(lambda: [fn() for _ in range(repeats)]) / repeats / images * 1e6


def measure(pattern: str) -> dict:
    import numpy as np
    import tensorflow as tf
    from apache_beam.transforms.window import GlobalWindow
    from apache_beam.utils.timestamp import MIN_TIMESTAMP
    from apache_beam.utils.windowed_value import PANE_INFO_UNKNOWN
    from tfx_image_augment.core.augment import augment_targets, compile_policy
    from tfx_image_augment.core.seeds import copy_seed
    from tfx_image_augment.io.codec import MAX_BATCH_PIXELS, encode_batch
    from tfx_image_augment.offline.beam.sink import GZIP_WBITS, framed, level_for
    from tfx_image_augment.offline.beam.transforms import DECODE_BATCH, AugmentBatchFn
    from tfx_image_augment.offline.config import AugmentConfig
    from tfx_image_augment.offline.decode import decode_examples

    records = [r.numpy() for r in tf.data.TFRecordDataset(sorted(tf.io.gfile.glob(pattern)))]
    config = AugmentConfig(policy="standard", num_copies=COPIES, seed=1, key_feature="id")
    augment = AugmentBatchFn(config.to_json(), "t")
    augment.setup()

    def decode(some: list[bytes]) -> list:  # as DecodeFn does, K copies each
        decoded = decode_examples(some, config)
        assert all(not isinstance(d, Exception) for d in decoded), "the workload has bad records"
        for example in decoded:
            example.copies = COPIES
        return decoded

    def decode_all() -> list:  # in groups of DECODE_BATCH records, as DecodeFn
        groups = range(0, len(records), DECODE_BATCH)
        return [x for i in groups for x in decode(records[i : i + DECODE_BATCH])]

    def augment_bundle(batches: list) -> list:  # one bundle, as Beam runs the DoFn
        augment.start_bundle()
        place = (GlobalWindow(), MIN_TIMESTAMP, PANE_INFO_UNKNOWN)
        outputs = [out for batch in batches for out in augment.process(batch, *place)]
        return outputs + list(augment.finish_bundle())  # the calls still in flight

    # Trace the graphs first: the core's, the encoder's and the grouped decoder's.
    augment_bundle([decode(records[:DECODE_BATCH])[:1]])
    decoded: list = []
    decode_s = _seconds(lambda: decoded.extend(decode_all()))
    height, width = decoded[0].pixels.shape[:2]
    per_call = max(1, min(config.batch_size, MAX_BATCH_PIXELS // (height * width)))
    examples_per_batch = max(1, per_call // COPIES)
    batches = [
        decoded[i : i + examples_per_batch] for i in range(0, len(decoded), examples_per_batch)
    ]
    written: list = []
    batch_s = _seconds(lambda: written.extend(augment_bundle(batches)))
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
    serialized = [w.value for w in written]  # copies in their window, originals tagged
    compressor = zlib.compressobj(level_for(serialized[0]), zlib.DEFLATED, GZIP_WBITS)
    gzip_s = _seconds(lambda: [compressor.compress(framed(r)) for r in serialized])
    copies = len(decoded) * COPIES
    # The batch step runs the core and the encoder in CORE_THREADS parts at once, one call
    # ahead of its records, so at 224 px it takes less than the two alone: they are shown for
    # their share, not summed.
    per_copy = {
        "decode (per input / K)": decode_s / copies,
        "core, alone": core_s / copies,
        "encode, alone": encode_s / copies,
        "the whole batch step (core and encode in parts at once, protobuf)": batch_s / copies,
        "frame + gzip (K+1 records / K)": gzip_s / copies,
    }
    return {
        "inputs": len(records),
        "copies": copies,
        "copies_per_call": per_call,
        "microseconds_per_copy": {k: round(v * 1e6, 1) for k, v in per_copy.items()},
        "copies_per_second_without_beam": round(copies / (decode_s + batch_s + gzip_s)),
    }


# Stages of `standard` as policies of their own: what each costs in one call of the core.
STAGES = {
    "flip (p 0.5)": [{"op": "flip_left_right", "p": 0.5}],
    "warp: rotate, zoom, translate (p 0.8 each)": [
        {"op": "rotate", "max_degrees": 15, "p": 0.8},
        {"op": "zoom", "min_scale": 0.9, "max_scale": 1.1, "p": 0.8},
        {"op": "translate", "max_dx": 0.1, "max_dy": 0.1, "p": 0.8},
    ],
    "brightness": [{"op": "brightness", "max_delta": 0.2}],
    "contrast + saturation": [
        {"op": "contrast", "lower": 0.8, "upper": 1.2},
        {"op": "saturation", "lower": 0.8, "upper": 1.2},
    ],
    "`standard`, whole": "standard",
}


def _peer_stages() -> dict | None:
    """The peer's transforms for the same rows (benchmarks/peer_albumentations.py), or None
    without albumentations."""
    if importlib.util.find_spec("albumentations") is None:
        return None
    import albumentations as A
    import cv2

    from benchmarks.peer_albumentations import _pipeline

    cv2.setNumThreads(0)  # as the peer runs: one process per core, OpenCV single-threaded
    whole = _pipeline()
    by_kind = {type(transform).__name__: transform for transform in whole.transforms}
    return {
        "flip (p 0.5)": A.Compose([by_kind["HorizontalFlip"]]),
        "warp: rotate, zoom, translate (p 0.8 each)": A.Compose([by_kind["Affine"]]),
        "brightness": A.Compose([by_kind["RandomBrightnessContrast"]]),
        "contrast + saturation": A.Compose([by_kind["ColorJitter"]]),
        "`standard`, whole": whole,
    }


def stage_profile(size: int = 224, images: int = 64, repeats: int = 5) -> list[dict]:
    """Microseconds per image of each stage: ours in one core call of `images` uint8 crops
    (the offline door's call size at 224 px; the door runs it in CORE_THREADS parts at once,
    here it is one call), the peer's albumentations transform image by image on the same
    crops, and one TensorFlow element-wise pass for scale."""
    import numpy as np
    import tensorflow as tf
    from tfx_image_augment import augment, load_policy

    from pipelines.data import photo_crops

    crops = photo_crops(size, images, seed=11)
    seeds = np.arange(2 * images, dtype=np.int64).reshape(images, 2)

    def per_image(fn) -> float:
        return microseconds_per_image(fn, images, repeats)

    peer = _peer_stages()
    rows = []
    for name, ops in STAGES.items():
        policy = load_policy(ops if isinstance(ops, str) else {"version": 1, "ops": ops})
        row = {
            "stage": name,
            "ours_us": round(per_image(lambda: augment(crops, seeds, policy).numpy())),  # noqa: B023
        }
        if peer is not None:
            transform = peer[name]
            transform.set_random_state(np.random.default_rng(0), Random(0))
            row["peer_us"] = round(
                per_image(lambda: [transform(image=c)["image"] for c in crops])  # noqa: B023
            )
        rows.append(row)
    batch = tf.constant(crops.astype(np.float32) / 255.0)
    one_pass = tf.function(lambda x: x * 1.5)
    rows.append(
        {
            "stage": "one TensorFlow element-wise pass (a float32 multiply)",
            "ours_us": round(per_image(lambda: one_pass(batch).numpy())),
        }
    )
    return rows


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
    stages = stage_profile(repeats=2 if args.quick else 5)
    lines += ["", stage_table(stages)]
    command = "python -m benchmarks.phases" + (" --quick" if args.quick else "")
    write_results(
        "phases" + ("_quick" if args.quick else ""),
        rows,
        "\n".join(lines),
        command,
        started,
        extra={"date": datetime.date.today().isoformat(), "stages_224": stages},
    )


if __name__ == "__main__":
    main()
