"""Per-object features of a detection record: read, checked, moved, and kept aligned.

The TensorFlow Object Detection API layout: `image/object/bbox/{ymin,xmin,ymax,xmax}` (one float
per object), any other `image/object/*` feature with one value per object (`class/label`,
`class/text`, `area`, `is_crowd`, `difficult`, ...), and optional keypoints
`image/object/keypoint/{y,x}` (K per object, object-major) with `visibility`. Prefixes are
configurable; coordinates are normalized to [0, 1] or in pixels (`box_coordinates`).

After augmentation an object whose box is no longer valid (see `geometry.py`) is dropped
together with every per-object feature at its index, so all per-object lists stay aligned;
keypoints that leave the image keep their place with visibility 0. Visibility values go through
the core as they are (COCO's 2 stays 2 while the keypoint stays in the image) and follow the
keypoint flip permutation with their keypoints; a keypoint with visibility 0 (not labelled)
comes out as given, NaN included. Per-object instance masks `<object prefix>mask` (one PNG per
object, or N x H x W raw values) move with the pixels, are dropped with their object (an object
whose mask leaves the image is dropped), and are written back in their form; with
`boxes_from_masks` the kept objects' boxes are the tight boxes of their moved masks. Other
per-object values (`area` included) are carried as they are, not recomputed.

Needs TensorFlow and numpy only (no Beam).
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfx_image_augment.io.codec import decode_instance_masks, encode_instance_masks
from tfx_image_augment.io.quarantine import (
    BOXES_INVALID,
    BOXES_MISALIGNED,
    INSTANCE_MASK_SHAPE_MISMATCH,
    KEYPOINTS_INVALID,
    OBJECTS_MISALIGNED,
    Quarantined,
)
from tfx_image_augment.io.records import BOX_SIDES
from tfx_image_augment.offline.config import AugmentConfig

# Per-object instance masks: `<object prefix>mask`, one PNG per object or N x H x W raw values.
INSTANCE_MASK_SUFFIX = "mask"
# Keypoint features that are not coordinates: one value per object (`num`) or per keypoint
# (`text`, `visibility`); kept aligned like every other per-object feature.
KEYPOINT_COORDINATES = ("y", "x")


@dataclasses.dataclass
class Objects:
    """One record's objects in normalized units: boxes [N, 4] (ymin, xmin, ymax, xmax) and, when
    the record has keypoints, keypoints [N, K, 2] (y, x) with visibility [N, K] (int64 values
    as the record had them; 1 where it had none); when it has instance masks, masks [N, H, W]
    and the form they were stored in."""

    boxes: np.ndarray
    keypoints: np.ndarray | None = None
    keypoint_visibility: np.ndarray | None = None
    masks: np.ndarray | None = None  # uint8 [N, H, W], the values as stored
    mask_form: str | None = None  # codec.INSTANCE_MASK_FORMS
    # The record's per-object features as (name, value type): what a mosaic's partners share,
    # so their values can be concatenated with the image's own.
    schema: tuple = ()

    @property
    def count(self) -> int:
        return len(self.boxes)

    @property
    def keypoints_per_object(self) -> int | None:
        return None if self.keypoints is None else self.keypoints.shape[1]


# A record without objects, where a mosaic needs a partner's (a copy that found no partners).
NO_OBJECTS = Objects(np.zeros((0, 4), np.float32))


def _values(features, name: str) -> list | None:
    feature = features.get(name)
    if feature is None:
        return None
    kind = feature.WhichOneof("kind")
    return list(getattr(feature, kind).value) if kind else []


def _numbers(features, name: str, reason: str) -> list | None:
    """A feature's values when they are numbers (float or int64 list); raises Quarantined."""
    feature = features.get(name)
    if feature is None:
        return None
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list" and feature.bytes_list.value:
        raise Quarantined(reason, f"{name} holds bytes, not numbers")
    return list(getattr(feature, kind).value) if kind else []


def _is_keypoint_feature(name: str, config: AugmentConfig) -> bool:
    return name.startswith(config.keypoint_feature_prefix)


