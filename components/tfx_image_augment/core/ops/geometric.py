"""Geometric ops: each is an affine output->input map per image (and, for flips and crops, a
cheaper path the core takes when the op stands alone). Masks, boxes and keypoints move by the
same map, so every target of an image moves alike by construction."""

from __future__ import annotations

import math

from tfx_image_augment.core.lazy import tf
from tfx_image_augment.core.ops import portable_math
from tfx_image_augment.core.ops.base import (
    GEOMETRIC,
    REQUIRED,
    Field,
    OpDef,
    RandAugmentSlot,
    symmetric,
    uniform,
)


def about_centre(linear: tf.Tensor, shift: tf.Tensor, height, width) -> tf.Tensor:
    """[B,3,3] output->input map x_in = L (x - c) + c + shift, c the image centre."""
    cx, cy = (width - 1.0) / 2.0, (height - 1.0) / 2.0
    # Written out elementwise: batched matmul kernels change their summation order with the
    # batch size, which would make an image's warp depend on its batch.
    offset = tf.stack(
        [
            cx - (linear[:, 0, 0] * cx + linear[:, 0, 1] * cy),
            cy - (linear[:, 1, 0] * cx + linear[:, 1, 1] * cy),
        ],
        axis=1,
    )
    top = tf.concat([linear, (offset + shift)[:, :, None]], axis=2)
    bottom = tf.broadcast_to(tf.constant([[0.0, 0.0, 1.0]]), [tf.shape(linear)[0], 1, 3])
    return tf.concat([top, bottom], axis=1)


def matrix_2x2(a, b, c, d) -> tf.Tensor:
    return tf.stack([tf.stack([a, b], axis=-1), tf.stack([c, d], axis=-1)], axis=-2)


def _linear(u: tf.Tensor, a, b, c, d, height, width, shift=None) -> tf.Tensor:
    batch = tf.shape(u)[0]
    shift = tf.zeros([batch, 2]) if shift is None else shift
    return about_centre(matrix_2x2(a, b, c, d), shift, height, width)


def _ones_zeros(u: tf.Tensor):
    batch = tf.shape(u)[0]
    return tf.ones([batch]), tf.zeros([batch])


def _flip_lr(op, u, height, width):
    ones, zeros = _ones_zeros(u)
    return _linear(u, -ones, zeros, zeros, ones, height, width)


def _flip_ud(op, u, height, width):
    ones, zeros = _ones_zeros(u)
    return _linear(u, ones, zeros, zeros, -ones, height, width)


def _rotate(op, u, height, width):
    angle = symmetric(u, 0, math.radians(op["max_degrees"]))
    cos, sin = portable_math.cos_sin(angle)
    return _linear(u, cos, -sin, sin, cos, height, width)


def _zoom(op, u, height, width):
    _, zeros = _ones_zeros(u)
    # In float64: TensorFlow rewrites a float32 1 / x into a reciprocal whose vectorised CPU
    # path is an approximation (the same image could get another scale in another batch).
    scale = tf.cast(uniform(u, 0, op["min_scale"], op["max_scale"]), tf.float64)
    inverse_scale = tf.cast(1.0 / scale, tf.float32)
    return _linear(u, inverse_scale, zeros, zeros, inverse_scale, height, width)


def _translate(op, u, height, width):
    ones, zeros = _ones_zeros(u)
    shift = tf.stack(
        [-symmetric(u, 0, op["max_dx"]) * width, -symmetric(u, 1, op["max_dy"]) * height], axis=1
    )
    return _linear(u, ones, zeros, zeros, ones, height, width, shift)


def _shear(op, u, height, width):
    ones, zeros = _ones_zeros(u)
    limit = math.radians(op["max_degrees"])
    shear_x = portable_math.tan(symmetric(u, 0, limit)) if op["axis"] != "y" else zeros
    shear_y = portable_math.tan(symmetric(u, 1, limit)) if op["axis"] != "x" else zeros
    # (shear along x) @ (shear along y): determinant 1, never degenerate.
    return _linear(u, 1.0 + shear_x * shear_y, shear_x, shear_y, ones, height, width)


def crop_box(op, u, height, width):
    """Crop height/width (pixels) and top-left corner, torchvision-style but without retries."""
    area = uniform(u, 0, *op["scale"]) * height * width
    log_ratio = uniform(u, 1, math.log(op["ratio"][0]), math.log(op["ratio"][1]))
    ratio = tf.cast(portable_math.exp64(log_ratio), tf.float32)
    crop_w = tf.minimum(portable_math.sqrt(area * ratio), width)
    crop_h = tf.minimum(portable_math.sqrt(area / ratio), height)
    x0 = u[:, 2] * (width - crop_w)
    y0 = u[:, 3] * (height - crop_h)
    return crop_h, crop_w, y0, x0


