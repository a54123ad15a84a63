"""Photometric ops: colour transforms of float32 images in [0, 1], colour channels only (the
core keeps alpha aside). Geometry (masks, boxes, keypoints) is never touched by them.

Every function here computes each image's result with arithmetic that does not depend on the
batch around it (see the notes on sums and transcendental functions), so an image gets the same
pixels alone or in any batch.
"""

from __future__ import annotations

import dataclasses
import math

from tfx_image_augment.core.lazy import tf
from tfx_image_augment.core.ops.base import (
    PHOTOMETRIC,
    REQUIRED,
    Field,
    OpDef,
    RandAugmentSlot,
    symmetric,
    uniform,
)
from tfx_image_augment.core.seeds import NOISE_STREAM

GRAY_WEIGHTS = (0.2989, 0.5870, 0.1140)  # ITU-R 601-2 luma, as tf.image and PIL use


@dataclasses.dataclass(frozen=True)
class PixelContext:
    """What a few ops need beyond their draws: per-image seeds and the op's node id (noise draws
    a whole image of normals from its own stream)."""

    seeds: tf.Tensor
    node_id: int


def per_image(values: tf.Tensor) -> tf.Tensor:
    return values[:, None, None, None]


def grayscale(x: tf.Tensor) -> tf.Tensor:
    if x.shape[-1] == 1:
        return x
    # Written out rather than reduce_sum: a fixed order of additions for every image.
    red, green, blue = (x[..., i : i + 1] * w for i, w in enumerate(GRAY_WEIGHTS))
    return (red + green) + blue


def spatial_mean(x: tf.Tensor) -> tf.Tensor:
    """Per-image, per-channel mean [B,1,1,C], the same whatever the batch around the image.

    Float32 reductions sum in an order that depends on the tensor's shape (batch size, thread
    count), so the same image could get a mean one ulp apart in two batches, and a pixel one
    level apart after rounding. Summing in float64 makes such differences vanish on the way back
    to float32.
    """
    return tf.cast(tf.reduce_mean(tf.cast(x, tf.float64), axis=[1, 2], keepdims=True), x.dtype)


def blend(base: tf.Tensor, x: tf.Tensor, factor: tf.Tensor) -> tf.Tensor:
    """base + factor * (x - base): factor 1 is x, 0 is base (PIL ImageEnhance semantics)."""
    return base + per_image(factor) * (x - base)


def shift(x: tf.Tensor, dy: int, dx: int) -> tf.Tensor:
    """x moved by (dy, dx) pixels with zeros coming in (elementwise, batch-independent)."""
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    pad_y, pad_x = abs(dy), abs(dx)
    padded = tf.pad(x, [[0, 0], [pad_y, pad_y], [pad_x, pad_x], [0, 0]])
    return padded[:, pad_y - dy : pad_y - dy + height, pad_x - dx : pad_x - dx + width, :]


def gaussian_blur(x: tf.Tensor, sigma: tf.Tensor, max_sigma: float) -> tf.Tensor:
    """Separable blur with a per-image sigma; borders renormalised (no reflected pixels).

    Written as weighted shifts rather than a convolution so every image's result is the same
    arithmetic alone or in any batch.
    """
    radius = max(1, int(math.ceil(3.0 * max_sigma)))
    offsets = tf.range(-radius, radius + 1, dtype=tf.float32)
    weights = tf.map_fn(
        lambda one_sigma: tf.exp(-0.5 * tf.square(offsets / one_sigma)),
        sigma,
        fn_output_signature=tf.TensorSpec([2 * radius + 1], tf.float32),
    )
    ones = tf.ones_like(x[..., :1])

    def one_pass(values, norm, vertical):
        total, count = tf.zeros_like(values), tf.zeros_like(norm)
        for k in range(2 * radius + 1):
            d = k - radius
            w = per_image(weights[:, k])
            dy, dx = (d, 0) if vertical else (0, d)
            total += w * shift(values, dy, dx)
            count += w * shift(norm, dy, dx)
        return total, count

    blurred, norm = one_pass(x, ones, vertical=True)
    blurred, norm = blurred / norm, ones
    blurred, norm = one_pass(blurred, ones, vertical=False)
    return blurred / norm


