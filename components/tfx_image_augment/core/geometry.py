"""Boxes and keypoints that travel with an image: moved by exactly the map that moves its pixels.

Coordinates are normalized: a box is (ymin, xmin, ymax, xmax) and a keypoint (y, x), both in
[0, 1] of the image's height and width (the TensorFlow Object Detection API's convention). A
geometric stage hands over its per-image output->input map in pixel-index space (pixel centres
at integers, as the warp kernels sample); boxes and keypoints go through its inverse.

- Flips mirror coordinates exactly (x -> 1 - x).
- Warps (rotate, zoom, translate, shear, and any composition) move a box's four corners and
  take the enclosing box, so a rotated box encloses the rotated object and is no larger than
  the moved corners require.
- After each stage a box is clipped to the image. Its visibility (the product over stages of
  clipped area / moved area) is kept; a box whose visibility falls below `min_box_visibility`,
  or whose clipped area is zero, is no longer valid (the offline door drops it together with
  every per-object feature at the same index; the online door returns a valid mask). A box
  given with zero area is invalid from the start, whatever the ops (a rotation would give a
  degenerate line an area).
- A keypoint that leaves the image keeps its place with visibility 0. Visibility may be bool
  or the record's integer values (COCO's 2 visible, 1 labelled but hidden): a value is kept
  while the keypoint stays in the image. A keypoint given with visibility 0 (not labelled; it
  may hold NaN) is not moved: it comes out as given (in its slot after a permutation).
- A mirrored image (a flip, or a warp whose map has a negative determinant) swaps left and right:
  with a `keypoint_flip_permutation` (as the Object Detection API's flip takes), keypoint slot j
  of a mirrored object takes the moved keypoint `permutation[j]`, so "left eye" stays the left
  eye. Rotations and double flips do not mirror.
- Mosaic (a mixing op that tiles the image with 3 partner images at half size) moves the
  image's boxes and its partners' (given with them) by each tile's map, x / 2 + offset, and
  clips each to its tile's quadrant: the rows and columns where that image shows. Visibility
  and validity follow the rules above; the result has the image's rows, then partner 1's, 2's
  and 3's, and later stages move them all.
- Photometric ops, cutout included, leave boxes and keypoints alone: a cutout patch may hide
  part of an object without changing its box.
- Per-object instance masks [B, N, H, W] move through the pixel path itself (the same flips,
  warp map and crop, nearest sampling, constant 0 fill). An object whose mask had pixels
  (values > 0) and has none left after all stages is no longer valid, whatever its box says.
  With `boxes_from_masks`, an object whose moved mask has pixels takes their tight box: rows
  r0..r1 and columns c0..c1 give (r0 / H, c0 / W, (r1 + 1) / H, (c1 + 1) / W), the pixels'
  edges, so the box encloses the mask exactly. An object given with an empty mask keeps its
  moved box.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf


@dataclasses.dataclass(frozen=True)
class Targets:
    """Boxes [B, N, 4] with validity [B, N] and visibility [B, N]; keypoints [B, N, K, 2] with
    visibility [B, N, K] (bool, or integer values) and whether each was labelled on the way
    in (visibility > 0; bool [B, N, K]). Either may be None."""

    boxes: tf.Tensor | None = None
    box_valid: tf.Tensor | None = None
    box_visibility: tf.Tensor | None = None
    keypoints: tf.Tensor | None = None
    keypoint_visible: tf.Tensor | None = None
    flip_permutation: tuple[int, ...] | None = None
    keypoint_labelled: tf.Tensor | None = None

    @classmethod
    def create(
        cls,
        boxes=None,
        box_valid=None,
        keypoints=None,
        keypoint_visible=None,
        flip_permutation=None,
    ) -> Targets:
        if boxes is not None:
            boxes = tf.convert_to_tensor(boxes, tf.float32)
            if box_valid is None:
                box_valid = tf.ones(tf.shape(boxes)[:2], tf.bool)
            box_valid = box_valid & (_area(boxes) > 0.0)
            box_visibility = tf.ones(tf.shape(boxes)[:2], tf.float32)
        else:
            box_visibility = None
        labelled = None
        if keypoints is not None:
            keypoints = tf.convert_to_tensor(keypoints, tf.float32)
            if keypoint_visible is None:
                keypoint_visible = tf.ones(tf.shape(keypoints)[:3], tf.bool)
            labelled = _is_visible(keypoint_visible)
        return cls(
            boxes,
            box_valid,
            box_visibility,
            keypoints,
            keypoint_visible,
            flip_permutation,
            labelled,
        )

    @property
    def empty(self) -> bool:
        return self.boxes is None and self.keypoints is None

    def flipped(self, flip_x: tf.Tensor, flip_y: tf.Tensor) -> Targets:
        """Mirrors the images flagged in flip_x / flip_y ([B] bool): exact in normalized units."""
        boxes, keypoints = self.boxes, self.keypoints
        if boxes is not None:
            ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
            fx, fy = flip_x[:, None], flip_y[:, None]
            boxes = tf.stack(
                [
                    tf.where(fy, 1.0 - ymax, ymin),
                    tf.where(fx, 1.0 - xmax, xmin),
                    tf.where(fy, 1.0 - ymin, ymax),
                    tf.where(fx, 1.0 - xmin, xmax),
                ],
                axis=-1,
            )
        if keypoints is not None:
            y, x = tf.unstack(keypoints, axis=-1)
            y = tf.where(flip_y[:, None, None], 1.0 - y, y)
            x = tf.where(flip_x[:, None, None], 1.0 - x, x)
            keypoints = self._labelled_only(tf.stack([y, x], axis=-1))
        moved = dataclasses.replace(self, boxes=boxes, keypoints=keypoints)
        return moved.mirrored(tf.math.logical_xor(flip_x, flip_y))

    def mirrored(self, mirror: tf.Tensor) -> Targets:
        """Applies the keypoint flip permutation to the images flagged in `mirror` ([B] bool)."""
        if self.keypoints is None or self.flip_permutation is None:
            return self
        order = list(self.flip_permutation)
        keypoints = tf.where(
            mirror[:, None, None, None], tf.gather(self.keypoints, order, axis=2), self.keypoints
        )

        def permuted(flags):
            return tf.where(mirror[:, None, None], tf.gather(flags, order, axis=2), flags)

        return dataclasses.replace(
            self,
            keypoints=keypoints,
            keypoint_visible=permuted(self.keypoint_visible),
            keypoint_labelled=permuted(self.keypoint_labelled),
        )

    def mapped(
        self, forward: tf.Tensor, height, width, min_box_visibility: float, window=None
    ) -> Targets:
        """Moves through `forward` [B, 2, 3]: input pixel index (x, y, 1) -> output (x, y).

        Boxes are clipped to the image, or to `window` [B, 4] (normalized ymin, xmin, ymax,
        xmax inside the image: the part of the output that shows this image, as mosaic's
        quadrants), and their visibility is what is left of them there."""
        out = self
        if self.boxes is not None:
            out = out._boxes_mapped(forward, height, width, min_box_visibility, window)
        if self.keypoints is not None:
            y, x = tf.unstack(self.keypoints, axis=-1)
            x, y = _apply(forward[:, None, None], x * width - 0.5, y * height - 0.5)
            x, y = (x + 0.5) / width, (y + 0.5) / height
            inside = (x >= 0.0) & (x <= 1.0) & (y >= 0.0) & (y <= 1.0)
            visible = self.keypoint_visible
            out = dataclasses.replace(
                out,
                keypoints=self._labelled_only(tf.stack([y, x], axis=-1)),
                keypoint_visible=tf.where(inside, visible, tf.zeros_like(visible)),
            )
        return out

    def with_instance_masks(
        self, given: tf.Tensor, moved: tf.Tensor, boxes_from_masks: bool
    ) -> Targets:
        """Validity (and, with `boxes_from_masks`, boxes) from the objects' masks [B, N, H, W]
        before (`given`) and after (`moved`) all stages."""
        had_pixels = tf.reduce_any(given > 0, axis=[2, 3])
        tight, has_pixels = mask_boxes(moved)
        valid = self.box_valid & (has_pixels | ~had_pixels)
        boxes = self.boxes
        if boxes_from_masks:
            boxes = tf.where(has_pixels[..., None], tight, boxes)
        return dataclasses.replace(self, boxes=boxes, box_valid=valid)

    def _labelled_only(self, moved: tf.Tensor) -> tf.Tensor:
        """`moved` keypoints where they were labelled; the others as they are (not moved)."""
        return tf.where(self.keypoint_labelled[..., None], moved, self.keypoints)

    def _boxes_mapped(self, forward, height, width, min_box_visibility, window=None) -> Targets:
        ymin, xmin, ymax, xmax = tf.unstack(self.boxes, axis=-1)
        # The object's edges in pixel-index coordinates (pixel i covers [i - 0.5, i + 0.5]).
        left, right = xmin * width - 0.5, xmax * width - 0.5
        top, bottom = ymin * height - 0.5, ymax * height - 0.5
        corners_x = tf.stack([left, right, left, right], axis=-1)
        corners_y = tf.stack([top, top, bottom, bottom], axis=-1)
        x, y = _apply(forward[:, None, None], corners_x, corners_y)  # [B, N, 4]
        moved = tf.stack(
            [
                (tf.reduce_min(y, axis=-1) + 0.5) / height,
                (tf.reduce_min(x, axis=-1) + 0.5) / width,
                (tf.reduce_max(y, axis=-1) + 0.5) / height,
                (tf.reduce_max(x, axis=-1) + 0.5) / width,
            ],
            axis=-1,
        )
        if window is None:
            clipped = tf.clip_by_value(moved, 0.0, 1.0)
        else:  # (ymin, xmin, ymax, xmax) each kept within the window's rows and columns
            low = tf.tile(window[:, None, :2], [1, 1, 2])
            high = tf.tile(window[:, None, 2:], [1, 1, 2])
            clipped = tf.minimum(tf.maximum(moved, low), high)
        moved_area = _area(moved)
        clipped_area = _area(clipped)
        fraction = tf.where(
            moved_area > 0.0, clipped_area / tf.where(moved_area > 0.0, moved_area, 1.0), 0.0
        )
        visibility = self.box_visibility * fraction
        valid = self.box_valid & (clipped_area > 0.0) & (visibility >= min_box_visibility)
        return dataclasses.replace(self, boxes=clipped, box_valid=valid, box_visibility=visibility)


def mask_boxes(masks: tf.Tensor):
    """(the tight normalized boxes [B, N, 4] of masks [B, N, H, W] (pixels > 0), whether each
    mask has any pixel [B, N]); an empty mask's box is (0, 0, 0, 0)."""
    lit = masks > 0
    rows = tf.reduce_any(lit, axis=3)  # [B, N, H]
    cols = tf.reduce_any(lit, axis=2)  # [B, N, W]
    height, width = tf.shape(rows)[-1], tf.shape(cols)[-1]

    def extent(line, size):
        """(first, one past the last) index of True along the last axis (size, 0 if none)."""
        index = tf.range(size)
        first = tf.reduce_min(tf.where(line, index, size), axis=-1)
        end = tf.reduce_max(tf.where(line, index + 1, 0), axis=-1)
        return first, end

    top, bottom = extent(rows, height)
    left, right = extent(cols, width)
    has_pixels = tf.reduce_any(rows, axis=-1)
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    boxes = tf.stack(
        [
            _over(tf.cast(top, tf.float32), h),
            _over(tf.cast(left, tf.float32), w),
            _over(tf.cast(bottom, tf.float32), h),
            _over(tf.cast(right, tf.float32), w),
        ],
        axis=-1,
    )
    return tf.where(has_pixels[..., None], boxes, tf.zeros_like(boxes)), has_pixels


