"""A lever measured and dropped (docs/benchmarks.md): brightness, contrast and saturation of
uint8 images in fixed-point integer arithmetic, with and without XLA, against the core's float
ops, at 224 px in a call of 64 images.

    python -m benchmarks.integer_photometric

Integer arithmetic rounds alike in any batch, with or without XLA and on every instruction set,
so the offline door could compile it while the SavedModel does not; it would still be a new
pixel rule (a seed-rule bump). Prints microseconds per image and whether XLA's results equal the
graph's, alone and in the batch. Not part of `make bench`.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

IMAGES = 64


def photometric(images, delta, contrast, saturation):
    """Brightness (+delta levels), contrast around each channel's mean (an exact integer sum,
    rounded to Q8), saturation around the Q8 luma; factors in Q8 (x 256), rounded half up,
    clipped after each op."""
    import tensorflow as tf

    x = tf.clip_by_value(tf.cast(images, tf.int32) + delta[:, None, None, None], 0, 255)
    pixels = tf.shape(x)[1] * tf.shape(x)[2]
    total = tf.reduce_sum(x, axis=[1, 2], keepdims=True)  # integer sums: exact
    # total * 256 overflows int32 above a mean of 167 levels at 224 px: split it.
    mean8 = (total // pixels) * 256 + ((total % pixels) * 256 + pixels // 2) // pixels
    factor = contrast[:, None, None, None]
    x = tf.clip_by_value((mean8 * 256 + (x * 256 - mean8) * factor + 32768) // 65536, 0, 255)
    grey8 = x[..., 0:1] * 77 + x[..., 1:2] * 150 + x[..., 2:3] * 29
    factor = saturation[:, None, None, None]
    x = tf.clip_by_value((grey8 * 256 + (x * 256 - grey8) * factor + 32768) // 65536, 0, 255)
    return tf.cast(x, tf.uint8)


def main() -> None:
    import numpy as np
    import tensorflow as tf
    from tfx_image_augment import augment, load_policy

    from benchmarks.phases import STAGES, microseconds_per_image
    from pipelines.data import photo_crops

    crops = photo_crops(224, IMAGES, seed=11)
    rng = np.random.default_rng(0)
    draws = (
        tf.constant(np.round(rng.uniform(-0.2, 0.2, IMAGES) * 255).astype(np.int32)),
        tf.constant(np.round(rng.uniform(0.8, 1.2, IMAGES) * 256).astype(np.int32)),
        tf.constant(np.round(rng.uniform(0.8, 1.2, IMAGES) * 256).astype(np.int32)),
    )
    images = tf.constant(crops)

    def per_image(fn) -> float:
        return microseconds_per_image(lambda: fn().numpy(), IMAGES, repeats=5)

    graph = tf.function(photometric)
    xla = tf.function(photometric, jit_compile=True)
    graph_us = per_image(lambda: graph(images, *draws))
    xla_us = per_image(lambda: xla(images, *draws))
    graph_out, xla_out = graph(images, *draws).numpy(), xla(images, *draws).numpy()
    alone = np.stack([xla(images[i : i + 1], *(d[i : i + 1] for d in draws))[0] for i in range(8)])
    # The same three ops as the stage profile's rows, as one policy.
    ops = STAGES["brightness"] + STAGES["contrast + saturation"]
    policy = load_policy({"version": 1, "ops": ops})
    seeds = np.arange(2 * IMAGES, dtype=np.int64).reshape(IMAGES, 2)
    core_us = per_image(lambda: augment(crops, seeds, policy))
    print(f"integer ops, graph: {graph_us:,.0f} us per image")
    print(f"integer ops, XLA:   {xla_us:,.0f} us per image")
    print(
        f"XLA == graph: {np.array_equal(graph_out, xla_out)}; alone == in the batch: "
        f"{np.array_equal(alone, xla_out[:8])}"
    )
    print(f"the core's float ops today: {core_us:,.0f} us per image")


if __name__ == "__main__":
    main()
