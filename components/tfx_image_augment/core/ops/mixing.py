"""Mixing ops: an image blended with a partner image (MixUp, CutMix).

The partner enters as it was given (offline: the partner example's decoded pixels; online: the
previous image of the batch), in the same [0, 1] floats as the image at that point of the
policy: ops listed before a mixing op change the image alone, ops after it change the mix.
Each op returns the mixed pixels and the image's share of them (its weight in a soft label).
Both are computed per image with batch-proof arithmetic: the mixing weight comes from the
image's own uniforms through `portable_math.beta64`, and the pixel arithmetic is elementwise.
"""

from __future__ import annotations

from tfx_image_augment.core.lazy import tf
from tfx_image_augment.core.ops import portable_math
from tfx_image_augment.core.ops.base import MIXING, Field, OpDef
from tfx_image_augment.core.ops.photometric import per_image

_ALPHA = "alpha"


def _alpha(default: float) -> dict[str, Field]:
    # Beta(alpha, alpha): small alpha puts most weights near 0 or 1, alpha 1 is uniform.
    return {_ALPHA: Field("number", 0, 10, default=default, low_open=True, typical=(0.1, 4))}


def _mixup(op, x, partner, u):
    """Zhang et al. 2018: lam * x + (1 - lam) * partner, lam ~ Beta(alpha, alpha)."""
    share = tf.cast(portable_math.beta64(u[:, : portable_math.BETA_DRAWS], op[_ALPHA]), tf.float32)
    return per_image(share) * x + per_image(1.0 - share) * partner, share


def cutmix_box(op, u, height, width):
    """Each image's pasted rectangle (y0, x0, y1, x1), whole pixels as float64 [B] each, as
    Yun et al. 2019 and Keras's CutMix draw it: sides sqrt(1 - lam) of the image's, centred on
    a uniformly drawn pixel, clipped to the image (so the pasted share may be below 1 - lam)."""
    draws = portable_math.BETA_DRAWS
    lam = portable_math.beta64(u[:, :draws], op[_ALPHA])
    height, width = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    side = tf.sqrt(tf.maximum(1.0 - lam, 0.0))  # correctly rounded in float64
    half_h, half_w = tf.floor(height * side / 2.0), tf.floor(width * side / 2.0)
    centre_y = tf.floor(tf.cast(u[:, draws], tf.float64) * height)
    centre_x = tf.floor(tf.cast(u[:, draws + 1], tf.float64) * width)
    y0 = tf.clip_by_value(centre_y - half_h, 0.0, height)
    y1 = tf.clip_by_value(centre_y + half_h, 0.0, height)
    x0 = tf.clip_by_value(centre_x - half_w, 0.0, width)
    x1 = tf.clip_by_value(centre_x + half_w, 0.0, width)
    return y0, x0, y1, x1


def _cutmix(op, x, partner, u):
    """A rectangle of the partner pasted over the image; the image's share is what is left."""
    shape = tf.shape(x)
    height, width = shape[1], shape[2]
    y0, x0, y1, x1 = cutmix_box(op, u, height, width)
    rows = tf.range(tf.cast(height, tf.float64))[None, :]
    cols = tf.range(tf.cast(width, tf.float64))[None, :]
    in_rows = (rows >= y0[:, None]) & (rows < y1[:, None])  # [B, H]
    in_cols = (cols >= x0[:, None]) & (cols < x1[:, None])  # [B, W]
    pasted = in_rows[:, :, None, None] & in_cols[:, None, :, None]
    area = tf.cast(height, tf.float64) * tf.cast(width, tf.float64)
    share = tf.cast(1.0 - (y1 - y0) * (x1 - x0) / area, tf.float32)
    return tf.where(pasted, partner, x), share


MIXING_OPS = (
    OpDef(
        "mixup",
        MIXING,
        "`alpha` (0.2): the image's weight is drawn from Beta(alpha, alpha)",
        _alpha(0.2),
        draws=portable_math.BETA_DRAWS,
        mix=_mixup,
        example={_ALPHA: 0.4},
    ),
    OpDef(
        "cutmix",
        MIXING,
        "`alpha` (1): a rectangle of the partner, area share from Beta(alpha, alpha)",
        _alpha(1.0),
        draws=portable_math.BETA_DRAWS + 2,
        mix=_cutmix,
        example={_ALPHA: 1.0},
    ),
)