def _is_visible(visibility: tf.Tensor) -> tf.Tensor:
    """bool of bool or integer visibility values (> 0)."""
    if visibility.dtype == tf.bool:
        return visibility
    return visibility > tf.zeros([], visibility.dtype)


def _area(boxes: tf.Tensor) -> tf.Tensor:
    ymin, xmin, ymax, xmax = tf.unstack(boxes, axis=-1)
    return tf.maximum(ymax - ymin, 0.0) * tf.maximum(xmax - xmin, 0.0)


def _apply(forward: tf.Tensor, x: tf.Tensor, y: tf.Tensor):
    """(x, y) through an affine [.., 2, 3] map, written out (no matmul: batch-independent)."""
    new_x = (forward[..., 0, 0] * x + forward[..., 0, 1] * y) + forward[..., 0, 2]
    new_y = (forward[..., 1, 0] * x + forward[..., 1, 1] * y) + forward[..., 1, 2]
    return new_x, new_y


def invert_affine(matrix: tf.Tensor) -> tf.Tensor:
    """[B, 3, 3] affine output->input map -> [B, 2, 3] input->output map."""
    a, b, c = matrix[:, 0, 0], matrix[:, 0, 1], matrix[:, 0, 2]
    d, e, f = matrix[:, 1, 0], matrix[:, 1, 1], matrix[:, 1, 2]
    det = a * e - b * d
    ia, ib, id_, ie = e / det, -b / det, -d / det, a / det
    row0 = tf.stack([ia, ib, -(ia * c + ib * f)], axis=-1)
    row1 = tf.stack([id_, ie, -(id_ * c + ie * f)], axis=-1)
    return tf.stack([row0, row1], axis=1)