def sharpen_base(x: tf.Tensor) -> tf.Tensor:
    """PIL's SMOOTH filter (centre 5, neighbours 1, /13); border pixels keep their value."""
    total = 5.0 * x
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                total += shift(x, dy, dx)
    smooth = total / 13.0
    height, width = tf.shape(x)[1], tf.shape(x)[2]
    rows = tf.range(height)[:, None]
    cols = tf.range(width)[None, :]
    inner = (rows > 0) & (rows < height - 1) & (cols > 0) & (cols < width - 1)
    return tf.where(inner[None, :, :, None], smooth, x)


def equalize(x: tf.Tensor) -> tf.Tensor:
    """PIL ImageOps.equalize per image and channel, batched through one bincount."""
    values = tf.cast(tf.round(x * 255.0), tf.int32)  # [B, H, W, C]
    batch, channels = tf.shape(values)[0], tf.shape(values)[3]
    planes = tf.transpose(values, [0, 3, 1, 2])  # [B, C, H, W]
    plane_ids = tf.range(batch * channels)[:, None, None]
    flat = tf.reshape(planes, [batch * channels, -1]) + tf.reshape(plane_ids, [-1, 1]) * 256
    hist = tf.reshape(
        tf.math.bincount(
            tf.reshape(flat, [-1]),
            minlength=batch * channels * 256,
            maxlength=batch * channels * 256,
        ),
        [batch * channels, 256],
    )
    last_nonzero = 255 - tf.argmax(
        tf.reverse(tf.cast(hist > 0, tf.int32), axis=[1]), axis=1, output_type=tf.int32
    )
    last_count = tf.gather(hist, last_nonzero, batch_dims=1)
    step = (tf.reduce_sum(hist, axis=1) - last_count) // 255
    safe_step = tf.maximum(step, 1)[:, None]
    exclusive = tf.cumsum(hist, axis=1, exclusive=True)
    lut = tf.minimum((exclusive + safe_step // 2) // safe_step, 255)
    lut = tf.where((step > 0)[:, None], lut, tf.range(256)[None, :])
    flat_planes = tf.reshape(planes, [batch * channels, -1])
    mapped = tf.gather(lut, flat_planes, batch_dims=1)
    mapped = tf.transpose(tf.reshape(mapped, tf.shape(planes)), [0, 2, 3, 1])
    return tf.cast(mapped, tf.float32) / 255.0


def autocontrast(x: tf.Tensor) -> tf.Tensor:
    """Stretches each channel to the full range, in integer arithmetic so eager and graph
    execution (where Grappler may rewrite float division) round every pixel alike."""
    values = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.int32)
    low = tf.reduce_min(values, axis=[1, 2], keepdims=True)
    span = tf.reduce_max(values, axis=[1, 2], keepdims=True) - low
    safe_span = tf.maximum(span, 1)
    stretched = ((values - low) * 510 + safe_span) // (2 * safe_span)  # round half up
    return tf.where(span > 0, tf.cast(stretched, tf.float32) / 255.0, x)


def jpeg(x: tf.Tensor, quality: tf.Tensor) -> tf.Tensor:
    as_uint8 = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)

    def one(args):
        image, q = args
        return tf.image.adjust_jpeg_quality(image, q)

    out = tf.map_fn(
        one,
        (as_uint8, quality),
        fn_output_signature=tf.TensorSpec([None, None, x.shape[-1]], tf.uint8),
    )
    return tf.cast(out, tf.float32) / 255.0


# ----------------------------------------------------------------------------------------------
# The ops: (op, x, u, context) -> x
# ----------------------------------------------------------------------------------------------


def _brightness(op, x, u, context):
    return x + per_image(symmetric(u, 0, op["max_delta"]))


def _contrast(op, x, u, context):
    return blend(spatial_mean(x), x, uniform(u, 0, op["lower"], op["upper"]))


def _saturation(op, x, u, context):
    if x.shape[-1] == 1:
        return x
    return blend(grayscale(x), x, uniform(u, 0, op["lower"], op["upper"]))


def _hue(op, x, u, context):
    if x.shape[-1] == 1:
        return x
    hsv = tf.image.rgb_to_hsv(tf.clip_by_value(x, 0.0, 1.0))
    hue = tf.math.floormod(hsv[..., :1] + per_image(symmetric(u, 0, op["max_delta"])), 1.0)
    return tf.image.hsv_to_rgb(tf.concat([hue, hsv[..., 1:]], axis=-1))