def read_objects(example, config: AugmentConfig, height: int, width: int) -> Objects | None:
    """The record's objects, or None when it has no box features; raises Quarantined."""
    features = example.features.feature
    sides = [
        _numbers(features, config.box_feature_prefix + side, BOXES_INVALID) for side in BOX_SIDES
    ]
    if all(side is None for side in sides):
        return None
    lengths = [None if side is None else len(side) for side in sides]
    if None in lengths or len(set(lengths)) != 1:
        raise Quarantined(
            BOXES_MISALIGNED,
            f"{config.box_feature_prefix}{{ymin,xmin,ymax,xmax}} have {lengths} values",
        )
    boxes = np.asarray(sides, np.float64).T.reshape(-1, 4)
    scale = (
        np.ones(4)
        if config.box_coordinates == "normalized"
        else np.array([height, width, height, width], np.float64)
    )
    if not np.all(np.isfinite(boxes)):
        raise Quarantined(BOXES_INVALID, "a box coordinate is NaN or infinite")
    if np.any(boxes < 0) or np.any(boxes > scale):
        unit = "[0, 1]" if config.box_coordinates == "normalized" else "the image"
        raise Quarantined(BOXES_INVALID, f"a box coordinate is outside {unit}")
    if np.any(boxes[:, 0] > boxes[:, 2]) or np.any(boxes[:, 1] > boxes[:, 3]):
        raise Quarantined(BOXES_INVALID, "a box has ymin > ymax or xmin > xmax")
    count = len(boxes)
    normalized = (boxes / scale).astype(np.float32)
    mask_feature = instance_mask_feature(config)
    masks = mask_form = None
    if _values(features, mask_feature):
        masks, mask_form = decode_instance_masks(
            features[mask_feature], config.decode_rules, mask_feature, height, width
        )
        if len(masks) != count:
            reason = OBJECTS_MISALIGNED if mask_form == "png" else INSTANCE_MASK_SHAPE_MISMATCH
            raise Quarantined(reason, f"{mask_feature} has {len(masks)} masks for {count} objects")
    keypoints, visibility = _read_keypoints(features, config, count, height, width)
    per_keypoint = count * (keypoints.shape[1] if keypoints is not None else 0)
    for name in sorted(features):
        if not name.startswith(config.object_feature_prefix):
            continue
        if name.startswith(config.box_feature_prefix) or (
            masks is not None and name == mask_feature
        ):
            continue
        if _is_keypoint_feature(name, config):
            if name.removeprefix(config.keypoint_feature_prefix) in KEYPOINT_COORDINATES:
                continue
            allowed = {count, per_keypoint} if keypoints is not None else {count}
        else:
            allowed = {count}
        found = len(_values(features, name))
        if found not in allowed:
            raise Quarantined(OBJECTS_MISALIGNED, f"{name} has {found} values for {count} objects")
    schema = tuple(
        (name, features[name].WhichOneof("kind"))
        for name in sorted(features)
        if name.startswith(config.object_feature_prefix)
    )
    return Objects(normalized, keypoints, visibility, masks, mask_form, schema)


def instance_mask_feature(config: AugmentConfig) -> str:
    """The feature holding per-object instance masks: `object_feature_prefix` + "mask"."""
    return config.object_feature_prefix + INSTANCE_MASK_SUFFIX