def crop_forward(boxes: tf.Tensor, height, width) -> tf.Tensor:
    """The input->output map of `crop_and_resize` to the same size with normalized sampling
    `boxes` [B, 4] (y0, x0, y1, x1 over the span H - 1, W - 1): in = box start + out * extent."""
    y0, x0, y1, x1 = tf.unstack(boxes, axis=-1)
    span_y, span_x = height - 1.0, width - 1.0
    scale_y = (y1 - y0) * span_y / tf.maximum(span_y, 1.0)
    scale_x = (x1 - x0) * span_x / tf.maximum(span_x, 1.0)
    safe_y = tf.where(scale_y > 0.0, scale_y, 1.0)
    safe_x = tf.where(scale_x > 0.0, scale_x, 1.0)
    zeros = tf.zeros_like(y0)
    # The quotients in float64: TensorFlow rewrites a float32 1 / x into a reciprocal whose
    # vectorised CPU path is an approximation (an image's boxes would depend on its batch).
    row0 = tf.stack([_over(1.0, safe_x), zeros, _over(-x0 * span_x, safe_x)], axis=-1)
    row1 = tf.stack([zeros, _over(1.0, safe_y), _over(-y0 * span_y, safe_y)], axis=-1)
    return tf.stack([row0, row1], axis=1)


def _over(numerator, denominator: tf.Tensor) -> tf.Tensor:
    """float32 numerator / denominator, divided in float64 and rounded once (the same value
    as a correctly rounded float32 division)."""
    quotient = tf.cast(numerator, tf.float64) / tf.cast(denominator, tf.float64)
    return tf.cast(quotient, tf.float32)