def _gamma(op, x, u, context):
    # One image at a time: vectorised pow changes its last bits with the batch around it.
    return tf.map_fn(
        lambda args: tf.pow(args[0], args[1]),
        (tf.clip_by_value(x, 0.0, 1.0), uniform(u, 0, op["min"], op["max"])),
        fn_output_signature=tf.TensorSpec(x.shape[1:], tf.float32),
    )


def _gaussian_noise(op, x, u, context):
    node_id = context.node_id
    noise = tf.map_fn(
        lambda s: tf.random.stateless_normal(
            tf.shape(x)[1:],
            tf.random.experimental.stateless_fold_in(
                tf.random.experimental.stateless_fold_in(s, node_id), NOISE_STREAM
            ),
        ),
        context.seeds,
        fn_output_signature=tf.TensorSpec(x.shape[1:], tf.float32),
    )
    return x + op["stddev"] * noise


def _gaussian_blur(op, x, u, context):
    low, high = op["sigma"]
    return gaussian_blur(x, uniform(u, 0, low, high), high)


def _jpeg_quality(op, x, u, context):
    quality = tf.cast(tf.floor(uniform(u, 0, op["min"], op["max"] + 1)), tf.int32)
    return jpeg(x, tf.minimum(quality, op["max"]))


def _grayscale(op, x, u, context):
    return tf.broadcast_to(grayscale(x), tf.shape(x))


def _solarize(op, x, u, context):
    return tf.where(x >= op["threshold"], 1.0 - x, x)


def _posterize(op, x, u, context):
    levels = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.int32)
    keep = 256 - 2 ** (8 - op["bits"])  # the top `bits` bits
    return tf.cast(tf.bitwise.bitwise_and(levels, keep), tf.float32) / 255.0


def _equalize(op, x, u, context):
    return equalize(tf.clip_by_value(x, 0.0, 1.0))


def _autocontrast(op, x, u, context):
    return autocontrast(x)


def _sharpness(op, x, u, context):
    return blend(sharpen_base(x), x, uniform(u, 0, op["lower"], op["upper"]))


def _cutout(op, x, u, context):
    shape = tf.shape(x)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)
    count = op["count"]
    centres_y = u[:, 0:count] * height  # [B, N]
    centres_x = u[:, count : 2 * count] * width
    half_h = 0.5 * op["size"] * height
    half_w = 0.5 * op["size"] * width
    rows = tf.range(height)[None, None, :] + 0.5  # pixel centres
    cols = tf.range(width)[None, None, :] + 0.5
    in_rows = tf.abs(rows - centres_y[:, :, None]) < half_h  # [B, N, H]
    in_cols = tf.abs(cols - centres_x[:, :, None]) < half_w  # [B, N, W]
    covered = tf.reduce_any(in_rows[:, :, :, None] & in_cols[:, :, None, :], axis=1)
    return tf.where(covered[:, :, :, None], tf.cast(op["fill"], x.dtype), x)


def _factor_pair(typical=(0.2, 2.0)) -> dict[str, Field]:
    return {
        "lower": Field("number", 0, 10, default=REQUIRED, typical=typical),
        "upper": Field("number", 0, 10, default=REQUIRED, typical=typical),
    }


def _spread(level: float) -> dict[str, float]:
    """torchvision's colour factors 1 +- 0.9 level."""
    return {"lower": 1 - 0.9 * level, "upper": 1 + 0.9 * level}