def _random_resized_crop(op, u, height, width):
    ones, zeros = _ones_zeros(u)
    crop_h, crop_w, y0, x0 = crop_box(op, u, height, width)
    sx, sy = crop_w / width, crop_h / height
    row0 = tf.stack([sx, zeros, x0 + 0.5 * sx - 0.5], axis=1)
    row1 = tf.stack([zeros, sy, y0 + 0.5 * sy - 0.5], axis=1)
    row2 = tf.stack([zeros, zeros, ones], axis=1)
    return tf.stack([row0, row1, row2], axis=1)


GEOMETRIC_OPS = (
    OpDef(
        "flip_left_right",
        GEOMETRIC,
        matrix=_flip_lr,
        flip_axis=2,
        example={"p": 0.5},
        keras=lambda layers, f, size: [layers.RandomFlip("horizontal", seed=1)],
    ),
    OpDef(
        "flip_up_down",
        GEOMETRIC,
        matrix=_flip_ud,
        flip_axis=1,
        example={"p": 0.5},
        keras=lambda layers, f, size: [layers.RandomFlip("vertical", seed=1)],
    ),
    OpDef(
        "rotate",
        GEOMETRIC,
        "`max_degrees`",
        {"max_degrees": Field("number", 0, 180, default=REQUIRED, typical=(0, 180))},
        draws=1,
        matrix=_rotate,
        randaugment=(RandAugmentSlot(2, lambda level: {"max_degrees": 30 * level}),),
        example={"max_degrees": 25},
        keras=lambda layers, f, size: [layers.RandomRotation(f["max_degrees"] / 360, seed=1)],
    ),
    OpDef(
        "zoom",
        GEOMETRIC,
        "`min_scale`, `max_scale` (>1 zooms in)",
        {
            "min_scale": Field("number", 0, 10, default=REQUIRED, low_open=True, typical=(0.5, 2)),
            "max_scale": Field("number", 0, 10, default=REQUIRED, low_open=True, typical=(0.5, 2)),
        },
        draws=1,
        matrix=_zoom,
        ordered=("min_scale", "max_scale"),
        example={"min_scale": 0.8, "max_scale": 1.3},
        # Keras' zoom factor is the change of the field of view: 1.3x bigger shows 1/1.3.
        keras=lambda layers, f, size: [
            layers.RandomZoom((1 / f["max_scale"] - 1, 1 / f["min_scale"] - 1), seed=1)
        ],
    ),
    OpDef(
        "translate",
        GEOMETRIC,
        "`max_dx`, `max_dy` (fractions of width, height)",
        {
            "max_dx": Field("number", 0, 1, default=REQUIRED, typical=(0, 0.5)),
            "max_dy": Field("number", 0, 1, default=REQUIRED, typical=(0, 0.5)),
        },
        draws=2,
        matrix=_translate,
        randaugment=(
            RandAugmentSlot(11, lambda level: {"max_dx": 0.45 * level, "max_dy": 0.0}),
            RandAugmentSlot(12, lambda level: {"max_dx": 0.0, "max_dy": 0.45 * level}),
        ),
        example={"max_dx": 0.2, "max_dy": 0.1},
        keras=lambda layers, f, size: [layers.RandomTranslation(f["max_dy"], f["max_dx"], seed=1)],
    ),
    OpDef(
        "shear",
        GEOMETRIC,
        "`max_degrees`, `axis` (`x`, `y`, `both`)",
        {
            "max_degrees": Field("number", 0, 60, default=REQUIRED, typical=(0, 45)),
            "axis": Field("string", default="both", choices=("x", "y", "both")),
        },
        draws=2,
        matrix=_shear,
        randaugment=(
            RandAugmentSlot(9, lambda level: {"max_degrees": 17 * level, "axis": "x"}),
            RandAugmentSlot(10, lambda level: {"max_degrees": 17 * level, "axis": "y"}),
        ),
        example={"max_degrees": 20},
    ),
    OpDef(
        "random_resized_crop",
        GEOMETRIC,
        "`scale` [lo, hi] of the area, `ratio` [lo, hi]; output keeps the size",
        {
            "scale": Field("range", 0, 1, default=(0.08, 1.0), low_open=True, typical=(0.1, 1)),
            "ratio": Field("range", 0, 10, default=(3 / 4, 4 / 3), low_open=True, typical=(0.5, 2)),
        },
        draws=4,
        matrix=_random_resized_crop,
        crop_box=crop_box,
        example={},
        keras=lambda layers, f, size: [
            layers.RandomCrop(int(size * 0.8), int(size * 0.8), seed=1),
            layers.Resizing(size, size),
        ],
    ),
)