def _read_keypoints(features, config: AugmentConfig, count: int, height: int, width: int):
    prefix = config.keypoint_feature_prefix
    ys = _numbers(features, prefix + "y", KEYPOINTS_INVALID)
    xs = _numbers(features, prefix + "x", KEYPOINTS_INVALID)
    visibility = _numbers(features, prefix + "visibility", KEYPOINTS_INVALID)
    if ys is None and xs is None:
        return None, None
    if ys is None or xs is None or len(ys) != len(xs):
        raise Quarantined(KEYPOINTS_INVALID, f"{prefix}y and {prefix}x differ in length")
    if (count == 0 and ys) or (count and len(ys) % count):
        raise Quarantined(
            KEYPOINTS_INVALID, f"{len(ys)} keypoints do not divide among {count} objects"
        )
    if visibility is not None and len(visibility) != len(ys):
        raise Quarantined(
            KEYPOINTS_INVALID, f"{prefix}visibility has {len(visibility)} values for {len(ys)}"
        )
    per_object = len(ys) // count if count else 0
    permutation = config.keypoint_flip_permutation
    if count and permutation is not None and len(permutation) != per_object:
        raise Quarantined(
            KEYPOINTS_INVALID,
            f"{per_object} keypoints per object; keypoint_flip_permutation has {len(permutation)}",
        )
    points = np.stack([np.asarray(ys, np.float64), np.asarray(xs, np.float64)], axis=-1)
    visible = np.ones(len(ys), np.int64) if visibility is None else np.asarray(visibility, np.int64)
    # Some datasets mark unlabelled keypoints with NaN and visibility 0: allowed there only
    # (the core leaves a keypoint with visibility 0 as it is, NaN included).
    if not np.all(np.isfinite(points[visible > 0])):
        raise Quarantined(KEYPOINTS_INVALID, "a visible keypoint's coordinate is NaN or infinite")
    # A labelled keypoint lies in the image, as a box does (an unlabelled one may be anywhere).
    scale = np.ones(2) if config.box_coordinates == "normalized" else np.array([height, width])
    labelled = points[visible > 0]
    if np.any(labelled < 0) or np.any(labelled > scale):
        unit = "[0, 1]" if config.box_coordinates == "normalized" else "the image"
        raise Quarantined(KEYPOINTS_INVALID, f"a visible keypoint is outside {unit}")
    if config.box_coordinates == "pixels":
        points = points / np.array([height, width], np.float64)
    return (
        points.astype(np.float32).reshape(count, per_object, 2),
        visible.reshape(count, per_object),
    )


def write_objects(
    example,
    config: AugmentConfig,
    objects: Objects,
    boxes: np.ndarray,
    box_valid: np.ndarray,
    keypoints: np.ndarray | None,
    keypoint_visible: np.ndarray | None,
    height: int,
    width: int,
    mask_values: list | None = None,
    partners: tuple = (),
    rows: int = 0,
) -> int:
    """Rewrites `example`'s objects from the moved geometry (first `objects.count` rows of the
    core's padded outputs, keypoint visibility as the values `padded` gave it); drops invalid
    objects from every per-object feature. `mask_values`: the kept objects' moved instance
    masks as `kept_mask_values` encodes them. `partners`: a tiling op's partners as (their
    record's features, their Objects), whose objects follow the image's own in blocks of `rows`
    rows (the core's order: own, partner 1, 2, 3); their kept objects' boxes and per-object
    values are appended in that order (partners bring boxes and per-object values only, the
    same features as the image's: `Objects.schema`). Returns how many objects were kept."""
    features = example.features.feature
    members = [(features, objects), *partners]
    keeps = [
        np.flatnonzero(box_valid[m * rows : m * rows + member.count])
        for m, (_, member) in enumerate(members)
    ]
    keep = keeps[0]
    scale = (
        np.ones(4, np.float32)
        if config.box_coordinates == "normalized"
        else np.array([height, width, height, width], np.float32)
    )
    kept_boxes = (
        np.concatenate([boxes[m * rows + kept] for m, kept in enumerate(keeps)]).reshape(-1, 4)
        * scale
    )
    for i, side in enumerate(BOX_SIDES):
        feature = features[config.box_feature_prefix + side]
        feature.float_list.value[:] = kept_boxes[:, i].tolist()
    per_object = objects.keypoints_per_object or 0
    for name in sorted(features):
        kind = features[name].WhichOneof("kind")
        if (
            kind is None
            or not name.startswith(config.object_feature_prefix)
            or name.startswith(config.box_feature_prefix)
            or (objects.masks is not None and name == instance_mask_feature(config))
        ):
            continue
        if _is_keypoint_feature(name, config) and (
            name.removeprefix(config.keypoint_feature_prefix) in KEYPOINT_COORDINATES
            or name == config.keypoint_feature_prefix + "visibility"
        ):
            continue  # rewritten from the moved keypoints below
        kept = []
        for (member_features, member), member_keep in zip(members, keeps, strict=True):
            values = getattr(member_features[name], kind).value
            # Per-keypoint features (`keypoint/text`) have count * K values; all others count.
            indices = member_keep
            if per_object and len(values) == member.count * per_object:
                indices = [i * per_object + j for i in member_keep for j in range(per_object)]
            kept.extend(values[i] for i in indices)
        values = getattr(features[name], kind).value
        del values[:]
        values.extend(kept)
    if objects.keypoints is not None:
        prefix = config.keypoint_feature_prefix
        points = keypoints[keep]
        if config.box_coordinates == "pixels":
            points = points * np.array([height, width], np.float32)
        visible = keypoint_visible[keep]  # the record's values, as the core moved them
        features[prefix + "y"].float_list.value[:] = points[..., 0].ravel().tolist()
        features[prefix + "x"].float_list.value[:] = points[..., 1].ravel().tolist()
        features[prefix + "visibility"].int64_list.value[:] = visible.ravel().tolist()
    if objects.masks is not None:
        feature = features[instance_mask_feature(config)]
        feature.Clear()
        if objects.mask_form == "raw_float":
            feature.float_list.value.extend(mask_values)
        elif objects.mask_form == "raw_int64":
            feature.int64_list.value.extend(mask_values)
        else:
            feature.bytes_list.value.extend(mask_values)
    return len(kept_boxes)