PHOTOMETRIC_OPS = (
    OpDef(
        "brightness",
        PHOTOMETRIC,
        "`max_delta`",
        {"max_delta": Field("number", 0, 1, default=REQUIRED, typical=(0, 0.5))},
        draws=1,
        pixels=_brightness,
        randaugment=(RandAugmentSlot(7, lambda level: {"max_delta": 0.5 * (0.9 * level)}),),
        example={"max_delta": 0.2},
        keras=lambda layers, f, size: [
            layers.RandomBrightness(f["max_delta"], value_range=(0, 255), seed=1)
        ],
    ),
    OpDef(
        "contrast",
        PHOTOMETRIC,
        "`lower`, `upper` (factors; 1 is unchanged)",
        _factor_pair(),
        draws=1,
        pixels=_contrast,
        ordered=("lower", "upper"),
        randaugment=(RandAugmentSlot(6, _spread),),
        example={"lower": 0.6, "upper": 1.4},
        keras=lambda layers, f, size: [layers.RandomContrast(1 - f["lower"], seed=1)],
    ),
    OpDef(
        "saturation",
        PHOTOMETRIC,
        "`lower`, `upper` (factors; 1 is unchanged)",
        _factor_pair((0.0, 2.0)),
        draws=1,
        pixels=_saturation,
        ordered=("lower", "upper"),
        randaugment=(RandAugmentSlot(4, _spread),),
        example={"lower": 0, "upper": 2},
    ),
    OpDef(
        "hue",
        PHOTOMETRIC,
        "`max_delta` (turns of the colour wheel)",
        {"max_delta": Field("number", 0, 0.5, default=REQUIRED, typical=(0, 0.5))},
        draws=1,
        pixels=_hue,
        example={"max_delta": 0.2},
    ),
    OpDef(
        "gamma",
        PHOTOMETRIC,
        "`min`, `max`",
        {
            "min": Field("number", 0, 10, default=REQUIRED, low_open=True, typical=(0.3, 3)),
            "max": Field("number", 0, 10, default=REQUIRED, low_open=True, typical=(0.3, 3)),
        },
        draws=1,
        pixels=_gamma,
        ordered=("min", "max"),
        example={"min": 0.5, "max": 2.0},
    ),
    OpDef(
        "gaussian_noise",
        PHOTOMETRIC,
        "`stddev`",
        {"stddev": Field("number", 0, 1, default=REQUIRED, typical=(0, 0.2))},
        pixels=_gaussian_noise,
        example={"stddev": 0.05},
    ),
    OpDef(
        "gaussian_blur",
        PHOTOMETRIC,
        "`sigma` [lo, hi] (pixels)",
        {"sigma": Field("range", 0, 10, default=REQUIRED, low_open=True, typical=(0.1, 2))},
        draws=1,
        pixels=_gaussian_blur,
        example={"sigma": [0.3, 1.5]},
    ),
    OpDef(
        "jpeg_quality",
        PHOTOMETRIC,
        "`min`, `max` (1-100)",
        {
            "min": Field("int", 1, 100, default=REQUIRED, typical=(5, 100)),
            "max": Field("int", 1, 100, default=REQUIRED, typical=(5, 100)),
        },
        draws=1,
        pixels=_jpeg_quality,
        ordered=("min", "max"),
        example={"min": 30, "max": 90},
    ),
    OpDef("grayscale", PHOTOMETRIC, pixels=_grayscale, example={"p": 0.5}),
    OpDef(
        "solarize",
        PHOTOMETRIC,
        "`threshold` (default 0.5)",
        {"threshold": Field("number", 0, 1, default=0.5)},
        pixels=_solarize,
        randaugment=(RandAugmentSlot(3, lambda level: {"threshold": 1.0 - level}),),
        example={"threshold": 0.7, "p": 0.5},
    ),
    OpDef(
        "posterize",
        PHOTOMETRIC,
        "`bits` (1-8)",
        {"bits": Field("int", 1, 8, default=REQUIRED)},
        pixels=_posterize,
        randaugment=(RandAugmentSlot(5, lambda level: {"bits": max(1, 8 - round(4 * level))}),),
        example={"bits": 5},
    ),
    OpDef(
        "equalize",
        PHOTOMETRIC,
        "",
        pixels=_equalize,
        randaugment=(RandAugmentSlot(1, lambda level: {}),),
        example={"p": 0.5},
    ),
    OpDef(
        "autocontrast",
        PHOTOMETRIC,
        "",
        pixels=_autocontrast,
        randaugment=(RandAugmentSlot(0, lambda level: {}),),
        example={"p": 0.5},
    ),
    OpDef(
        "sharpness",
        PHOTOMETRIC,
        "`lower`, `upper` (factors; 1 is unchanged)",
        _factor_pair((0.0, 2.0)),
        draws=1,
        pixels=_sharpness,
        ordered=("lower", "upper"),
        randaugment=(RandAugmentSlot(8, _spread),),
        example={"lower": 0.2, "upper": 1.8},
    ),
    OpDef(
        "cutout",
        PHOTOMETRIC,
        "`size` (fraction of each side), `count`, `fill`",
        {
            "size": Field("number", 0, 1, default=REQUIRED, low_open=True, typical=(0.05, 0.5)),
            "count": Field("int", 1, 16, default=1, typical=(1, 3)),
            "fill": Field("number", 0, 1, default=0.5),
        },
        draws=lambda op: 2 * op["count"],
        pixels=_cutout,
        example={"size": 0.2, "count": 2},
    ),
)
