"""Mixing ops: an image blended with a partner image (MixUp, CutMix), or tiled with three
(Mosaic).

The partner enters as it was given (offline: the partner example's decoded pixels; online: the
previous image of the batch), in the same [0, 1] floats as the image at that point of the
policy: ops listed before a mixing op change the image alone, ops after it change the mix.
Each op returns the mixed pixels and the image's share of them (its weight in a soft label).
Both are computed per image with batch-proof arithmetic: the mixing weight comes from the
image's own uniforms through `portable_math.beta64`, and the pixel arithmetic is elementwise.
Mosaic's four images go through one bilinear warp each, by exact affine maps (scale 2 and
whole or half-pixel offsets), so every output pixel is computed alone, whatever the batch.
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


def _mixup(op, x, partner, u, fill_value=0.0):
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


def _cutmix(op, x, partner, u, fill_value=0.0):
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


_CENTER = "center"
MOSAIC_PARTNERS = 3


def mosaic_centre(op, u, height, width):
    """Each image's mosaic centre (cy, cx), whole pixels as float64 [B] each: from its own two
    uniforms, cy = floor(H (low + (high - low) u0) + 0.5), cx likewise from u1 and W, [low, high]
    the op's `center` (float64 products and sums: the same bits alone or in any batch)."""
    low, high = op[_CENTER]
    span = high - low  # a Python float: no graph arithmetic decides it

    def whole_pixels(size, column):
        fraction = low + span * tf.cast(u[:, column], tf.float64)
        return tf.floor(tf.cast(size, tf.float64) * fraction + 0.5)

    return whole_pixels(height, 0), whole_pixels(width, 1)


def _mosaic_corners(op, u, height, width):
    """(cy, cx) and each tile's top-left corner (oy, ox) [B, 4] in pixel-edge units (pixel i
    covers [i, i + 1]), float64: at half scale the image ends at the centre (top-left), partner
    1 starts there across (top-right), partner 2 down (bottom-left), partner 3 both."""
    cy, cx = mosaic_centre(op, u, height, width)
    half_h, half_w = tf.cast(height, tf.float64) * 0.5, tf.cast(width, tf.float64) * 0.5
    oy = tf.stack([cy - half_h, cy - half_h, cy, cy], axis=1)
    ox = tf.stack([cx - half_w, cx, cx - half_w, cx], axis=1)
    return cy, cx, oy, ox


def _mosaic(op, x, partners, u, fill_value=0.0):
    """The image and partners 1-3 at half scale, each cut to its quadrant of the centre; what
    no image covers is `fill_value`. The image's share is the area it covers."""
    shape = tf.shape(x)
    batch, height, width = shape[0], shape[1], shape[2]
    cy, cx, oy, ox = _mosaic_corners(op, u, height, width)
    # Tile t's output->input map in pixel-index space (centres at integers, as the kernel
    # samples): input = 2 output + 0.5 - 2 corner. Whole or half pixels: exact in float32.
    zeros, twos = tf.zeros_like(oy), tf.fill(tf.shape(oy), tf.constant(2.0, tf.float64))
    transforms = tf.stack(
        [twos, zeros, 0.5 - 2.0 * ox, zeros, twos, 0.5 - 2.0 * oy, zeros, zeros], axis=-1
    )  # [B, 4, 8]
    tiles = tf.concat([x[:, None], partners[:, :MOSAIC_PARTNERS]], axis=1)  # [B, 4, H, W, C]
    channels = x.shape[-1] if x.shape[-1] is not None else shape[3]
    warped = tf.raw_ops.ImageProjectiveTransformV3(
        images=tf.reshape(tiles, [-1, height, width, channels]),
        transforms=tf.cast(tf.reshape(transforms, [-1, 8]), tf.float32),
        output_shape=shape[1:3],
        fill_value=tf.cast(fill_value, tf.float32),
        interpolation="BILINEAR",
        fill_mode="CONSTANT",
    )
    warped = tf.reshape(warped, [batch, 4, height, width, channels])
    top = tf.range(tf.cast(height, tf.float64))[None, :] < cy[:, None]  # [B, H]
    left = tf.range(tf.cast(width, tf.float64))[None, :] < cx[:, None]  # [B, W]
    top, left = top[:, :, None, None], left[:, None, :, None]
    mixed = tf.where(
        top,
        tf.where(left, warped[:, 0], warped[:, 1]),
        tf.where(left, warped[:, 2], warped[:, 3]),
    )
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    # The image's part: its quadrant's rows and columns that its half-size copy covers.
    covered = tf.minimum(cy, h * 0.5) * tf.minimum(cx, w * 0.5)
    return mixed, tf.cast(covered / (h * w), tf.float32)


def _mosaic_tiles(op, u, height, width):
    """Where mosaic's tiles go, for boxes: forward maps [B, 4, 2, 3] (input pixel index ->
    output, out = in / 2 + corner - 0.25) and windows [B, 4, 4] (each tile's quadrant within its
    placed copy, normalized), float32."""
    cy, cx, oy, ox = _mosaic_corners(op, u, height, width)
    h, w = tf.cast(height, tf.float64), tf.cast(width, tf.float64)
    zeros, halves = tf.zeros_like(oy), tf.fill(tf.shape(oy), tf.constant(0.5, tf.float64))
    forward = tf.stack(
        [
            tf.stack([halves, zeros, ox - 0.25], axis=-1),
            tf.stack([zeros, halves, oy - 0.25], axis=-1),
        ],
        axis=-2,
    )
    # Quadrant edges, cut to the placed copy [corner, corner + size / 2] and to the frame.
    cy, cx = cy[:, None], cx[:, None]
    top = tf.concat([tf.zeros_like(cy), tf.zeros_like(cy), cy, cy], axis=1)
    bottom = tf.concat([cy, cy, tf.fill(tf.shape(cy), h), tf.fill(tf.shape(cy), h)], axis=1)
    left = tf.concat([tf.zeros_like(cx), cx, tf.zeros_like(cx), cx], axis=1)
    right = tf.concat([cx, tf.fill(tf.shape(cx), w), cx, tf.fill(tf.shape(cx), w)], axis=1)
    window = tf.stack(
        [
            tf.maximum(top, oy) / h,
            tf.maximum(left, ox) / w,
            tf.minimum(bottom, oy + h * 0.5) / h,
            tf.minimum(right, ox + w * 0.5) / w,
        ],
        axis=-1,
    )  # divided in float64, then rounded to float32
    return tf.cast(forward, tf.float32), tf.cast(window, tf.float32)


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
    OpDef(
        "mosaic",
        MIXING,
        "`center` [lo, hi] ([0.25, 0.75]): the image and 3 partners at half size around a "
        "centre drawn in that fraction of the height and width (YOLO's mosaic; moves boxes)",
        {_CENTER: Field("range", 0, 1, default=(0.25, 0.75), typical=(0.1, 0.9))},
        draws=2,
        mix=_mosaic,
        partners=MOSAIC_PARTNERS,
        tiles=_mosaic_tiles,
        example={_CENTER: [0.3, 0.7]},
    ),
)