def kept_mask_values(objects_list: list[Objects], box_valid, instance_masks, rules) -> list:
    """For each record of a group (all with masks of one form), the values of its mask feature:
    the moved masks (padded [B, N, H, W]) of the objects `box_valid` keeps, encoded in one
    call for the group."""
    kept = [
        instance_masks[i][np.flatnonzero(box_valid[i][: o.count])]
        for i, o in enumerate(objects_list)
    ]
    form = objects_list[0].mask_form
    if form != "png":
        return [encode_instance_masks(masks, form, rules) for masks in kept]
    encoded = encode_instance_masks(np.concatenate(kept), form, rules)
    ends = np.cumsum([len(masks) for masks in kept])
    return [encoded[end - len(masks) : end] for end, masks in zip(ends, kept, strict=True)]


def padded_masks(objects_list: list[Objects]) -> np.ndarray | None:
    """The group's instance masks padded to [B, N, H, W] (zeros: no object), or None."""
    if objects_list[0].masks is None:
        return None
    height, width = objects_list[0].masks.shape[1:]
    most = max(o.count for o in objects_list)
    masks = np.zeros((len(objects_list), most, height, width), np.uint8)
    for i, objects in enumerate(objects_list):
        masks[i, : objects.count] = objects.masks
    return masks


def padded(objects_list: list[Objects], most: int | None = None):
    """The core's padded inputs for a group of records with the same keypoint count:
    boxes [B, N, 4], box_valid [B, N], keypoints [B, N, K, 2] and their int64 visibility
    values [B, N, K] (or None); N is `most` or the most objects a record has."""
    most = max(o.count for o in objects_list) if most is None else most
    batch = len(objects_list)
    boxes = np.zeros((batch, most, 4), np.float32)
    valid = np.zeros((batch, most), bool)
    per_object = objects_list[0].keypoints_per_object
    keypoints = visible = None
    if per_object is not None:
        keypoints = np.zeros((batch, most, per_object, 2), np.float32)
        visible = np.zeros((batch, most, per_object), np.int64)
    for i, objects in enumerate(objects_list):
        boxes[i, : objects.count] = objects.boxes
        valid[i, : objects.count] = True
        if per_object is not None:
            keypoints[i, : objects.count] = objects.keypoints
            visible[i, : objects.count] = objects.keypoint_visibility
    return boxes, valid, keypoints, visible
