"""The augmentation core: `augment(images, seeds, policy)`, a pure function of its inputs.

This module knows nothing of Beam, TFX or Keras. The Beam executor, the Keras layer and the
exported SavedModel all call `augment`, so the doors agree pixel for pixel by construction.
How randomness works (the seed contract) is written down in `plan.py`; what each op does is
its entry in the registry (`ops/`). Here: running a compiled plan's stages over a batch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

import tensorflow as tf

from tfx_image_augment.core.draws import draw_table, gate_mask, gated
from tfx_image_augment.core.geometry import Targets, crop_forward, invert_affine
from tfx_image_augment.core.ops import OPS
from tfx_image_augment.core.ops.photometric import PixelContext
from tfx_image_augment.core.plan import Plan, Stage, compile_policy
from tfx_image_augment.core.policy import Policy

SUPPORTED_CHANNELS = (1, 3, 4)

__all__ = [
    "augment",
    "augment_targets",
    "compile_policy",
    "validate_images",
    "batch_partners",
    "SUPPORTED_CHANNELS",
    "Plan",
]


# ----------------------------------------------------------------------------------------------
# Geometric stages
# ----------------------------------------------------------------------------------------------


def _op_matrix(inst, table: tf.Tensor, height: tf.Tensor, width: tf.Tensor) -> tf.Tensor:
    """The op's [B,3,3] map for the images its gate opens, identity for the others."""
    matrix = inst.definition.matrix(inst.op, inst.draws(table), height, width)
    return gated(inst.gate, table, matrix, tf.eye(3, batch_shape=[tf.shape(table)[0]]))


