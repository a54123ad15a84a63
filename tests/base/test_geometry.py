"""Boxes and keypoints move with the pixels: real digits pasted onto a canvas at boxes known by
construction, moved by every geometric op and by random policies; the moved box must enclose
the moved object (the same object moved as a mask, by the same draws)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tfx_image_augment import load_policy
from tfx_image_augment.core.augment import augment_targets
from tfx_image_augment.core.ops import OPS
from tfx_image_augment.core.ops.base import GEOMETRIC
from tfx_image_augment.core.policy import example_policies

from tests import detection_data
from tests.detection_data import CANVAS
from tests.strategies import geometric_policies


def scene(count: int, seed: int = 0):
    images, boxes, masks, _ = detection_data.scene(count, seed)
    return images, boxes, masks


def _seeds(count: int, base: int = 0) -> np.ndarray:
    return np.array([[base + i, 77 + 3 * i] for i in range(count)], np.int64)


def _check_boxes_enclose_objects(out, source_boxes):
    masks, boxes, valid = out["masks"].numpy(), out["boxes"].numpy(), out["box_valid"].numpy()
    for i in range(len(masks)):
        for k in range(boxes.shape[1]):
            rows, cols = np.nonzero(masks[i, ..., 0] == k + 1)
            if not valid[i, k]:
                continue
            ymin, xmin, ymax, xmax = boxes[i, k]
            assert 0.0 <= ymin <= ymax <= 1.0 and 0.0 <= xmin <= xmax <= 1.0
            if len(rows) == 0:
                continue
            # Every lit pixel's centre of the moved object lies inside the moved box.
            centres_y, centres_x = (rows + 0.5) / CANVAS, (cols + 0.5) / CANVAS
            assert centres_y.min() >= ymin and centres_y.max() <= ymax, (i, k, boxes[i, k])
            assert centres_x.min() >= xmin and centres_x.max() <= xmax, (i, k, boxes[i, k])


GEOMETRIC_OPS = [name for name, op in OPS.items() if op.kind == GEOMETRIC]


@pytest.mark.parametrize("name", GEOMETRIC_OPS)
def test_each_geometric_op_moves_boxes_with_the_object(name):
    images, boxes, masks = scene(24)
    policy = dict(example_policies()[name], fill_mode="constant")
    out = augment_targets(images, _seeds(24), load_policy(policy), masks=masks, boxes=boxes)
    _check_boxes_enclose_objects(out, boxes)
    # The boxes moved where the op moved the pixels (a p < 1 op leaves some images alone).
    moved = ~np.all(np.isclose(out["boxes"].numpy(), boxes), axis=(1, 2))
    changed = ~np.all(out["images"].numpy() == images, axis=(1, 2, 3))
    np.testing.assert_array_equal(moved, changed)


def test_axis_aligned_ops_give_boxes_tight_to_the_moved_object():
    images, boxes, masks = scene(16, seed=3)
    policy = load_policy(
        {
            "version": 1,
            "fill_mode": "constant",
            "ops": [
                {"op": "zoom", "min_scale": 0.8, "max_scale": 1.2},
                {"op": "translate", "max_dx": 0.1, "max_dy": 0.1},
            ],
        }
    )
    out = augment_targets(images, _seeds(16), policy, masks=masks, boxes=boxes)
    _check_boxes_enclose_objects(out, boxes)
    moved_masks, moved_boxes = out["masks"].numpy(), out["boxes"].numpy()
    for i in range(16):
        for k in range(2):
            rows, cols = np.nonzero(moved_masks[i, ..., 0] == k + 1)
            if len(rows) == 0 or not out["box_valid"].numpy()[i, k]:
                continue
            pixel_box = (
                np.array([rows.min(), cols.min(), rows.max() + 1, cols.max() + 1], np.float32)
                / CANVAS
            )
            # No looser than the moved corners allow: within 1.5 pixels of the object's pixels
            # (scaling by up to 1.25 and nearest sampling of the mask).
            assert np.abs(moved_boxes[i, k] - pixel_box).max() <= 1.5 / CANVAS


def test_flips_mirror_boxes_and_keypoints_exactly():
    images, boxes, masks = scene(4)
    keypoints = np.stack([boxes[..., :2], boxes[..., 2:]], axis=2)  # two corners per object
    policy = load_policy({"version": 1, "ops": [{"op": "flip_left_right"}]})
    out = augment_targets(images, _seeds(4), policy, boxes=boxes, keypoints=keypoints)
    expected = boxes.copy()
    expected[..., 1], expected[..., 3] = 1.0 - boxes[..., 3], 1.0 - boxes[..., 1]
    np.testing.assert_array_equal(out["boxes"].numpy(), expected)
    np.testing.assert_array_equal(out["keypoints"].numpy()[..., 0], keypoints[..., 0])
    np.testing.assert_array_equal(out["keypoints"].numpy()[..., 1], 1.0 - keypoints[..., 1])
    assert out["keypoint_visible"].numpy().all() and out["box_valid"].numpy().all()


def test_objects_moved_out_of_the_frame_are_invalid_and_their_keypoints_invisible():
    images, boxes, masks = scene(6)
    keypoints = (boxes[..., :2] + boxes[..., 2:])[:, :, None, :] / 2  # each object's centre
    policy = load_policy(
        {
            "version": 1,
            "fill_mode": "constant",
            "ops": [{"op": "translate", "max_dx": 1, "max_dy": 0}],
        }
    )
    out = augment_targets(images, _seeds(6), policy, masks=masks, boxes=boxes, keypoints=keypoints)
    lit = np.array([[np.any(out["masks"].numpy()[i] == k + 1) for k in range(2)] for i in range(6)])
    valid = out["box_valid"].numpy()
    assert not np.all(valid), "translate by up to a full width must push some object out"
    # An object none of whose pixels remain has no valid box; a valid box has a visible part.
    assert not np.any(valid & ~lit)
    inside = out["keypoints"].numpy()
    in_frame = np.all((inside >= 0) & (inside <= 1), axis=-1)
    np.testing.assert_array_equal(out["keypoint_visible"].numpy(), in_frame)


@pytest.mark.parametrize("name", ["flip_left_right", "rotate", "zoom", "brightness"])
def test_a_zero_area_box_is_invalid_whatever_the_op(name):
    # The README: an object whose box has zero area is dropped (a rotation would otherwise
    # turn a degenerate line into a box with area, and a colour op would keep it).
    images, boxes, _ = scene(8, seed=7)
    boxes[:, 1, 2] = boxes[:, 1, 0]  # object 1: ymax = ymin, a line across the digit
    boxes[::2, 1, 3] = boxes[::2, 1, 1]  # and a point in every other image
    policy = load_policy(dict(example_policies()[name], fill_mode="constant"))
    out = augment_targets(images, _seeds(8), policy, boxes=boxes)
    valid = out["box_valid"].numpy()
    assert valid[:, 0].all() and not valid[:, 1].any()


def test_min_box_visibility_drops_mostly_hidden_boxes():
    images, boxes, _ = scene(32, seed=5)
    policy = load_policy({"version": 1, "ops": [{"op": "translate", "max_dx": 0.5, "max_dy": 0.5}]})
    loose = augment_targets(images, _seeds(32), policy, boxes=boxes)
    strict = augment_targets(images, _seeds(32), policy, boxes=boxes, min_box_visibility=0.9)
    np.testing.assert_array_equal(loose["boxes"].numpy(), strict["boxes"].numpy())
    assert strict["box_valid"].numpy().sum() < loose["box_valid"].numpy().sum()
    assert np.all(strict["box_valid"].numpy() <= loose["box_valid"].numpy())


def test_photometric_ops_leave_geometry_alone():
    images, boxes, _ = scene(4)
    out = augment_targets(images, _seeds(4), load_policy("light"), boxes=boxes)
    # `light` flips; the colour ops after it must not move anything further.
    flipped = augment_targets(
        images,
        _seeds(4),
        load_policy({"version": 1, "ops": [{"op": "flip_left_right", "p": 0.5}]}),
        boxes=boxes,
    )
    np.testing.assert_array_equal(out["boxes"].numpy(), flipped["boxes"].numpy())


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=geometric_policies(), data_seed=st.integers(0, 40))
def test_random_geometric_policies_keep_boxes_around_objects(config, data_seed):
    config = dict(config, fill_mode="constant")  # reflect/wrap would copy objects unboxed
    images, boxes, masks = scene(4, seed=data_seed)
    out = augment_targets(
        images, _seeds(4, data_seed), load_policy(config), masks=masks, boxes=boxes
    )
    _check_boxes_enclose_objects(out, boxes)


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=geometric_policies(), data_seed=st.integers(0, 40))
def test_boxes_are_the_same_alone_or_in_a_batch(config, data_seed):
    images, boxes, _ = scene(5, seed=data_seed)
    keypoints = boxes[:, :, None, :2]
    policy = load_policy(config)
    batch = augment_targets(images, _seeds(5), policy, boxes=boxes, keypoints=keypoints)
    for i in (0, 4):
        alone = augment_targets(
            images[i], _seeds(5)[i], policy, boxes=boxes[i], keypoints=keypoints[i]
        )
        for key in ("boxes", "box_valid", "keypoints", "keypoint_visible", "images"):
            np.testing.assert_array_equal(batch[key].numpy()[i], alone[key].numpy())


@pytest.mark.parametrize("name", GEOMETRIC_OPS)
def test_each_geometric_op_moves_targets_alike_alone_or_in_a_batch_of_64(name):
    # TensorFlow vectorises some float32 kernels (a reciprocal among them) approximately on a
    # CPU, so a sum or quotient can round differently for an image inside a large batch than
    # for the same image alone. Pixels are batch-proof; boxes and keypoints must be too.
    images, boxes, _ = scene(64, seed=12)
    centres = (boxes[..., :2] + boxes[..., 2:]) / 2
    keypoints = np.stack([boxes[..., :2], boxes[..., 2:], centres], axis=2)
    policy = load_policy(example_policies()[name])
    seeds = _seeds(64, 100)
    batch = augment_targets(images, seeds, policy, boxes=boxes, keypoints=keypoints)
    batch = {key: value.numpy() for key, value in batch.items()}
    for i in range(64):
        alone = augment_targets(images[i], seeds[i], policy, boxes=boxes[i], keypoints=keypoints[i])
        for key in ("boxes", "box_valid", "keypoints", "keypoint_visible"):
            np.testing.assert_array_equal(
                batch[key][i], alone[key].numpy(), err_msg=f"{name}: image {i}, {key}"
            )


def test_the_keras_layer_and_the_saved_model_move_boxes_like_the_core(tmp_path):
    import tensorflow as tf
    from tfx_image_augment import ImageAugmentation, export_augmentation_model

    images, boxes, masks = scene(6, seed=9)
    keypoints = np.stack([boxes[..., :2], boxes[..., 2:]], axis=2)
    seeds = _seeds(6)
    policy = load_policy("standard")
    core_out = augment_targets(images, seeds, policy, boxes=boxes, keypoints=keypoints)

    layer = ImageAugmentation("standard", seed=0)
    labels = np.array([[3, 7]] * 6, np.int64)
    out = layer(
        {
            "images": images,
            "seeds": seeds,
            "bounding_boxes": {"boxes": boxes, "labels": labels},
            "keypoints": keypoints,
            "segmentation_masks": masks,
        },
        training=True,
    )
    np.testing.assert_array_equal(out["images"].numpy(), core_out["images"].numpy())
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy(), core_out["boxes"].numpy())
    np.testing.assert_array_equal(out["keypoints"].numpy(), core_out["keypoints"].numpy())
    np.testing.assert_array_equal(
        out["bounding_boxes"]["labels"].numpy(),
        np.where(core_out["box_valid"].numpy(), labels, -1),
    )
    # Ragged boxes (a different number per image) come back ragged, in place.
    ragged = tf.ragged.constant([boxes[0].tolist(), boxes[1][:1].tolist()], ragged_rank=1)
    ragged_out = layer(
        {"images": images[:2], "seeds": seeds[:2], "bounding_boxes": {"boxes": ragged}}
    )
    assert isinstance(ragged_out["bounding_boxes"]["boxes"], tf.RaggedTensor)
    np.testing.assert_array_equal(
        ragged_out["bounding_boxes"]["boxes"][0].numpy(), core_out["boxes"].numpy()[0]
    )
    # Pixel-format boxes, x first, as Keras 3's layers take them (converted to and from
    # normalized units in float32, so equal up to rounding, not bit for bit).
    pixel_layer = ImageAugmentation("standard", seed=0, bounding_box_format="xyxy")
    xyxy = boxes[..., [1, 0, 3, 2]] * CANVAS
    pixel_out = pixel_layer({"images": images, "seeds": seeds, "bounding_boxes": {"boxes": xyxy}})[
        "bounding_boxes"
    ]["boxes"].numpy()
    np.testing.assert_allclose(
        pixel_out[..., [1, 0, 3, 2]] / CANVAS, core_out["boxes"].numpy(), rtol=0, atol=1e-6
    )
    # Inference: everything passes through untouched.
    same = layer({"images": images, "bounding_boxes": {"boxes": boxes}}, training=False)
    np.testing.assert_array_equal(same["bounding_boxes"]["boxes"], boxes)

    model_dir = export_augmentation_model("standard", 0, str(tmp_path / "aug"), channels=1)
    signature = tf.saved_model.load(f"{model_dir}/saved_model").signatures["augment_with_boxes"]
    served = signature(
        images=tf.constant(images),
        seeds=tf.constant(seeds),
        boxes=tf.constant(boxes),
        box_valid=tf.ones(boxes.shape[:2], tf.bool),
        keypoints=tf.constant(keypoints),
        keypoint_visible=tf.ones(keypoints.shape[:3], tf.bool),
    )
    for key in ("images", "boxes", "box_valid", "keypoints", "keypoint_visible"):
        np.testing.assert_array_equal(served[key].numpy(), core_out[key].numpy())


def test_integer_pixel_boxes_keep_their_dtype_and_eval_calls_leave_the_seeds_alone():
    import tensorflow as tf
    from tfx_image_augment import ImageAugmentation

    images, boxes, _ = scene(2)
    layer = ImageAugmentation("standard", seed=0, bounding_box_format="xyxy")
    pixel_boxes = tf.constant(np.round(boxes[..., [1, 0, 3, 2]] * CANVAS), tf.int32)

    @tf.function
    def call(training):
        return layer(
            {"images": images, "bounding_boxes": {"boxes": pixel_boxes}}, training=training
        )

    for training in (True, False):
        out = call(tf.constant(training))["bounding_boxes"]["boxes"]
        assert out.dtype == tf.int32
    # One augmenting call advanced the step; the inference call did not.
    assert int(layer._step.numpy()) == 1


def test_visibility_values_follow_the_permutation_and_unlabelled_keypoints_stay_as_given(
    tmp_path,
):
    import tensorflow as tf
    from tfx_image_augment import ImageAugmentation, export_augmentation_model

    images, boxes, _ = scene(16, seed=4)
    middle = (boxes[..., 0] + boxes[..., 2]) / 2
    left = np.stack([middle, boxes[..., 1]], axis=-1)
    right = np.stack([middle, boxes[..., 3]], axis=-1)
    keypoints = np.stack([left, right], axis=2)  # slot 0 left, slot 1 right
    # COCO's values: 2 visible, 1 labelled but hidden, 0 not labelled (NaN, or anything).
    visibility = np.array([[[2, 1], [2, 0]], [[0, 2], [1, 0]]] * 8, np.int64)
    unlabelled = visibility == 0
    unlabelled[::2] = False
    keypoints[unlabelled] = np.nan  # odd images: NaN
    keypoints[(visibility == 0) & ~unlabelled] = [-3.0, 0.25]  # even images: off the image
    config = {
        "version": 1,
        "fill_mode": "constant",
        "ops": [{"op": "flip_left_right", "p": 0.5}, {"op": "rotate", "max_degrees": 5}],
    }
    seeds = _seeds(16)
    core = augment_targets(
        images,
        seeds,
        load_policy(config),
        boxes=boxes,
        keypoints=keypoints,
        keypoint_visible=visibility,
        keypoint_flip_permutation=[1, 0],
    )
    points, values = core["keypoints"].numpy(), core["keypoint_visible"].numpy()
    assert values.dtype == np.int64
    unpermuted = augment_targets(
        images, seeds, load_policy(config), keypoints=keypoints, keypoint_visible=visibility
    )["keypoints"].numpy()
    mirrored = np.array(
        [not np.array_equal(points[i], unpermuted[i], equal_nan=True) for i in range(16)]
    )
    assert 0 < mirrored.sum() < 16
    # Small moves keep every point inside: a mirrored image swaps the two slots, values and
    # all (2 stays 2), and an unlabelled keypoint comes out exactly as given, NaN staying NaN.
    swapped = np.where(mirrored[:, None, None], visibility[..., ::-1], visibility)
    np.testing.assert_array_equal(values, swapped)
    given = np.where(mirrored[:, None, None, None], keypoints[:, :, ::-1], keypoints)
    np.testing.assert_array_equal(points[swapped == 0], given[swapped == 0])
    assert np.isnan(points).any()

    # The Keras layer keeps integer values too; the SavedModel takes bool visibility.
    layer = ImageAugmentation(config, seed=0, keypoint_flip_permutation=[1, 0])
    out = layer(
        {
            "images": images,
            "seeds": seeds,
            "keypoints": keypoints,
            "keypoint_visibility": visibility,
        },
        training=True,
    )
    np.testing.assert_array_equal(out["keypoints"].numpy(), points)
    np.testing.assert_array_equal(out["keypoint_visibility"].numpy(), values)
    model_dir = export_augmentation_model(
        config, 0, str(tmp_path / "aug"), channels=1, keypoint_flip_permutation=[1, 0]
    )
    signature = tf.saved_model.load(f"{model_dir}/saved_model").signatures["augment_with_boxes"]
    served = signature(
        images=tf.constant(images),
        seeds=tf.constant(seeds),
        boxes=tf.constant(boxes),
        box_valid=tf.ones(boxes.shape[:2], tf.bool),
        keypoints=tf.constant(keypoints),
        keypoint_visible=tf.constant(visibility > 0),
    )
    np.testing.assert_array_equal(served["keypoints"].numpy(), points)
    np.testing.assert_array_equal(served["keypoint_visible"].numpy(), values > 0)


@pytest.mark.parametrize("stage", ["flip", "warp"])
def test_a_flip_permutation_keeps_left_keypoints_on_the_left(stage):
    images, boxes, _ = scene(16, seed=2)
    middle = (boxes[..., 0] + boxes[..., 2]) / 2
    left = np.stack([middle, boxes[..., 1]], axis=-1)
    right = np.stack([middle, boxes[..., 3]], axis=-1)
    keypoints = np.stack([left, right], axis=2)  # slot 0 left, slot 1 right
    ops = [{"op": "flip_left_right", "p": 0.5}]
    if stage == "warp":  # the flip joins a rotation in one warp; mirroring shows in the matrix
        ops.append({"op": "rotate", "max_degrees": 5})
    policy = load_policy({"version": 1, "fill_mode": "constant", "ops": ops})
    plain = augment_targets(images, _seeds(16), policy, keypoints=keypoints)
    swapped = augment_targets(
        images, _seeds(16), policy, keypoints=keypoints, keypoint_flip_permutation=[1, 0]
    )
    x_plain, x_swapped = plain["keypoints"].numpy()[..., 1], swapped["keypoints"].numpy()[..., 1]
    mirrored = np.any(x_plain[..., 0] > x_plain[..., 1], axis=1)
    assert 0 < mirrored.sum() < 16  # p = 0.5: some images flipped, some not
    assert np.all(x_swapped[..., 0] <= x_swapped[..., 1])  # left stays left in every image
    np.testing.assert_array_equal(x_swapped[~mirrored], x_plain[~mirrored])
    np.testing.assert_array_equal(x_swapped[mirrored], x_plain[mirrored][..., ::-1])
