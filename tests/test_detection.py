"""Detection records through the offline door: Object Detection API tf.Examples made of real
digits at boxes known by construction. Boxes and keypoints move exactly as the exported model
moves them, per-object lists stay aligned, and bad box data is quarantined with its reason."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf

from tests.detection_data import detection_example, run_cli, scene
from tests.records import read_records

KEYPOINTS_PER_OBJECT = 2


def _records(count: int, seed: int = 0) -> list[bytes]:
    images, boxes, _, labels = scene(count, seed)
    keypoints = np.stack([boxes[..., :2], boxes[..., 2:]], axis=2)  # two corners per object
    return [
        detection_example(images[i], boxes[i], labels[i], f"scene-{seed}-{i}", keypoints[i])
        for i in range(count)
    ]


def _run(tmp_path, records, name="out", extra=(), beam=("--direct_num_workers=1",)) -> dict:
    return run_cli(tmp_path, records, name, "standard", extra, beam)


def _floats(example, name):
    return np.array(example.features.feature[name].float_list.value, np.float32)


def _ints(example, name):
    return list(example.features.feature[name].int64_list.value)


def test_copies_carry_moved_boxes_and_keypoints_exactly_as_the_saved_model_moves_them(tmp_path):
    records = _records(12)
    summary = _run(tmp_path, records)
    assert summary["examples_in"] == 12 and summary["copies_written"] == 36
    originals = {}
    for record in records:
        example = tf.train.Example.FromString(record)
        originals[example.features.feature["image/source_id"].bytes_list.value[0]] = example
    signature = tf.saved_model.load(
        str(tmp_path / "out/augmentation_model/saved_model")
    ).signatures["augment_with_boxes"]
    moved = dropped_any = 0
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        copy = tf.train.Example.FromString(record)
        if _ints(copy, "aug_copy_index")[0] == 0:
            continue
        source = originals[copy.features.feature["aug_source_key"].bytes_list.value[0]]
        image = tf.io.decode_png(source.features.feature["image/encoded"].bytes_list.value[0])
        boxes = np.stack(
            [_floats(source, f"image/object/bbox/{s}") for s in ("ymin", "xmin", "ymax", "xmax")],
            axis=-1,
        )
        points = np.stack(
            [
                _floats(source, "image/object/keypoint/y"),
                _floats(source, "image/object/keypoint/x"),
            ],
            axis=-1,
        ).reshape(len(boxes), KEYPOINTS_PER_OBJECT, 2)
        served = signature(
            images=image[None],
            seeds=tf.constant([_ints(copy, "aug_seed")], tf.int64),
            boxes=tf.constant(boxes[None]),
            box_valid=tf.ones([1, len(boxes)], tf.bool),
            keypoints=tf.constant(points[None]),
            keypoint_visible=tf.ones([1, len(boxes), KEYPOINTS_PER_OBJECT], tf.bool),
        )
        keep = served["box_valid"].numpy()[0]
        dropped_any += int(not keep.all())
        copy_image = tf.io.decode_png(copy.features.feature["image/encoded"].bytes_list.value[0])
        np.testing.assert_array_equal(copy_image.numpy(), served["images"].numpy()[0])
        copy_boxes = np.stack(
            [_floats(copy, f"image/object/bbox/{s}") for s in ("ymin", "xmin", "ymax", "xmax")],
            axis=-1,
        )
        np.testing.assert_array_equal(copy_boxes, served["boxes"].numpy()[0][keep])
        moved += int(not np.array_equal(copy_boxes, boxes[keep]))
        # Every per-object list keeps the kept objects, in order.
        labels = _ints(source, "image/object/class/label")
        assert _ints(copy, "image/object/class/label") == [
            label for label, k in zip(labels, keep, strict=True) if k
        ]
        texts = list(source.features.feature["image/object/class/text"].bytes_list.value)
        assert list(copy.features.feature["image/object/class/text"].bytes_list.value) == [
            t for t, k in zip(texts, keep, strict=True) if k
        ]
        assert len(_floats(copy, "image/object/area")) == keep.sum()
        copy_points = np.stack(
            [_floats(copy, "image/object/keypoint/y"), _floats(copy, "image/object/keypoint/x")],
            axis=-1,
        )
        np.testing.assert_array_equal(
            copy_points, served["keypoints"].numpy()[0][keep].reshape(-1, 2)
        )
        np.testing.assert_array_equal(
            _ints(copy, "image/object/keypoint/visibility"),
            served["keypoint_visible"].numpy()[0][keep].ravel().astype(int),
        )
    assert moved >= 30  # `standard` moves nearly every copy's boxes


# Visibility as COCO writes it: 2 visible, 1 labelled but hidden, 0 not labelled.
_VISIBILITY_PATTERNS = ([2, 1], [2, 0], [1, 2], [0, 2], [1, 1], [0, 0], [2, 2], [1, 0])


def _left_right_records(count: int, seed: int) -> list[bytes]:
    """Two keypoints per object, slot 0 on its left edge and slot 1 on its right, visibility
    values 2/1/0 mixed; an unlabelled keypoint holds NaN, or a point outside the image."""
    images, boxes, _, labels = scene(count, seed)
    middle = (boxes[..., 0] + boxes[..., 2]) / 2
    left = np.stack([middle, boxes[..., 1]], axis=-1)
    right = np.stack([middle, boxes[..., 3]], axis=-1)
    keypoints = np.stack([left, right], axis=2)
    records = []
    for i in range(count):
        visibility = [
            _VISIBILITY_PATTERNS[(2 * i + k) % len(_VISIBILITY_PATTERNS)] for k in range(2)
        ]
        points = keypoints[i].copy()
        unlabelled = np.array(visibility) == 0
        points[unlabelled] = np.nan if i % 2 else -0.25
        example = tf.train.Example.FromString(
            detection_example(images[i], boxes[i], labels[i], f"lr-{i}", points)
        )
        f = example.features.feature
        f["image/object/keypoint/visibility"].int64_list.value[:] = np.ravel(visibility).tolist()
        records.append(example.SerializeToString())
    return records


def _objects_of(example):
    boxes = np.stack(
        [_floats(example, f"image/object/bbox/{s}") for s in ("ymin", "xmin", "ymax", "xmax")],
        axis=-1,
    )
    points = np.stack(
        [_floats(example, "image/object/keypoint/y"), _floats(example, "image/object/keypoint/x")],
        axis=-1,
    ).reshape(len(boxes), KEYPOINTS_PER_OBJECT, 2)
    visibility = np.array(_ints(example, "image/object/keypoint/visibility")).reshape(
        len(boxes), KEYPOINTS_PER_OBJECT
    )
    return boxes, points, visibility


@pytest.mark.parametrize("stage", ["flip", "warp"])
def test_mirrored_copies_write_keypoints_and_visibility_values_as_the_core_permutes_them(
    tmp_path, stage
):
    from tfx_image_augment import load_policy
    from tfx_image_augment.core.augment import augment_targets

    records = _left_right_records(16, seed=13)
    ops = [{"op": "flip_left_right", "p": 0.5}]
    if stage == "warp":  # the flip joins a rotation in one warp; mirroring shows in the matrix
        ops.append({"op": "rotate", "max_degrees": 5})
    policy = {"version": 1, "fill_mode": "constant", "ops": ops}
    summary = _run(
        tmp_path,
        records,
        extra=["--policy", json.dumps(policy), "--keypoint-flip-permutation", "1,0"],
    )
    assert summary["quarantined"] == {}  # unlabelled keypoints may hold NaN or lie outside
    originals = {}
    for record in records:
        example = tf.train.Example.FromString(record)
        originals[example.features.feature["image/source_id"].bytes_list.value[0]] = example
    mirrored = unlabelled = 0
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        copy = tf.train.Example.FromString(record)
        if _ints(copy, "aug_copy_index")[0] == 0:
            continue
        source = originals[copy.features.feature["aug_source_key"].bytes_list.value[0]]
        image = tf.io.decode_png(source.features.feature["image/encoded"].bytes_list.value[0])
        boxes, points, visibility = _objects_of(source)
        core = augment_targets(
            image[None],
            np.array([_ints(copy, "aug_seed")], np.int64),
            load_policy(policy),
            boxes=boxes[None],
            keypoints=points[None],
            keypoint_visible=visibility[None],
            keypoint_flip_permutation=[1, 0],
        )
        keep = core["box_valid"].numpy()[0]
        assert keep.all()  # small moves: every object and keypoint stays in the image
        _, copy_points, copy_visibility = _objects_of(copy)
        # The core's keypoints and visibility values, in the core's slot order.
        np.testing.assert_array_equal(copy_points, core["keypoints"].numpy()[0])
        np.testing.assert_array_equal(copy_visibility, core["keypoint_visible"].numpy()[0])
        # Spelled out: a mirrored copy's left slot holds the right point, with its value (2
        # stays 2, 1 stays 1); an unlabelled point (0) comes out as given, NaN staying NaN.
        unpermuted = augment_targets(
            image[None],
            np.array([_ints(copy, "aug_seed")], np.int64),
            load_policy(policy),
            keypoints=points[None],
            keypoint_visible=visibility[None],
        )["keypoints"].numpy()[0]
        is_mirrored = not np.array_equal(unpermuted, copy_points, equal_nan=True)
        order = [1, 0] if is_mirrored else [0, 1]
        np.testing.assert_array_equal(copy_visibility, visibility[:, order])
        absent = copy_visibility == 0
        np.testing.assert_array_equal(copy_points[absent], points[:, order][absent])
        mirrored += is_mirrored
        unlabelled += int(np.isnan(copy_points).any())
    assert 0 < mirrored < 48 and unlabelled > 0


@pytest.mark.parametrize(
    "break_record, reason",
    [
        (
            lambda f: f["image/object/bbox/xmin"].float_list.value.__setitem__(0, 0.9),
            "boxes_invalid",
        ),
        (
            lambda f: f["image/object/bbox/ymax"].float_list.value.__setitem__(1, 1.5),
            "boxes_invalid",
        ),
        (lambda f: f["image/object/bbox/ymin"].float_list.value.append(0.1), "boxes_misaligned"),
        (lambda f: f["image/object/class/label"].int64_list.value.append(3), "objects_misaligned"),
        (lambda f: f["image/object/keypoint/x"].float_list.value.append(0.5), "keypoints_invalid"),
        (
            lambda f: f["image/object/keypoint/y"].float_list.value.__setitem__(1, 1.5),
            "keypoints_invalid",
        ),
        (
            lambda f: f["image/object/mask"].bytes_list.value.extend([b"png", b"png"]),
            "instance_mask_invalid",
        ),
        (
            lambda f: (
                f["image/object/bbox/ymin"].Clear(),
                f["image/object/bbox/ymin"].bytes_list.value.extend([b"a", b"b"]),
            ),
            "boxes_invalid",
        ),
        (
            lambda f: (
                f["image/object/keypoint/visibility"].Clear(),
                f["image/object/keypoint/visibility"].bytes_list.value.extend([b"v"] * 4),
            ),
            "keypoints_invalid",
        ),
    ],
    ids=[
        "xmin_above_xmax",
        "outside_range",
        "lists_differ",
        "labels_differ",
        "keypoints",
        "visible_keypoint_outside",
        "instance_masks",
        "bytes_boxes",
        "bytes_visibility",
    ],
)
def test_bad_object_data_is_quarantined_with_its_reason_never_crashes(
    tmp_path, break_record, reason
):
    records = _records(6, seed=2)
    broken = tf.train.Example.FromString(records[2])
    break_record(broken.features.feature)
    records[2] = broken.SerializeToString()
    summary = _run(tmp_path, records, extra=["--max-quarantine-fraction", "0.5"])
    assert summary["quarantined"] == {reason: 1}
    assert summary["examples_in"] == 6 and summary["originals_written"] == 5
    (kept,) = read_records(str(tmp_path / "out/quarantine/*/*"))
    features = tf.train.Example.FromString(kept).features.feature
    assert features["quarantine_reason"].bytes_list.value[0].decode() == reason
    assert features["quarantine_record"].bytes_list.value[0] == records[2]


def test_pixel_coordinates_round_trip(tmp_path):
    images, boxes, _, labels = scene(4, seed=4)
    pixel_boxes = boxes * 64
    records = [detection_example(images[i], pixel_boxes[i], labels[i], f"p{i}") for i in range(4)]
    summary = _run(
        tmp_path,
        records,
        extra=["--box-coordinates", "pixels", "--policy", "light"],
    )
    assert summary["quarantined"] == {}
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        copy = tf.train.Example.FromString(record)
        xmax = _floats(copy, "image/object/bbox/xmax")
        assert xmax.max() > 1.0 and xmax.max() <= 64.0  # still pixels


def test_the_executor_moves_boxes_balances_classes_and_shards_both_kinds_of_split(tmp_path):
    from tfx_image_augment.offline.config import AugmentConfig

    from tests.executor_helpers import counts, examples_artifact, run_executor

    records = _records(10, seed=6)
    examples = examples_artifact(tmp_path / "in", {"train": records, "eval": _records(4, 8)})
    config = AugmentConfig(
        policy="standard",
        num_copies=2,
        seed=1,
        key_feature="image/source_id",
        label_feature="image/object/class/label",
        copies_per_class={"0": 4},
        num_shards=2,
    ).validate()
    augmented, model = run_executor(examples, tmp_path / "out", config)
    train = counts(augmented)["train"]
    assert train["quarantined"] == {}
    # Rows are classed by their first object's label; class 0 rows got 4 copies, others 2.
    for label, read in train["class_in"].items():
        assert train["class_out"][label] == read * (1 + (4 if label == "0" else 2))
    for split in ("train", "eval"):
        assert len(list((tmp_path / f"out/augmented/Split-{split}").glob("*.gz"))) == 2
    written = read_records(str(tmp_path / "out/augmented/Split-train/*"))
    assert len(written) == train["examples_out"]
    copy = tf.train.Example.FromString(next(r for r in written if b"aug_copy_index" in r))
    assert len(_floats(copy, "image/object/bbox/ymin")) == len(
        _ints(copy, "image/object/class/label")
    )
    assert (tmp_path / "out/model/preview.png").exists()


def test_the_reader_returns_boxes_labels_and_keypoints(tmp_path):
    from tfx_image_augment.io.reader import read_detection

    records = _records(5, seed=3)
    _run(tmp_path, records)
    copies = list(
        read_detection(
            str(tmp_path / "out"), channels=1, keypoint_feature_prefix="image/object/keypoint/"
        ).as_numpy_iterator()
    )
    assert len(copies) == 5 * 4
    by_key = {}
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        example = tf.train.Example.FromString(record)
        by_key[tuple(_floats(example, "image/object/bbox/ymin"))] = example
    for item in copies:
        example = by_key[tuple(item["boxes"][:, 0])]
        assert item["image"].shape == (64, 64, 1)
        assert item["labels"].tolist() == _ints(example, "image/object/class/label")
        assert item["keypoints"].shape == (len(item["boxes"]), KEYPOINTS_PER_OBJECT, 2)
        np.testing.assert_array_equal(
            item["keypoints"][..., 1].ravel(), _floats(example, "image/object/keypoint/x")
        )


def test_keypoint_side_features_stay_aligned_when_objects_leave(tmp_path):
    images, boxes, _, labels = scene(8, seed=11)
    keypoints = np.stack([boxes[..., :2], boxes[..., 2:]], axis=2)
    records = []
    for i in range(8):
        example = tf.train.Example.FromString(
            detection_example(images[i], boxes[i], labels[i], f"k{i}", keypoints[i])
        )
        f = example.features.feature
        f["image/object/keypoint/num"].int64_list.value.extend([2, 2])  # one per object
        f["image/object/keypoint/text"].bytes_list.value.extend(
            [b"top-left", b"bottom-right"] * 2
        )  # one per keypoint
        # An image with no objects at all: empty lists, one of them a feature with no kind.
        records.append(example.SerializeToString())
    empty = tf.train.Example.FromString(records[0])
    for name in list(empty.features.feature):
        if name.startswith("image/object/"):
            empty.features.feature[name].Clear()
    empty.features.feature["image/source_id"].bytes_list.value[:] = [b"empty"]
    records.append(empty.SerializeToString())
    shift = {"op": "translate", "max_dx": 0.6, "max_dy": 0.6}
    policy = json.dumps({"version": 1, "fill_mode": "constant", "ops": [shift]})
    summary = _run(
        tmp_path, records, extra=["--policy", policy, "--label-feature", "image/object/class/label"]
    )
    assert summary["quarantined"] == {}
    assert summary["classes"]["in"]["(none)"] == 1  # counted, not quarantined: labels only counted
    dropped = 0
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        copy = tf.train.Example.FromString(record)
        count = len(_floats(copy, "image/object/bbox/ymin"))
        dropped += (
            2 - count
            if copy.features.feature["image/source_id"].bytes_list.value[0] != b"empty"
            else 0
        )
        assert len(_ints(copy, "image/object/keypoint/num")) == count
        assert (
            len(copy.features.feature["image/object/keypoint/text"].bytes_list.value) == 2 * count
        )
        assert len(_ints(copy, "image/object/keypoint/visibility")) == 2 * count
    assert dropped > 0  # shifts of up to 60% push objects out


def test_re_encoded_copies_say_their_format_in_image_format(tmp_path):
    records = _records(4, seed=5)  # PNG images, `image/format` "png"
    _run(tmp_path, records, extra=["--output-format", "jpeg"])
    formats = {}
    for record in read_records(str(tmp_path / "out/data_tfrecord-*")):
        copy = tf.train.Example.FromString(record)
        features = copy.features.feature
        written = features["image/encoded"].bytes_list.value[0]
        kind = "jpeg" if written.startswith(b"\xff\xd8") else "png"
        formats[(_ints(copy, "aug_copy_index")[0] > 0, kind)] = list(
            features["image/format"].bytes_list.value
        )
    # Originals stay PNG and say so; copies are written as JPEG and now say so too.
    assert formats == {(False, "png"): [b"png"], (True, "jpeg"): [b"jpeg"]}
