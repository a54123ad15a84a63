"""Per-object instance masks move with their objects through every door: the core (real photos
with masks drawn inside known boxes), the Keras layer, the SavedModel and the offline copies
(Object Detection API records of real digits, masks by construction, in both of the API's mask
forms). Kept objects' boxes enclose their masks; dropped objects take their masks with them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.core.augment import augment_targets
from tfx_image_augment.core.policy import load_policy

from tests import images as real
from tests.detection_data import detection_example, object_masks, run_cli, scene
from tests.records import read_records

SIDES = ("ymin", "xmin", "ymax", "xmax")
# Large moves, so that some objects leave the frame; `reflect` fill, which instance masks ignore.
WILD = {
    "version": 1,
    "fill_mode": "reflect",
    "ops": [
        {"op": "flip_left_right", "p": 0.5},
        {"op": "rotate", "max_degrees": 40.0, "p": 0.9},
        {"op": "zoom", "min_scale": 0.8, "max_scale": 1.3, "p": 0.8},
        {"op": "translate", "max_dx": 0.45, "max_dy": 0.45, "p": 0.9},
        {"op": "brightness", "max_delta": 0.2, "p": 1.0},
    ],
}
CROPPED = {
    "version": 1,
    "ops": [
        {"op": "flip_up_down", "p": 0.5},
        {"op": "random_resized_crop", "scale": [0.2, 0.6], "ratio": [0.75, 1.33], "p": 1.0},
    ],
}


def _photo_objects(count: int, size: int = 48, seed: int = 0):
    """Real photo crops, each with 3 objects: filled ellipses inside known boxes (rows
    [B, 3, 4] normalized), their masks [B, 3, H, W] (value 1), and one object with no mask."""
    rng = np.random.default_rng(seed)
    images = real.photo_crops(size, count)
    boxes = np.zeros((count, 3, 4), np.float32)
    masks = np.zeros((count, 3, size, size), np.uint8)
    rows, cols = np.mgrid[:size, :size]
    for i in range(count):
        for k in range(3):
            top, left = rng.integers(0, size - 16, 2)
            height, width = rng.integers(8, 17, 2)
            boxes[i, k] = np.array([top, left, top + height, left + width]) / size
            cy, cx = top + (height - 1) / 2, left + (width - 1) / 2
            inside = ((rows - cy) / (height / 2)) ** 2 + ((cols - cx) / (width / 2)) ** 2 <= 1
            masks[i, k][inside] = 1
    return images, boxes, masks


def _tight(mask: np.ndarray) -> np.ndarray:
    height, width = mask.shape
    rows, cols = np.nonzero(mask)
    return np.array(
        [
            rows.min() / height,
            cols.min() / width,
            (rows.max() + 1) / height,
            (cols.max() + 1) / width,
        ],
        np.float32,
    )


def _assert_boxes_enclose_masks(boxes, valid, masks, tolerance_pixels: float = 1.0):
    """Every valid object's box encloses its mask's pixels within `tolerance_pixels`."""
    height, width = masks.shape[-2:]
    slack = np.array([-1, -1, 1, 1]) * tolerance_pixels / np.array([height, width] * 2)
    for box, keep, mask in zip(boxes, valid, masks, strict=True):
        if keep and mask.any():
            tight = _tight(mask)
            assert np.all(tight[:2] >= box[:2] + slack[:2] - 1e-6), (tight, box)
            assert np.all(tight[2:] <= box[2:] + slack[2:] + 1e-6), (tight, box)


@pytest.mark.parametrize("policy", [WILD, CROPPED], ids=["warp", "crop"])
def test_masks_move_with_the_pixels_and_boxes_are_their_tight_boxes(policy):
    images, boxes, masks = _photo_objects(16)
    seeds = np.array([[3, i] for i in range(16)], np.int64)
    out = augment_targets(images, seeds, load_policy(policy), boxes=boxes, instance_masks=masks)
    moved = out["instance_masks"].numpy()
    valid = out["box_valid"].numpy()
    assert moved.shape == masks.shape and moved.dtype == np.uint8
    assert set(np.unique(moved)) <= {0, 1}  # nearest sampling: stored values only
    # Tight boxes equal the moved masks' pixel extents exactly.
    for box, keep, mask in zip(
        out["boxes"].numpy().reshape(-1, 4), valid.ravel(), moved.reshape(-1, 48, 48), strict=True
    ):
        if keep:
            np.testing.assert_array_equal(box, _tight(mask))
    # An object is valid exactly when its box rule and its mask both keep it.
    plain = augment_targets(images, seeds, load_policy(policy), boxes=boxes)
    np.testing.assert_array_equal(
        valid, plain["box_valid"].numpy() & moved.reshape(16, 3, -1).any(axis=-1)
    )
    assert 0 < valid.sum() < valid.size or policy is CROPPED


def test_masks_follow_the_same_map_as_the_pixels_nearest():
    """A mask drawn as an image moves exactly as that image does under flips (which move whole
    pixels): one map for both."""
    images, boxes, masks = _photo_objects(8, seed=1)
    flips = {
        "version": 1,
        "ops": [{"op": "flip_left_right", "p": 1.0}, {"op": "flip_up_down", "p": 0.5}],
    }
    binary = np.repeat(masks[:, :1].transpose(0, 2, 3, 1) * 255, 3, axis=-1)
    seeds = np.array([[5, i] for i in range(8)], np.int64)
    out = augment_targets(
        binary, seeds, load_policy(flips), boxes=boxes[:, :1], instance_masks=masks[:, :1]
    )
    np.testing.assert_array_equal(
        out["instance_masks"].numpy()[:, 0] * 255, out["images"].numpy()[..., 0]
    )


def test_objects_whose_masks_leave_the_frame_are_dropped_and_empty_masks_keep_their_box():
    images, boxes, masks = _photo_objects(16, seed=2)
    masks[:, 2] = 0  # object 2 has no mask: its box rule alone decides, and its box is moved
    seeds = np.array([[11, i] for i in range(16)], np.int64)
    policy = load_policy(WILD)
    out = augment_targets(images, seeds, policy, boxes=boxes, instance_masks=masks)
    plain = augment_targets(images, seeds, policy, boxes=boxes)
    np.testing.assert_array_equal(out["box_valid"].numpy()[:, 2], plain["box_valid"].numpy()[:, 2])
    np.testing.assert_array_equal(out["boxes"].numpy()[:, 2], plain["boxes"].numpy()[:, 2])
    gone = ~out["instance_masks"].numpy()[:, :2].reshape(16, 2, -1).any(axis=-1)
    assert not out["box_valid"].numpy()[:, :2][gone].any()
    # A mask on the top rows of a box over the image's top half: moved up, the mask leaves
    # while part of its box stays; the object is dropped all the same.
    masks = np.zeros((32, 1, 48, 48), np.uint8)
    masks[:, 0, :3, 10:40] = 1
    boxes = np.tile(np.array([[[0.0, 0.0, 0.5, 1.0]]], np.float32), [32, 1, 1])
    up = load_policy(
        {"version": 1, "ops": [{"op": "translate", "max_dx": 0.0, "max_dy": 0.4, "p": 1.0}]}
    )
    images = np.repeat(images[:1], 32, axis=0)
    seeds = np.array([[1, i] for i in range(32)], np.int64)
    out = augment_targets(images, seeds, up, boxes=boxes, instance_masks=masks)
    plain = augment_targets(images, seeds, up, boxes=boxes)
    gone = ~out["instance_masks"].numpy()[:, 0].reshape(32, -1).any(axis=-1)
    assert gone.any() and plain["box_valid"].numpy()[gone, 0].all()
    np.testing.assert_array_equal(out["box_valid"].numpy()[:, 0], ~gone)


def test_loose_boxes_without_boxes_from_masks_still_enclose_the_masks():
    images, boxes, masks = _photo_objects(16, seed=3)
    seeds = np.array([[2, i] for i in range(16)], np.int64)
    policy = load_policy(WILD)
    out = augment_targets(
        images, seeds, policy, boxes=boxes, instance_masks=masks, boxes_from_masks=False
    )
    plain = augment_targets(images, seeds, policy, boxes=boxes)
    np.testing.assert_array_equal(out["boxes"].numpy(), plain["boxes"].numpy())
    _assert_boxes_enclose_masks(
        out["boxes"].numpy().reshape(-1, 4),
        out["box_valid"].numpy().ravel(),
        out["instance_masks"].numpy().reshape(-1, 48, 48),
    )


def test_an_image_gets_the_same_masks_alone_or_in_any_padded_batch():
    images, boxes, masks = _photo_objects(6, seed=4)
    seeds = np.array([[8, i] for i in range(6)], np.int64)
    policy = load_policy(WILD)
    batch = augment_targets(images, seeds, policy, boxes=boxes, instance_masks=masks)
    padded_boxes = np.concatenate([boxes, np.zeros((6, 2, 4), np.float32)], axis=1)
    padded_masks = np.concatenate([masks, np.zeros((6, 2, 48, 48), np.uint8)], axis=1)
    valid = np.concatenate([np.ones((6, 3), bool), np.zeros((6, 2), bool)], axis=1)
    padded = augment_targets(
        images, seeds, policy, boxes=padded_boxes, box_valid=valid, instance_masks=padded_masks
    )
    for i in range(6):
        alone = augment_targets(
            images[i], seeds[i], policy, boxes=boxes[i], instance_masks=masks[i]
        )
        for name in ("instance_masks", "boxes", "box_valid"):
            np.testing.assert_array_equal(alone[name].numpy(), batch[name].numpy()[i])
            np.testing.assert_array_equal(alone[name].numpy(), padded[name].numpy()[i, :3])


def test_bool_masks_come_back_bool():
    images, boxes, masks = _photo_objects(2, seed=6)
    seeds = np.array([[1, 0], [1, 1]], np.int64)
    policy = load_policy(WILD)
    as_bool = augment_targets(images, seeds, policy, boxes=boxes, instance_masks=masks > 0)
    as_uint8 = augment_targets(images, seeds, policy, boxes=boxes, instance_masks=masks)
    assert as_bool["instance_masks"].dtype == tf.bool
    np.testing.assert_array_equal(
        as_bool["instance_masks"].numpy(), as_uint8["instance_masks"].numpy() > 0
    )


def test_instance_masks_need_boxes():
    images, _, masks = _photo_objects(1)
    with pytest.raises(ValueError, match="without boxes"):
        augment_targets(images, [[1, 2]], load_policy("standard"), instance_masks=masks)


def test_the_layer_and_the_saved_model_move_masks_identically(tmp_path):
    from tfx_image_augment import ImageAugmentation
    from tfx_image_augment.online.export import export_augmentation_model

    images, boxes, masks = _photo_objects(8, seed=5)
    seeds = np.array([[4, i] for i in range(8)], np.int64)
    labels = np.arange(24).reshape(8, 3)
    layer = ImageAugmentation(WILD, seed=4)
    out = layer(
        {
            "images": images,
            "seeds": seeds,
            "bounding_boxes": {"boxes": boxes, "labels": labels},
            "instance_masks": masks,
        },
        training=True,
    )
    export_augmentation_model(WILD, 4, str(tmp_path / "model"))
    signature = tf.saved_model.load(str(tmp_path / "model/saved_model")).signatures[
        "augment_with_instance_masks"
    ]
    served = signature(
        images=tf.constant(images),
        seeds=tf.constant(seeds),
        boxes=tf.constant(boxes),
        box_valid=tf.ones([8, 3], tf.bool),
        keypoints=tf.zeros([8, 3, 0, 2]),
        keypoint_visible=tf.zeros([8, 3, 0], tf.bool),
        instance_masks=tf.constant(masks),
    )
    np.testing.assert_array_equal(out["images"].numpy(), served["images"].numpy())
    np.testing.assert_array_equal(out["instance_masks"].numpy(), served["instance_masks"].numpy())
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy(), served["boxes"].numpy())
    valid = served["box_valid"].numpy()
    assert not valid.all()
    np.testing.assert_array_equal(
        out["bounding_boxes"]["labels"].numpy(), np.where(valid, labels, -1)
    )
    record = json.loads((tmp_path / "model/policy.json").read_text())
    assert record["boxes_from_masks"] is True
    # Ragged boxes and masks come back ragged, the same rows.
    ragged = layer(
        {
            "images": images[:2],
            "seeds": seeds[:2],
            "bounding_boxes": {
                "boxes": tf.ragged.constant([boxes[0], boxes[1][:2]], ragged_rank=1),
                "labels": tf.ragged.constant([labels[0], labels[1][:2]]),
            },
            "instance_masks": tf.ragged.constant([masks[0], masks[1][:2]], ragged_rank=1),
        },
        training=True,
    )
    assert ragged["instance_masks"].row_lengths().numpy().tolist() == [3, 2]
    np.testing.assert_array_equal(
        ragged["instance_masks"][0].numpy(), served["instance_masks"].numpy()[0]
    )
    assert ImageAugmentation.from_config(layer.get_config()).boxes_from_masks is True


# ----------------------------------------------------------------------------------------------
# The offline door: Object Detection API records with instance masks
# ----------------------------------------------------------------------------------------------


def _records(count: int, seed: int = 0, form: str = "png", value: int = 1) -> list[bytes]:
    images, boxes, semantic, labels = scene(count, seed)
    return [
        detection_example(
            images[i],
            boxes[i],
            labels[i],
            f"scene-{seed}-{i}",
            instance_masks=object_masks(semantic[i], value=value),
            mask_form=form,
        )
        for i in range(count)
    ]


def _run(tmp_path, records, name="out", extra=()) -> dict:
    (tmp_path / "wild.json").write_text(json.dumps(WILD))
    return run_cli(tmp_path, records, name, str(tmp_path / "wild.json"), extra)


def _masks_of(example, height: int = 64, width: int = 64):
    feature = example.features.feature["image/object/mask"]
    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        return kind, np.array(
            [tf.io.decode_png(v).numpy()[..., 0] for v in feature.bytes_list.value], np.uint8
        ).reshape(-1, height, width)
    values = np.array(getattr(feature, kind).value)
    return kind, values.reshape(-1, height, width).astype(np.uint8)


def _boxes_of(example):
    f = example.features.feature
    return np.stack(
        [np.array(f[f"image/object/bbox/{s}"].float_list.value, np.float32) for s in SIDES], -1
    )


def _check_copies_against_the_saved_model(out_dir, records, kind: str) -> tuple[int, int]:
    """Each copy's image, boxes, masks and per-object lists equal the SavedModel's output for
    its original and aug_seed; returns (copies, objects dropped)."""
    originals = {}
    for record in records:
        example = tf.train.Example.FromString(record)
        originals[example.features.feature["image/source_id"].bytes_list.value[0]] = example
    signature = tf.saved_model.load(str(out_dir / "augmentation_model/saved_model")).signatures[
        "augment_with_instance_masks"
    ]
    copies = dropped = 0
    for record in read_records(str(out_dir / "data_tfrecord-*")):
        copy = tf.train.Example.FromString(record)
        f = copy.features.feature
        if f["aug_copy_index"].int64_list.value[0] == 0:
            continue
        copies += 1
        source = originals[f["aug_source_key"].bytes_list.value[0]]
        image = tf.io.decode_png(source.features.feature["image/encoded"].bytes_list.value[0])
        boxes = _boxes_of(source)
        _, masks = _masks_of(source)
        count = len(boxes)
        served = signature(
            images=image[None],
            seeds=tf.constant([list(f["aug_seed"].int64_list.value)], tf.int64),
            boxes=tf.constant(boxes[None]),
            box_valid=tf.ones([1, count], tf.bool),
            keypoints=tf.zeros([1, count, 0, 2]),
            keypoint_visible=tf.zeros([1, count, 0], tf.bool),
            instance_masks=tf.constant(masks[None]),
        )
        keep = served["box_valid"].numpy()[0]
        dropped += int((~keep).sum())
        np.testing.assert_array_equal(
            tf.io.decode_png(f["image/encoded"].bytes_list.value[0]).numpy(),
            served["images"].numpy()[0],
        )
        copy_kind, copy_masks = _masks_of(copy)
        assert copy_kind == kind
        np.testing.assert_array_equal(copy_masks, served["instance_masks"].numpy()[0][keep])
        copy_boxes = _boxes_of(copy)
        np.testing.assert_array_equal(copy_boxes, served["boxes"].numpy()[0][keep])
        # Kept objects: the box encloses the mask (exactly, as its tight box) and the mask has
        # pixels; every per-object list holds the kept objects, in order.
        for box, mask in zip(copy_boxes, copy_masks, strict=True):
            assert mask.any()
            np.testing.assert_array_equal(box, _tight(mask))
        labels = list(source.features.feature["image/object/class/label"].int64_list.value)
        assert list(f["image/object/class/label"].int64_list.value) == [
            label for label, k in zip(labels, keep, strict=True) if k
        ]
        for name in ("image/object/class/text", "image/object/area", "image/object/is_crowd"):
            kind_of = f[name].WhichOneof("kind")
            assert len(getattr(f[name], kind_of).value) == keep.sum()
    return copies, dropped


@pytest.mark.parametrize(
    "form, value, kind",
    [("png", 255, "bytes_list"), ("raw_float", 1, "float_list"), ("raw_int64", 1, "int64_list")],
)
def test_copies_carry_moved_masks_exactly_as_the_saved_model_moves_them(
    tmp_path, form, value, kind
):
    records = _records(10, seed=1, form=form, value=value)
    summary = _run(tmp_path, records)
    assert summary["quarantined"] == {} and summary["copies_written"] == 30
    copies, dropped = _check_copies_against_the_saved_model(tmp_path / "out", records, kind)
    assert copies == 30 and dropped > 0
    # The stored values are kept (0/255 stays 0/255, 0/1 stays 0/1).
    by_boxes = {}
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        example = tf.train.Example.FromString(record)
        _, masks = _masks_of(example)
        assert set(np.unique(masks)) <= {0, value}
        by_boxes[_boxes_of(example).tobytes()] = masks
    if form == "png":  # the reader gives them back
        from tfx_image_augment.io.reader import read_detection

        read = read_detection(
            str(tmp_path / "out"), channels=1, instance_mask_feature="image/object/mask"
        )
        items = list(read.as_numpy_iterator())
        assert len(items) == 40
        for item in items:
            np.testing.assert_array_equal(item["instance_masks"], by_boxes[item["boxes"].tobytes()])


def test_without_boxes_from_masks_copies_keep_the_moved_boxes(tmp_path):
    records = _records(6, seed=2)
    _run(tmp_path, records, extra=["--no-boxes-from-masks"])
    record = json.loads((tmp_path / "out/augmentation_model/policy.json").read_text())
    assert record["boxes_from_masks"] is False
    for raw in read_records(str(tmp_path / "out/data_tfrecord-*")):
        copy = tf.train.Example.FromString(raw)
        _, masks = _masks_of(copy)
        boxes = _boxes_of(copy)
        _assert_boxes_enclose_masks(boxes, np.ones(len(boxes), bool), masks)


def _broken(mutate, records):
    example = tf.train.Example.FromString(records[2])
    mutate(example.features.feature["image/object/mask"])
    records = list(records)
    records[2] = example.SerializeToString()
    return records


@pytest.mark.parametrize(
    "form, mutate, reason",
    [
        (
            "png",
            lambda m: m.bytes_list.value.__setitem__(0, b"\x89PNG\r\n\x1a\nbroken"),
            "instance_mask_invalid",
        ),
        (
            "png",
            lambda m: m.bytes_list.value.__setitem__(
                1, tf.io.encode_png(np.zeros((32, 64, 1), np.uint8)).numpy()
            ),
            "instance_mask_shape_mismatch",
        ),
        ("png", lambda m: m.bytes_list.value.pop(), "objects_misaligned"),
        ("raw_float", lambda m: m.float_list.value.pop(), "instance_mask_shape_mismatch"),
        ("raw_float", lambda m: m.float_list.value.__setitem__(0, 0.5), "instance_mask_invalid"),
    ],
    ids=["corrupt_png", "png_size", "png_count", "raw_length", "raw_fraction"],
)
def test_bad_masks_are_quarantined_with_their_reason(tmp_path, form, mutate, reason):
    records = _broken(mutate, _records(5, seed=3, form=form))
    summary = _run(tmp_path, records, extra=["--max-quarantine-fraction", "0.5"])
    assert summary["quarantined"] == {reason: 1}
    (kept,) = read_records(str(tmp_path / "out/quarantine/*/*"))
    features = tf.train.Example.FromString(kept).features.feature
    assert features["quarantine_reason"].bytes_list.value[0].decode() == reason
    assert features["quarantine_record"].bytes_list.value[0] == records[2]


def test_the_component_moves_masks_and_its_model_agrees(tmp_path):
    from tfx_image_augment.offline.config import AugmentConfig

    from tests.executor_helpers import counts, examples_artifact, run_executor

    records = _records(8, seed=6)
    examples = examples_artifact(tmp_path / "in", {"train": records})
    config = AugmentConfig(
        policy=json.dumps(WILD), num_copies=3, seed=1, key_feature="image/source_id"
    ).validate()
    augmented, model = run_executor(examples, tmp_path / "out", config)
    assert counts(augmented)["train"]["quarantined"] == {}
    out_dir = tmp_path / "out/check"
    out_dir.mkdir()
    (out_dir / "augmentation_model").symlink_to(tmp_path / "out/model")
    for i, path in enumerate(sorted((tmp_path / "out/augmented/Split-train").glob("*.gz"))):
        (out_dir / f"data_tfrecord-{i}.gz").symlink_to(path)
    copies, dropped = _check_copies_against_the_saved_model(out_dir, records, "bytes_list")
    assert copies == 24 and dropped > 0
    assert (tmp_path / "out/model/preview.png").exists()


def test_the_preview_draws_masks_translucent():
    from tfx_image_augment.offline.preview import (
        MASK_COLOURS,
        MASK_OPACITY,
        PreviewCell,
        contact_sheet,
    )

    image = np.full((32, 32, 3), 100, np.uint8)
    mask = np.zeros((1, 32, 32), np.uint8)
    mask[0, 8:16, 8:16] = 1
    plain = contact_sheet([[PreviewCell(image)]], cell=32)
    drawn = contact_sheet([[PreviewCell(image, masks=mask)]], cell=32)
    changed = np.any(plain != drawn, axis=-1)
    assert changed.sum() == 64  # the mask's pixels, nothing else
    colour = np.array(MASK_COLOURS[0], float)
    expected = np.round((1 - MASK_OPACITY) * 100 + MASK_OPACITY * colour).astype(np.uint8)
    assert np.all(drawn[changed] == expected)