def _matmul_3x3(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    """[B,3,3] @ [B,3,3] as a fixed sum of outer products (batched matmul kernels change their
    summation order with the batch size)."""
    return (a[:, :, 0:1] * b[:, 0:1, :] + a[:, :, 1:2] * b[:, 1:2, :]) + a[:, :, 2:3] * b[:, 2:3, :]


def stage_matrix(stage: Stage, table: tf.Tensor, height, width) -> tf.Tensor:
    """The stage's composed [B,3,3] output->input map, for the whole batch at once: the ops
    compute their parameters with batch-proof arithmetic (`ops/portable_math.py`)."""
    # Output->input maps compose left to right: the first listed op's map is applied last.
    matrix = _op_matrix(stage.instances[0], table, height, width)
    for inst in stage.instances[1:]:
        matrix = _matmul_3x3(matrix, _op_matrix(inst, table, height, width))
    return matrix


def _warp(
    matrix: tf.Tensor, images, masks, instance, fill_mode: str, fill_value: float, scale: float
):
    shape = tf.shape(images)
    transforms = tf.reshape(matrix, [-1, 9])[:, :8]

    def apply(x, interpolation, fill, mode=fill_mode):
        return tf.raw_ops.ImageProjectiveTransformV3(
            images=x,
            transforms=transforms,
            output_shape=shape[1:3],
            fill_value=tf.cast(fill, tf.float32),
            interpolation=interpolation,
            fill_mode=mode.upper(),
        )

    images = apply(images, "BILINEAR", fill_value * scale)
    if masks is not None:
        masks = apply(masks, "NEAREST", 0.0)
    if instance is not None:
        # The same map, nearest; what comes from outside the image is never the object (a
        # reflected or wrapped copy of it has no box), so the fill is always constant 0.
        instance = apply(instance, "NEAREST", 0.0, "constant")
    return images, masks, instance


def flip_flags(stage: Stage, table: tf.Tensor) -> dict[int, tf.Tensor]:
    """Image axis (1: rows, 2: columns) -> [B] bool: whether each image is mirrored on it."""
    batch = tf.shape(table)[0]
    flips = {1: tf.zeros([batch], tf.bool), 2: tf.zeros([batch], tf.bool)}
    for inst in stage.instances:  # two flips of the same axis cancel
        axis = inst.definition.flip_axis
        flips[axis] = tf.math.logical_xor(flips[axis], gate_mask(inst.gate, table))
    return flips


def _mirrors(matrix: tf.Tensor) -> tf.Tensor:
    """[B] bool: the images a warp mirrors (its linear part has a negative determinant)."""
    return matrix[:, 0, 0] * matrix[:, 1, 1] - matrix[:, 0, 1] * matrix[:, 1, 0] < 0.0


def _flip(flips: dict[int, tf.Tensor], axes: set[int], images, masks, instance):
    """Mirrors each image on the axes its flags say; `axes` are those a flip op of the stage
    names (an axis no op flips costs no pass over the pixels)."""

    def apply(x):
        for axis in (2, 1):
            if axis in axes:
                # One gather of each image's own column (row) order: a single pass, where
                # reverse-then-select took two (measured 2x faster for columns, 20x for rows).
                size = tf.shape(x)[axis]
                ascending = tf.range(size)[None, :]
                order = tf.where(flips[axis][:, None], size - 1 - ascending, ascending)
                x = tf.gather(x, order, axis=axis, batch_dims=1)
        return x

    return (
        apply(images),
        apply(masks) if masks is not None else None,
        apply(instance) if instance is not None else None,
    )


def crop_boxes(stage: Stage, table: tf.Tensor, height, width) -> tf.Tensor:
    """[B, 4] normalised (y0, x0, y1, x1) sampling boxes of a lone crop stage: the same
    sampling points as the warp path (pixel centres), clamped inside the image."""
    (inst,) = stage.instances

    crop_h, crop_w, y0, x0 = inst.definition.crop_box(inst.op, inst.draws(table), height, width)
    span_y, span_x = tf.maximum(height - 1.0, 1.0), tf.maximum(width - 1.0, 1.0)
    sy, sx = crop_h / height, crop_w / width
    boxes = tf.stack(
        [
            tf.maximum((y0 + 0.5 * sy - 0.5) / span_y, 0.0),
            tf.maximum((x0 + 0.5 * sx - 0.5) / span_x, 0.0),
            tf.minimum((y0 + crop_h - 0.5 * sy - 0.5) / span_y, 1.0),
            tf.minimum((x0 + crop_w - 0.5 * sx - 0.5) / span_x, 1.0),
        ],
        axis=1,
    )
    return gated(inst.gate, table, boxes, tf.constant([[0.0, 0.0, 1.0, 1.0]]))


def _crop(boxes: tf.Tensor, images, masks, instance):
    shape = tf.shape(images)
    indices = tf.range(shape[0])
    out = tf.image.crop_and_resize(images, boxes, indices, shape[1:3], method="bilinear")

    def nearest(x):
        if x is None:
            return None
        moved = tf.image.crop_and_resize(x, boxes, indices, shape[1:3], method="nearest")
        return tf.cast(moved, x.dtype)

    return out, nearest(masks), nearest(instance)


# ----------------------------------------------------------------------------------------------
# Photometric stages: float32 in [0, 1], colour channels only
# ----------------------------------------------------------------------------------------------


def _mix(
    stage: Stage,
    x,
    partners,
    has_partner,
    shares,
    table,
    fill_value: float,
    targets: Targets,
    partner_boxes=None,
    min_box_visibility: float = 0.0,
):
    """x mixed with its partners (float32 [B, P, H, W, C]) where the op's gate opens and a
    partner was given; `shares` [B] (float32) is each image's share of the pixels so far,
    multiplied by this op's. A tiling op (mosaic) also moves the boxes of `targets` and adds
    its partners' (`partner_boxes`: (boxes [B, P, N, 4], valid [B, P, N])) after them.
    Returns (x, shares, targets)."""
    for inst in stage.instances:  # one op, or a one_of's mixing option
        definition, u = inst.definition, inst.draws(table)
        partner = partners[:, 0] if definition.partners == 1 else partners
        mixed, share = definition.mix(inst.op, x, partner, u, fill_value=fill_value)
        applies = gate_mask(inst.gate, table) & has_partner
        x = tf.where(applies[:, None, None, None], mixed, x)
        shares = tf.where(applies, shares * share, shares)
        if definition.tiles is not None and targets.boxes is not None:
            shape = tf.shape(x)
            tiles = definition.tiles(inst.op, u, shape[1], shape[2])
            targets = _tiled(
                tiles, applies, shape[1], shape[2], targets, partner_boxes, min_box_visibility
            )
    return x, shares, targets


def _tiled(tiles, applies, height, width, targets: Targets, partner_boxes, min_box_visibility):
    """The boxes after a tiling op: the image's, then each partner's (as given), each moved by
    its tile's map and clipped to its tile's window; where the op does not apply, the image's
    as they were and the partners' (0, 0, 0, 0) and invalid."""
    forward, window = tiles
    height, width = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    rows = [targets]
    for tile in range(1, forward.shape[1]):
        rows.append(Targets.create(partner_boxes[0][:, tile - 1], partner_boxes[1][:, tile - 1]))
    boxes, valid, visibility = [], [], []
    for tile, before in enumerate(rows):
        moved = before.mapped(forward[:, tile], height, width, min_box_visibility, window[:, tile])
        if tile == 0:
            kept = before
        else:
            kept = Targets(
                tf.zeros_like(moved.boxes),
                tf.zeros_like(moved.box_valid),
                tf.zeros_like(moved.box_visibility),
            )
        boxes.append(tf.where(applies[:, None, None], moved.boxes, kept.boxes))
        valid.append(tf.where(applies[:, None], moved.box_valid, kept.box_valid))
        visibility.append(tf.where(applies[:, None], moved.box_visibility, kept.box_visibility))
    return dataclasses.replace(
        targets,
        boxes=tf.concat(boxes, axis=1),
        box_valid=tf.concat(valid, axis=1),
        box_visibility=tf.concat(visibility, axis=1),
    )


def _photometric(stage: Stage, x: tf.Tensor, table: tf.Tensor, seeds: tf.Tensor) -> tf.Tensor:
    (inst,) = stage.instances
    context = PixelContext(seeds=seeds, node_id=inst.node_id)
    out = inst.definition.pixels(inst.op, x, inst.draws(table), context)
    if out is x:  # the op leaves these images alone (e.g. saturation of grey images)
        return x
    return gated(inst.gate, table, out, x)


# ----------------------------------------------------------------------------------------------
# The entry point
# ----------------------------------------------------------------------------------------------


def batch_partners(values, count: int) -> tf.Tensor:
    """[B, count, ...]: for each item of a batch, the `count` items before it (going round).

    The online doors' partners (the Keras layer, the SavedModel's `augment`): image i mixes
    with image i - 1 (mosaic: i - 1, i - 2, i - 3); their boxes and labels follow alike."""
    values = tf.convert_to_tensor(values)
    return tf.stack([tf.roll(values, k, axis=0) for k in range(1, count + 1)], axis=1)


def validate_images(images: tf.Tensor) -> None:
    if images.shape.rank != 4:
        raise ValueError(f"Images must be a batch [B, H, W, C]; got shape {images.shape}.")
    channels = images.shape[-1]
    if channels not in SUPPORTED_CHANNELS:
        raise ValueError(
            f"Images must have 1, 3 or 4 channels (a static channel count); got {channels}."
        )
    if images.dtype != tf.uint8 and not images.dtype.is_floating:
        raise ValueError(
            f"Images must be uint8, or floating point with a value range; got {images.dtype.name}."
        )


# The core needs no AutoGraph (its Python branches on Python values only). Marked so, a caller's
# tf.function or tf.data map runs it as written instead of converting its source on every trace
# (a tf.data map of `standard`: 4.2 -> 1.6-2.4 s to trace here).
@tf.autograph.experimental.do_not_convert
def augment(
    images,
    seeds,
    policy: Policy | Plan,
    *,
    value_range: Sequence[float] | None = None,
    masks=None,
    partners=None,
):
    """Augments a batch: a pure function of (images, seeds, policy) (and partners, to mix).

    Args:
      images: [B, H, W, C] (or one image [H, W, C]) uint8, or floating point in `value_range`.
        C is 1, 3 or 4 (alpha is kept).
      seeds: int64 [B, 2] (or [2] for one image), one seed per image.
      policy: a `Policy` (or its compiled `Plan`).
      value_range: (low, high) of floating-point images; default (0, 1). Ignored for uint8.
      masks: optional integer segmentation masks [B, H, W, 1], moved with the same geometry
        (nearest sampling) and untouched by photometric ops.
      partners: the images the policy's mixing ops blend in, required when the policy mixes:
        one per image, like `images` ([B, H, W, C], same size and dtype), or P per image
        [B, P, H, W, C] (for one image [P, H, W, C]). `mosaic` tiles partners 0, 1, 2 in
        (P >= 3); `mixup` and `cutmix` blend partner 0. Each image's share of its mix:
        `augment_targets(...)["mix_weights"]`.

    Returns:
      The augmented images (same dtype, shape and range), or (images, masks) when masks given.
      For boxes and keypoints, see `augment_targets`.

    Raises:
      ValueError: the images are not [B, H, W, C] with a static C of 1, 3 or 4, or are
        neither uint8 nor floating point.
    """
    out = augment_targets(
        images, seeds, policy, value_range=value_range, masks=masks, partners=partners
    )
    return out["images"] if masks is None else (out["images"], out["masks"])


@tf.autograph.experimental.do_not_convert
def augment_targets(
    images,
    seeds,
    policy: Policy | Plan,
    *,
    value_range: Sequence[float] | None = None,
    masks=None,
    boxes=None,
    box_valid=None,
    keypoints=None,
    keypoint_visible=None,
    min_box_visibility: float = 0.0,
    keypoint_flip_permutation: Sequence[int] | None = None,
    instance_masks=None,
    boxes_from_masks: bool = True,
    partners=None,
    has_partner=None,
    partner_boxes=None,
    partner_box_valid=None,
) -> dict[str, tf.Tensor]:
    """Augments images and everything that moves with them, by the same per-image draws.

    Args:
      images: as in `augment`.
      seeds: as in `augment`.
      policy: as in `augment`.
      value_range: as in `augment`.
      masks: as in `augment`.
      boxes: float [B, N, 4] normalized (ymin, xmin, ymax, xmax), padded to N per image.
      box_valid: bool [B, N], which rows of `boxes` are objects (default: all; a box with
        zero area is never valid).
      keypoints: float [B, N, K, 2] normalized (y, x), K per object.
      keypoint_visible: bool [B, N, K] (default: all), or integer visibility values (COCO's
        2 visible, 1 labelled but hidden, 0 not labelled), given back in their dtype: a value
        is kept while its keypoint stays in the image, 0 once it leaves. A keypoint given
        with visibility 0 (False) is not moved: it comes out as given, NaN included (in its
        slot after a flip permutation).
      min_box_visibility: a box whose visible fraction (clipped area over moved area) falls
        below this becomes invalid; one with no area left always does.
      keypoint_flip_permutation: for keypoints with a handedness (left eye, right eye): slot j
        of a mirrored image takes keypoint `permutation[j]`; K entries.
      instance_masks: per-object masks [B, N, H, W] (uint8 or another integer type, values
        kept; or bool), one per row of `boxes` (needs boxes): moved by the map that moves the
        pixels, with nearest sampling and a constant 0 fill whatever the policy's `fill_mode`.
        An object whose mask had pixels (values > 0) and has none left is no longer valid,
        like a box that leaves the image.
      boxes_from_masks: with `instance_masks`, each object whose moved mask has pixels gets the
        tight box of those pixels (a rotated object's box is no looser than the object); an
        object given with an empty mask keeps its moved box.
      partners: as in `augment`. `mixup` and `cutmix` take no other targets yet; `mosaic`
        takes boxes (with `partner_boxes`), not masks, keypoints or instance masks.
      has_partner: bool [B], which images have partners (default: all); one without is never
        mixed (by any mixing op, mosaic included), and its share stays 1.
      partner_boxes: with `boxes` and a policy with `mosaic`, required: float [B, P, N, 4],
        the boxes of each image's partners, like `boxes` (N the same); mosaic reads partners
        0, 1, 2.
      partner_box_valid: bool [B, P, N], which rows of `partner_boxes` are objects (default:
        all).

    Returns:
      A dict with "images", and "masks", "boxes", "box_valid", "keypoints",
      "keypoint_visible", "instance_masks" for the targets given, and "mix_weights" (float32
      [B], each image's share of its pixels: 1 unless a mixing op applied) with partners.
      With `mosaic` and boxes, "boxes" is [B, 4N, 4] and "box_valid" [B, 4N]: rows 0..N-1 the
      image's own, then N rows of each of partners 0, 1, 2 (mosaic's top-right, bottom-left
      and bottom-right tiles), each moved to its tile and clipped to its quadrant; where the
      mosaic does not apply (its gate, or has_partner false), the own rows are as without it
      and the partners' invalid (empty boxes at 0, which later ops move like any row).
      Rules: `tfx_image_augment.core.geometry`.

    Raises:
      ValueError: the images are not [B, H, W, C] with a static C of 1, 3 or 4, or are
        neither uint8 nor floating point; or instance masks come without boxes; or the
        policy mixes and no partners (or targets its mixing ops do not move) were given; or
        it has `mosaic` and partners are not [B, P, H, W, C] with P >= 3, or boxes come
        without `partner_boxes`.
    """
    plan = policy if isinstance(policy, Plan) else compile_policy(policy)
    images = tf.convert_to_tensor(images)
    seeds = tf.cast(tf.convert_to_tensor(seeds), tf.int64)
    if boxes is None and box_valid is not None:
        raise ValueError("box_valid was given without boxes.")
    if keypoints is None and keypoint_visible is not None:
        raise ValueError("keypoint_visible was given without keypoints.")
    if instance_masks is not None and boxes is None:
        raise ValueError("instance_masks were given without boxes (one box per mask).")
    partners = None if partners is None else tf.convert_to_tensor(partners)
    if partner_boxes is not None:
        partner_boxes = tf.convert_to_tensor(partner_boxes)
    _check_mixing(
        plan,
        images.shape.rank,
        partners,
        has_partner,
        masks,
        boxes,
        keypoints,
        instance_masks,
        partner_boxes,
        partner_box_valid,
    )
    given = {}
    if masks is not None:
        given["masks"] = tf.convert_to_tensor(masks)
    if boxes is not None:
        given["boxes"], given["box_valid"] = _coordinates_and_flags(boxes, box_valid)
    if keypoints is not None:
        given["keypoints"], given["keypoint_visible"] = _coordinates_and_flags(
            keypoints, keypoint_visible, keep_integers=True
        )
    if instance_masks is not None:
        instance_masks = tf.convert_to_tensor(instance_masks)
        given["instance_masks"] = (
            tf.cast(instance_masks, tf.uint8) if instance_masks.dtype == tf.bool else instance_masks
        )
    if partners is not None:
        given["partners"] = partners
        given["has_partner"] = (
            tf.ones(tf.shape(seeds)[:-1], tf.bool)
            if has_partner is None
            else tf.cast(tf.convert_to_tensor(has_partner), tf.bool)
        )
        if given["partners"].dtype != images.dtype:
            raise ValueError(
                f"partners must have the images' dtype ({images.dtype.name}); "
                f"got {given['partners'].dtype.name}."
            )
    if partner_boxes is not None:
        given["partner_boxes"], given["partner_box_valid"] = _coordinates_and_flags(
            partner_boxes, partner_box_valid
        )
    single = images.shape.rank == 3
    if single:
        images, seeds = images[None], seeds[None]
        given = {k: v[None] for k, v in given.items()}
    if "partners" in given and given["partners"].shape.rank == 4:
        given["partners"] = given["partners"][:, None]  # one partner per image: P = 1
    validate_images(images)
    value_range = (
        None if images.dtype == tf.uint8 else tuple(float(v) for v in (value_range or (0.0, 1.0)))
    )
    names = tuple(sorted(given))
    specs = tuple(
        (
            name,
            given[name].dtype,
            given[name].shape[-1] if name in ("masks", "partners") else None,
        )
        for name in names
    )
    permutation = None if keypoint_flip_permutation is None else tuple(keypoint_flip_permutation)
    if permutation is not None and "keypoints" in given:
        per_object = given["keypoints"].shape[-2]
        if per_object is not None and per_object != len(permutation):
            raise ValueError(
                f"keypoint_flip_permutation has {len(permutation)} entries for {per_object} "
                "keypoints per object."
            )
    run = _graph_for(
        plan,
        images.dtype,
        images.shape[-1],
        value_range,
        specs,
        float(min_box_visibility),
        permutation,
        bool(boxes_from_masks) and instance_masks is not None,
    )
    outputs = run(images, seeds, *(given[n] for n in names))
    # The graph takes any size; give back the static shapes the caller passed in.
    result = {"images": tf.ensure_shape(outputs[0], images.shape)}
    for name, value in zip(_output_names(names), outputs[1:], strict=True):
        if name == "partners":
            result["mix_weights"] = tf.ensure_shape(value, given["has_partner"].shape)
        elif name in ("boxes", "box_valid") and "partner_boxes" in given:
            # Tiled: the image's rows, then each partner's (4N with mosaic).
            shape = given[name].shape.as_list()
            axis = 1 if name == "boxes" else -1
            shape[axis] = None if shape[axis] is None else _tiles_of(plan) * shape[axis]
            result[name] = tf.ensure_shape(value, shape)
        else:
            result[name] = tf.ensure_shape(value, given[name].shape)
    if instance_masks is not None and instance_masks.dtype == tf.bool:
        result["instance_masks"] = result["instance_masks"] > 0
    if single:
        result = {k: v[0] for k, v in result.items()}
    return result


def _check_mixing(
    plan: Plan,
    image_rank,
    partners,
    has_partner,
    masks,
    boxes,
    keypoints,
    instance_masks,
    partner_boxes,
    partner_box_valid,
) -> None:
    """Which partners and targets the policy's mixing ops take (`partners` and
    `partner_boxes` as tensors, or None)."""
    mixing = plan.mixing_ops
    if partners is None and has_partner is not None:
        raise ValueError("has_partner was given without partners.")
    if partner_boxes is None and partner_box_valid is not None:
        raise ValueError("partner_box_valid was given without partner_boxes.")
    tiling = plan.tiling_ops
    if partner_boxes is not None:
        if boxes is None:
            raise ValueError("partner_boxes were given without boxes.")
        if not tiling:
            raise ValueError(
                "partner_boxes were given, but the policy has no mixing op that moves boxes "
                "(mosaic)."
            )
    if not mixing:
        return
    if partners is None:
        raise ValueError(
            f"The policy mixes images ({', '.join(mixing)}): give partners, one image per "
            "image to blend in (the Keras layer uses the previous image of the batch)."
        )
    if partners.shape.rank not in (image_rank, image_rank + 1):
        raise ValueError(
            f"partners must be one image per image (like the images, rank {image_rank}) or P "
            f"per image (rank {image_rank + 1}); got shape {partners.shape}."
        )
    needed = plan.partner_count
    count = 1 if partners.shape.rank == image_rank else partners.shape[-4]
    if count is not None and count < needed:
        raise ValueError(
            f"The policy mixes images ({', '.join(mixing)}) with {needed} partners per image: "
            f"give partners [B, P, H, W, C] (one image: [P, H, W, C]) with P >= {needed}; got "
            f"shape {partners.shape} ({count} per image)."
        )
    blending = [name for name in mixing if name not in tiling]
    if blending and (masks is not None or boxes is not None or keypoints is not None):
        raise ValueError(
            f"The policy mixes images ({', '.join(blending)}); mixing does not move "
            "segmentation masks, boxes or keypoints yet."
        )
    if not tiling:
        return
    if masks is not None or keypoints is not None or instance_masks is not None:
        raise ValueError(
            f"The policy tiles images ({', '.join(tiling)}), which moves boxes only: "
            "segmentation masks, keypoints and instance masks are not supported with it yet."
        )
    if boxes is None:
        return
    if len(tiling) > 1:
        raise ValueError(
            f"The policy tiles images {len(tiling)} times ({', '.join(tiling)}); with boxes, "
            "it may tile once (one mosaic op)."
        )
    if partner_boxes is None:
        raise ValueError(
            f"The policy tiles images ({', '.join(tiling)}) and boxes were given: give "
            "partner_boxes [B, P, N, 4] (and partner_box_valid [B, P, N]), the partners' boxes."
        )
    boxes_shape = tf.TensorShape(tf.convert_to_tensor(boxes).shape)
    if partner_boxes.shape.rank != boxes_shape.rank + 1:
        raise ValueError(
            f"partner_boxes must be [B, P, N, 4] (one image: [P, N, 4]) for boxes of shape "
            f"{boxes_shape}; got shape {partner_boxes.shape}."
        )
    count, rows = partner_boxes.shape[-3], partner_boxes.shape[-2]
    if count is not None and count < needed:
        raise ValueError(
            f"partner_boxes must have the boxes of {needed} partners per image; got shape "
            f"{partner_boxes.shape}."
        )
    if rows is not None and boxes_shape[-2] is not None and rows != boxes_shape[-2]:
        raise ValueError(
            f"partner_boxes must be padded to the images' N = {boxes_shape[-2]} boxes; got "
            f"shape {partner_boxes.shape}."
        )


def _coordinates_and_flags(values, flags, keep_integers: bool = False):
    """float32 coordinates [..., D] and their bool flags [...] (all True when not given;
    integer flags kept as they are with `keep_integers`)."""
    values = tf.cast(tf.convert_to_tensor(values), tf.float32)
    if flags is None:
        return values, tf.ones(tf.shape(values)[:-1], tf.bool)
    flags = tf.convert_to_tensor(flags)
    if keep_integers and flags.dtype.is_integer:
        return values, flags
    return values, tf.cast(flags, tf.bool)


_GRAPHS: dict = {}
# Rank of each optional input; masks and partners carry their channel count in the signature.
_TARGET_RANKS = {
    "masks": 4,
    "boxes": 3,
    "box_valid": 2,
    "keypoints": 4,
    "keypoint_visible": 3,
    "instance_masks": 4,
    "partners": 5,  # [B, P, H, W, C]
    "has_partner": 1,
    "partner_boxes": 4,  # [B, P, N, 4]
    "partner_box_valid": 3,
}
# Inputs that only steer the others (no output of their own); "partners" gives back the
# images' shares of their mixes.
_INPUT_ONLY = ("has_partner", "partner_boxes", "partner_box_valid")


def _output_names(names):
    """The graph's outputs after the images: one per input name that is not input-only."""
    return tuple(name for name in names if name not in _INPUT_ONLY)


def _tiles_of(plan: Plan) -> int:
    """How many images a tiling op (mosaic) puts in one: box rows per row given."""
    (name,) = plan.tiling_ops
    return 1 + OPS[name].partners


def _graph_for(
    plan: Plan,
    dtype,
    channels: int,
    value_range,
    specs,
    min_box_visibility: float,
    permutation,
    boxes_from_masks: bool,
):
    """One traced, never-inlined function per (plan, input kind).

    Every caller - eager code, a tf.function, a tf.data map, a Keras model, a SavedModel - runs
    this same function body with the same dynamic-shape trace, so TensorFlow's graph rewrites
    (which may reorder float arithmetic) are the same for all of them, and so are the pixels.
    """
    key = (
        plan,
        dtype,
        channels,
        value_range,
        specs,
        min_box_visibility,
        permutation,
        boxes_from_masks,
    )
    if key in _GRAPHS:
        return _GRAPHS[key]
    signature = [
        tf.TensorSpec([None, None, None, channels], dtype),
        tf.TensorSpec([None, 2], tf.int64),
    ]
    for name, spec_dtype, mask_channels in specs:
        shape = [None] * _TARGET_RANKS[name]
        channels_of = {"masks": mask_channels, "partners": mask_channels}
        shape[-1] = {**channels_of, "boxes": 4, "keypoints": 2, "partner_boxes": 4}.get(name)
        signature.append(tf.TensorSpec(shape, spec_dtype))
    names = [name for name, _, _ in specs]

    def body(images, seeds, *extras):
        given = dict(zip(names, extras, strict=True))
        targets = Targets.create(
            given.get("boxes"),
            given.get("box_valid"),
            given.get("keypoints"),
            given.get("keypoint_visible"),
            permutation,
        )
        objects = given.get("instance_masks")
        # Per-object masks go through the pixel path as the channels of one [B, H, W, N] image.
        instance = None if objects is None else tf.transpose(objects, [0, 2, 3, 1])
        out_images, masks, instance, targets, shares = _run_plan(
            plan,
            images,
            seeds,
            value_range,
            given.get("masks"),
            instance,
            targets,
            min_box_visibility,
            given.get("partners"),
            given.get("has_partner"),
            None
            if "partner_boxes" not in given
            else (given["partner_boxes"], given["partner_box_valid"]),
        )
        if instance is not None:
            instance = tf.transpose(instance, [0, 3, 1, 2])
            targets = targets.with_instance_masks(objects, instance, boxes_from_masks)
        produced = {
            "masks": masks,
            "boxes": targets.boxes,
            "box_valid": targets.box_valid,
            "keypoints": targets.keypoints,
            "keypoint_visible": targets.keypoint_visible,
            "instance_masks": instance,
            "partners": shares,  # what mixing gives back in the partners' place
        }
        return (out_images, *(produced[n] for n in _output_names(names)))

    graph = tf.function(
        body,
        input_signature=signature,
        autograph=False,
        experimental_attributes={"_noinline": True},
    )
    _GRAPHS[key] = graph
    return graph


def _run_plan(
    plan: Plan,
    images,
    seeds,
    value_range,
    masks,
    instance,
    targets,
    min_box_visibility,
    partners=None,
    has_partner=None,
    partner_boxes=None,
):
    """The plan's stages over a batch. partners: [B, P, H, W, C] (the policy's mixing ops read
    the first `plan.partner_count`); partner_boxes: (boxes [B, P, N, 4], valid [B, P, N]) of
    the partners, for a tiling op (mosaic) when `targets` has boxes."""
    shares = None if partners is None else tf.ones(tf.shape(seeds)[:1], tf.float32)
    if not plan.stages:
        return images, masks, instance, targets, shares
    input_dtype = images.dtype
    is_uint8 = input_dtype == tf.uint8
    low, high = (0.0, 255.0) if is_uint8 else tuple(value_range or (0.0, 1.0))
    channels = images.shape[-1]
    table = draw_table(plan, seeds)
    shape = tf.shape(images)
    height, width = tf.cast(shape[1], tf.float32), tf.cast(shape[2], tf.float32)

    # uint8 images stay uint8 through leading flips and warps (no float round trip); the first
    # stage that needs [0, 1] floats converts once, and the end converts back once.
    x = images if is_uint8 else (tf.cast(images, tf.float32) - low) / (high - low)
    as_unit_float = not is_uint8

    def to_unit_float(x):
        return tf.cast(x, tf.float32) / (255.0 if is_uint8 else 1.0)

    for stage in plan.stages:
        if stage.kind == "flip":
            flips = flip_flags(stage, table)
            axes = {inst.definition.flip_axis for inst in stage.instances}
            x, masks, instance = _flip(flips, axes, x, masks, instance)
            if not targets.empty:
                targets = targets.flipped(flip_x=flips[2], flip_y=flips[1])
        elif stage.kind == "warp":
            matrix = stage_matrix(stage, table, height, width)
            scale = 1.0 if as_unit_float else 255.0
            x, masks, instance = _warp(
                matrix, x, masks, instance, plan.policy.fill_mode, plan.policy.fill_value, scale
            )
            if not targets.empty:
                targets = targets.mapped(
                    invert_affine(matrix), height, width, min_box_visibility
                ).mirrored(_mirrors(matrix))
        elif stage.kind == "crop":
            boxes = crop_boxes(stage, table, height, width)
            x, masks, instance = _crop(boxes, x, masks, instance)  # float32 out, same scale
            if not as_unit_float:
                x, as_unit_float = x / 255.0, True
            if not targets.empty:
                targets = targets.mapped(
                    crop_forward(boxes, height, width), height, width, min_box_visibility
                )
        elif stage.kind == "mix":
            if not as_unit_float:
                x, as_unit_float = to_unit_float(x), True
            # The partners as they were given, in the same [0, 1] floats (all channels: CutMix
            # pastes the partner's alpha with its colour).
            if plan.partner_count > 1:  # the graph's P is dynamic: checked here
                tf.debugging.assert_greater_equal(
                    tf.shape(partners)[1],
                    plan.partner_count,
                    message=f"The policy needs {plan.partner_count} partners per image",
                )
            given = partners[:, : plan.partner_count]
            partner = (
                to_unit_float(given)
                if is_uint8
                else (tf.cast(given, tf.float32) - low) / (high - low)
            )
            x, shares, targets = _mix(
                stage,
                x,
                partner,
                has_partner,
                shares,
                table,
                plan.policy.fill_value,
                targets,
                partner_boxes,
                min_box_visibility,
            )
        else:
            if not as_unit_float:
                x, as_unit_float = to_unit_float(x), True
            if channels == 4:
                colour = _photometric(stage, x[..., :3], table, seeds)
                x = tf.concat([colour, x[..., 3:]], axis=-1)
            else:
                x = _photometric(stage, x, table, seeds)

    if is_uint8:
        if as_unit_float:
            x = tf.cast(tf.round(tf.clip_by_value(x, 0.0, 1.0) * 255.0), tf.uint8)
        return x, masks, instance, targets, shares
    x = tf.clip_by_value(x, 0.0, 1.0) * (high - low) + low
    return tf.cast(x, input_dtype), masks, instance, targets, shares
