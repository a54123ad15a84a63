"""The peer: what a competent user would write instead, with albumentations and OpenCV.

    python -m benchmarks.peer_albumentations INPUT_GLOB OUTPUT_DIR COPIES [--processes N]

Needs benchmarks/requirements-peer.txt (albumentations, OpenCV), never the package itself:
`make bench` installs it. A `multiprocessing` pool of N processes (default: one per core), each
reading its share of the input files with TensorFlow's record reader and writing its own
gzipped TFRecord shard. For every record: the original, unchanged, then COPIES augmented copies,
each the input's tf.Example with its `image` re-encoded (every other feature, `label` and `id`
among them, kept): decoded by cv2.imdecode, augmented by one `A.Compose` of the `standard`
preset's ops, re-encoded in the input's format (JPEG at quality 95, PNG at zlib level 1, as
ours). A record's copies are drawn in turn from generators seeded by (--seed, the record's
`id`): copy k of a record is the same whatever N and whichever process makes it.

The `standard` preset in albumentations: HorizontalFlip p 0.5; rotation +-15 degrees, zoom
0.9-1.1 (one scale for both axes) and translation +-10% as one Affine at p 0.8 (ours draws each
at p 0.8 and warps when any is drawn, 99.2% of copies; the peer warps 80%: in its favour),
bilinear, reflected border (ours' default fill); brightness as an added +-0.2 of the range
(RandomBrightnessContrast, as ours); contrast and saturation 0.8-1.2 around the grey mean and
the grey image (ColorJitter, in random order; ours: contrast around each channel's mean, then
saturation). Pixels stay uint8 between ops (ours: float32, rounded once at the end).

Prints `PEER <copies written> <seconds>`: the seconds from the moment every process has its
imports done and its pipeline built (they wait for each other) to the last shard closed, as
`benchmarks/handwritten_tfdata.py` times its loop and not TensorFlow's import. Originals are
written but not counted, as ours counts `copies_written`.
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import importlib.util
import multiprocessing
import os
import sys
import time
from random import Random

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")  # no version check over the network

JPEG_MAGIC = b"\xff\xd8"
_worker: dict = {}


def _pipeline():
    import albumentations as A
    import cv2

    return A.Compose(
        [
            A.HorizontalFlip(p=0.5),
            A.Affine(
                rotate=(-15, 15),
                scale=(0.9, 1.1),
                translate_percent=(-0.1, 0.1),
                keep_ratio=True,  # one scale for both axes, as ours
                interpolation=cv2.INTER_LINEAR,
                border_mode=cv2.BORDER_REFLECT,
                p=0.8,
            ),
            A.RandomBrightnessContrast(
                brightness_limit=0.2, contrast_limit=0, brightness_by_max=True, p=1.0
            ),
            A.ColorJitter(brightness=0, contrast=(0.8, 1.2), saturation=(0.8, 1.2), hue=0, p=1.0),
        ]
    )


def _start(ready) -> None:
    """Pool initializer: the imports and the pipeline, then wait for every process and the
    parent, so the clock starts with all of them ready."""
    import cv2
    import numpy as np
    import tensorflow as tf

    cv2.setNumThreads(0)  # one process per core: no OpenCV threads on top
    tf.get_logger().setLevel("ERROR")  # tf_record_iterator's deprecation notice
    _worker.update(cv2=cv2, np=np, tf=tf, transform=_pipeline())
    ready.wait(timeout=600)


def _records(files: list[str], index: int, processes: int, by_record: bool):
    """The share of this process: its files' records, or every `processes`-th record of them all.

    TensorFlow's plain record reader (~10 us a record on a 2-core machine): an eager tf.data
    iterator took 0.5-1 ms a record there, more than augmenting a 32 px copy."""
    import itertools

    tf = _worker["tf"]
    records = itertools.chain.from_iterable(
        tf.compat.v1.io.tf_record_iterator(path) for path in files
    )
    return itertools.islice(records, index, None, processes) if by_record else records


def _record_seed(seed: int, key: bytes) -> int:
    digest = hashlib.blake2b(key, digest_size=8, key=seed.to_bytes(8, "little"))
    return int.from_bytes(digest.digest(), "little")


def _work(task: tuple[list[str], bool, str, int, int, int, int]) -> int:
    """One process's share -> its own shard. Returns the copies written."""
    files, by_record, output, index, processes, copies, seed = task
    cv2, np, tf = _worker["cv2"], _worker["np"], _worker["tf"]
    transform = _worker["transform"]
    jpeg = [cv2.IMWRITE_JPEG_QUALITY, 95]
    png = [cv2.IMWRITE_PNG_COMPRESSION, 1]
    written = 0
    path = os.path.join(output, f"data-{index:05d}-of-{processes:05d}.tfrecord.gz")
    # Encoded images do not deflate: stored gzip blocks (level 0), as our sink writes them, so
    # neither side pays level 6 for nothing.
    options = tf.io.TFRecordOptions(compression_type="GZIP", compression_level=0)
    with tf.io.TFRecordWriter(path, options) as writer:
        for record in _records(files, index, processes, by_record):
            writer.write(record)  # the original, unchanged
            example = tf.train.Example.FromString(record)
            features = example.features.feature
            image = features["image"].bytes_list
            data = image.value[0]
            key = features["id"].bytes_list.value[0]
            bgr = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
            rgb = cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)  # albumentations' colour ops want RGB
            ext, params = (".jpg", jpeg) if data[:2] == JPEG_MAGIC else (".png", png)
            # Seeded per record, copies 1..K drawn in turn: copy k of a record is the same
            # whichever process, and in whichever order, it is made (new generators cost
            # ~40 us, a tenth of a 32 px copy's augmentation: once per record, not per copy).
            record_seed = _record_seed(seed, key)
            transform.set_random_state(np.random.default_rng(record_seed), Random(record_seed))
            for _ in range(copies):
                out = transform(image=rgb)["image"]
                ok, encoded = cv2.imencode(ext, cv2.cvtColor(out, cv2.COLOR_RGB2BGR), params)
                if not ok:
                    raise RuntimeError(f"cv2.imencode failed for {key!r}")
                image.value[0] = encoded.tobytes()
                writer.write(example.SerializeToString(deterministic=True))  # as ours
                written += 1
    return written


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("pattern")
    parser.add_argument("output_dir")
    parser.add_argument("copies", type=int)
    parser.add_argument("--processes", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    missing = [m for m in ("albumentations", "cv2") if importlib.util.find_spec(m) is None]
    if missing:  # before the pool: a failing initializer would be restarted again and again
        raise SystemExit(
            f"needs {', '.join(missing)}: pip install -r benchmarks/requirements-peer.txt"
        )
    files = sorted(glob.glob(args.pattern))
    if not files:
        raise SystemExit(f"no input file matches {args.pattern}")
    os.makedirs(args.output_dir, exist_ok=True)
    processes = args.processes
    by_record = len(files) < processes
    tasks = [
        (
            files if by_record else files[i::processes],
            by_record,
            args.output_dir,
            i,
            processes,
            args.copies,
            args.seed,
        )
        for i in range(processes)
    ]
    # The parent imports no TensorFlow: the pool forks clean processes, each imports its own.
    context = multiprocessing.get_context("fork")
    ready = context.Barrier(processes + 1)
    with context.Pool(processes, initializer=_start, initargs=(ready,)) as pool:
        ready.wait(timeout=600)
        started = time.perf_counter()
        written = sum(pool.map(_work, tasks, chunksize=1))
        seconds = time.perf_counter() - started
    print(f"PEER {written} {seconds:.3f}")


if __name__ == "__main__":
    main(sys.argv[1:])
