"""Images/s of each op and of the `standard` preset, against the Keras 3 built-in equivalents.

Every measurement is one `tf.data` pipeline: a cached batch of real photo crops (scikit-learn's
JPEGs), repeated, mapped through the augmentation (batch 128), consumed on the CPU.

    python -m benchmarks.core_ops [--quick] [--repeats 3] [--device cpu|gpu]

`--device gpu` runs both sides on the first GPU TensorFlow sees (5x more batches), and says why
it skipped when there is none. What to expect there, on paper: our warps and resizes are
TensorFlow's GPU kernels like Keras's; the per-image draws and parameters are a few hundred
small elementwise ops per batch (a fixed ~1-2 ms of launches, whatever the batch size), so a GPU
gains most at 224 px and large batches. Pixels on a GPU are not promised equal to a CPU's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

os.environ["TF_USE_LEGACY_KERAS"] = "0"  # Keras 3 built-ins are the comparison
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # TensorFlow loads before `components`
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from tfx_image_augment import environment  # noqa: E402

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
from tfx_image_augment import ImageAugmentation  # noqa: E402
from tfx_image_augment.core.ops import OPS as REGISTRY  # noqa: E402

from benchmarks.common import keras3_standard_chain, write_results  # noqa: E402
from pipelines.data import photo_crops  # noqa: E402

BATCH = 128
OPS = {
    "flip_left_right": {"op": "flip_left_right", "p": 0.5},
    "rotate": {"op": "rotate", "max_degrees": 20},
    "zoom": {"op": "zoom", "min_scale": 0.8, "max_scale": 1.2},
    "translate": {"op": "translate", "max_dx": 0.1, "max_dy": 0.1},
    "shear": {"op": "shear", "max_degrees": 15},
    "random_resized_crop": {"op": "random_resized_crop"},
    "brightness": {"op": "brightness", "max_delta": 0.2},
    "contrast": {"op": "contrast", "lower": 0.8, "upper": 1.2},
    "saturation": {"op": "saturation", "lower": 0.8, "upper": 1.2},
    "hue": {"op": "hue", "max_delta": 0.1},
    "gamma": {"op": "gamma", "min": 0.8, "max": 1.2},
    "gaussian_noise": {"op": "gaussian_noise", "stddev": 0.05},
    "gaussian_blur": {"op": "gaussian_blur", "sigma": [0.5, 1.5]},
    "jpeg_quality": {"op": "jpeg_quality", "min": 50, "max": 95},
    "grayscale": {"op": "grayscale", "p": 0.2},
    "solarize": {"op": "solarize"},
    "posterize": {"op": "posterize", "bits": 4},
    "equalize": {"op": "equalize"},
    "autocontrast": {"op": "autocontrast"},
    "sharpness": {"op": "sharpness", "lower": 0.5, "upper": 1.5},
    "cutout": {"op": "cutout", "size": 0.25},
}


def keras_equivalent(name: str, size: int):
    """The Keras 3 chain that does what benchmark op `name` does: the op registry's counterpart
    (`OpDef.keras`) with this benchmark's fields, or None where Keras has none."""
    layers = tf.keras.layers
    if name == "standard":
        chain = keras3_standard_chain(layers)
    else:
        op = REGISTRY[name]
        if op.keras is None:
            return None
        fields = {field: spec.default for field, spec in op.fields.items()} | OPS[name]
        chain = op.keras(layers, fields, size)

    def apply(x):
        x = tf.cast(x, tf.float32)
        for layer in chain:
            x = layer(x, training=True)
        return x

    return apply


def images_per_second(fn, images: np.ndarray, batches: int) -> float:
    dataset = (
        tf.data.Dataset.from_tensor_slices(images)
        .batch(BATCH)
        .cache()
        .repeat()
        .map(fn, num_parallel_calls=tf.data.AUTOTUNE)
        .prefetch(2)
        .take(batches + 2)
    )
    iterator = iter(dataset)
    next(iterator), next(iterator)  # warm up: trace and fill the pipeline
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * BATCH / (time.perf_counter() - start)


def _device_or_skip(device: str) -> str | None:
    """The TensorFlow device to run on, or None (with the reason printed) when there is none."""
    if device == "cpu":
        return "/CPU:0"
    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        print(
            "core_ops --device gpu: skipped, TensorFlow sees no GPU on this machine "
            f"(built with CUDA: {tf.test.is_built_with_cuda()}). Run it where one is visible.",
            file=sys.stderr,
        )
        return None
    return "/GPU:0"


def _spread(values: list[float]) -> dict:
    return {
        "median": round(statistics.median(values)),
        "min": round(min(values)),
        "max": round(max(values)),
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer batches, fewer ops")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=("cpu", "gpu"), default="cpu")
    parser.add_argument("--name", help="results file name (default core_ops[_quick][_gpu])")
    args = parser.parse_args(argv)
    device = _device_or_skip(args.device)
    if device is None:
        return
    started = time.time()
    rows = []
    names = (
        ["standard", *OPS]
        if not args.quick
        else ["standard", "flip_left_right", "rotate", "brightness", "contrast"]
    )
    for size in (32, 224):
        batches = {32: 30, 224: 6}[size] // (3 if args.quick else 1)
        if device != "/CPU:0":
            batches *= 5  # a GPU is through a CPU's batches before the clock means anything
        images = photo_crops(size, BATCH)
        for name in names:
            config = "standard" if name == "standard" else {"version": 1, "ops": [OPS[name]]}
            layer = ImageAugmentation(config, seed=1)
            builtin = keras_equivalent(name, size)
            ours, theirs = [], []
            with tf.device(device):
                for _ in range(args.repeats):  # interleaved, as offline
                    ours.append(images_per_second(layer, images, batches))
                    if builtin:
                        theirs.append(images_per_second(builtin, images, batches))
            ratios = [a / b for a, b in zip(ours, theirs, strict=True)] if theirs else []
            rows.append(
                {
                    "size": size,
                    "op": name,
                    "ours": _spread(ours),
                    "keras3": _spread(theirs) if theirs else None,
                    "ratio": (
                        {k: round(v, 2) for k, v in _spread_float(ratios).items()}
                        if ratios
                        else None
                    ),
                }
            )
            print(rows[-1], file=sys.stderr)
    lines = [
        f"Device: {device}. Each figure: median (min-max) of {args.repeats} interleaved repeats; "
        "the ratio's spread pairs repeat i of ours with repeat i of Keras.",
        "",
        "| size | op | ImageAugmentation img/s | Keras 3 built-ins img/s | ours / Keras |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['size']} | {row['op']} | {_cell(row['ours'])} | "
            f"{_cell(row['keras3'])} | {_cell(row['ratio'], 2)} |"
        )
    suffix = ("_quick" if args.quick else "") + ("_gpu" if args.device == "gpu" else "")
    command = (
        "python -m benchmarks.core_ops"
        + (" --quick" if args.quick else "")
        + (" --device gpu" if args.device == "gpu" else "")
    )
    write_results(
        args.name or "core_ops" + suffix,
        rows,
        "\n".join(lines),
        command,
        started,
        extra={"device": device},
    )


def _spread_float(values: list[float]) -> dict:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


def _cell(spread: dict | None, digits: int = 0) -> str:
    if spread is None:
        return ""
    return (
        f"{spread['median']:,.{digits}f} ({spread['min']:,.{digits}f}-{spread['max']:,.{digits}f})"
    )


if __name__ == "__main__":
    main()
