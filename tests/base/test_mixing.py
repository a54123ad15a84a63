"""MixUp and CutMix in the core, the Keras layer and the SavedModel, on real photo crops: the
pixels are the documented formulas exactly, an image gets the same mix alone or in any batch,
and the three doors agree given the same partners and seeds."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tfx_image_augment.core.augment import augment, augment_targets
from tfx_image_augment.core.ops.mixing import cutmix_box
from tfx_image_augment.core.plan import compile_policy
from tfx_image_augment.core.policy import PolicyError, load_policy
from tfx_image_augment.layer import ImageAugmentation
from tfx_image_augment.offline.mixing import MixMember, partners

from tests import images as real
from tests.strategies import policies

MIXUP = {"version": 1, "ops": [{"op": "mixup", "alpha": 0.4}]}
CUTMIX = {"version": 1, "ops": [{"op": "cutmix", "alpha": 1.0}]}
BOTH = {
    "version": 1,
    "ops": [
        {"op": "rotate", "max_degrees": 20, "p": 0.7},
        {"op": "one_of", "ops": [{"op": "mixup"}, {"op": "cutmix"}], "p": 0.8},
        {"op": "contrast", "lower": 0.8, "upper": 1.2},
    ],
}


def _batch(count: int = 12, size: int = 40):
    images = real.photo_crops(size, 2 * count, seed=3)
    seeds = np.stack([np.arange(count), 1000 + np.arange(count)], axis=1).astype(np.int64)
    return images[:count], images[count:], seeds


def _weights(policy, images, partner_images, seeds, **kwargs):
    out = augment_targets(images, seeds, load_policy(policy), partners=partner_images, **kwargs)
    return out["images"].numpy(), out["mix_weights"].numpy()


def test_mixup_is_the_weighted_sum_of_image_and_partner_exactly():
    images, partner_images, seeds = _batch()
    out, weights = _weights(MIXUP, images, partner_images, seeds)
    # The core's arithmetic, in float32 numpy: x / 255, w x + (1 - w) y, back to uint8 with
    # round-half-even (tf.round).
    w = weights[:, None, None, None]
    x, y = images.astype(np.float32) / np.float32(255), partner_images.astype(np.float32) / 255
    expected = np.round(np.clip(w * x + (np.float32(1) - w) * y, 0, 1) * np.float32(255))
    np.testing.assert_array_equal(out, expected.astype(np.uint8))
    assert np.all((weights > 0) & (weights < 1)) and len(set(weights.tolist())) == len(weights)


def test_cutmix_pastes_one_rectangle_of_the_partner_and_its_share_is_what_is_left():
    images, partner_images, seeds = _batch(size=48)
    out, weights = _weights(CUTMIX, images, partner_images, seeds)
    plan = compile_policy(load_policy(CUTMIX))
    (inst,) = plan.stages[0].instances
    from tfx_image_augment.core.draws import draw_table

    u = inst.draws(draw_table(plan, tf.constant(seeds)))
    boxes = np.stack([b.numpy() for b in cutmix_box(inst.op, u, 48, 48)], axis=1).astype(int)
    for i, (y0, x0, y1, x1) in enumerate(boxes):
        inside = np.zeros((48, 48), bool)
        inside[y0:y1, x0:x1] = True
        np.testing.assert_array_equal(out[i][inside], partner_images[i][inside])
        np.testing.assert_array_equal(out[i][~inside], images[i][~inside])
        assert weights[i] == np.float32(1 - inside.mean())
    assert len({tuple(b) for b in boxes}) == len(boxes)


@pytest.mark.parametrize("policy", [MIXUP, CUTMIX, BOTH], ids=["mixup", "cutmix", "both"])
def test_an_image_gets_the_same_mix_alone_or_inside_any_batch(policy):
    images, partner_images, seeds = _batch(count=9)
    batch, weights = _weights(policy, images, partner_images, seeds)
    for i in (0, 4, 8):
        alone, weight = _weights(policy, images[i], partner_images[i], seeds[i])
        np.testing.assert_array_equal(alone, batch[i])
        assert weight == weights[i]
    floats = images.astype(np.float32) / 255.0
    float_batch, float_weights = _weights(
        policy, floats, partner_images.astype(np.float32) / 255.0, seeds
    )
    np.testing.assert_array_equal(float_weights, weights)  # the draws do not see the dtype
    alone, _ = _weights(
        policy, floats[3:5], partner_images[3:5].astype(np.float32) / 255, seeds[3:5]
    )
    np.testing.assert_array_equal(alone, float_batch[3:5])


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=policies(mixing=True), data_seed=st.integers(0, 50))
def test_random_policies_with_mixing_give_an_image_the_same_pixels_alone(config, data_seed):
    images = real.photo_crops(24, 6, data_seed)
    partner_images = np.roll(images, 1, axis=0)
    seeds = np.stack([np.arange(6) + data_seed, np.arange(6)], axis=1).astype(np.int64)
    batch, weights = _weights(config, images, partner_images, seeds)
    for i in (0, 5):
        alone, weight = _weights(config, images[i], partner_images[i], seeds[i])
        np.testing.assert_array_equal(alone, batch[i])
        assert weight == weights[i]
    assert np.all((weights >= 0) & (weights <= 1))


def test_ops_before_a_mixing_op_change_the_image_alone_and_ops_after_change_the_mix():
    images, partner_images, seeds = _batch(count=4)
    # Node ids follow list positions: each policy is compared with its twin whose flip has
    # p 0, so the mixup draws are the same.
    flip_then_mix = {"version": 1, "ops": [{"op": "flip_left_right"}, *MIXUP["ops"]]}
    out, weights = _weights(flip_then_mix, images, partner_images, seeds)
    twin = {"version": 1, "ops": [{"op": "flip_left_right", "p": 0.0}, *MIXUP["ops"]]}
    mixed_flipped, same_weights = _weights(twin, images[:, :, ::-1], partner_images, seeds)
    np.testing.assert_array_equal(out, mixed_flipped)
    np.testing.assert_array_equal(weights, same_weights)
    mix_then_flip = {"version": 1, "ops": [*MIXUP["ops"], {"op": "flip_left_right"}]}
    out, _ = _weights(mix_then_flip, images, partner_images, seeds)
    unflipped = {"version": 1, "ops": [*MIXUP["ops"], {"op": "flip_left_right", "p": 0.0}]}
    plain, _ = _weights(unflipped, images, partner_images, seeds)
    np.testing.assert_array_equal(out, plain[:, :, ::-1])


def test_no_partner_or_a_closed_gate_leaves_the_image_unmixed_with_weight_one():
    images, partner_images, seeds = _batch(count=6)
    has_partner = np.array([True, False] * 3)
    out, weights = _weights(MIXUP, images, partner_images, seeds, has_partner=has_partner)
    np.testing.assert_array_equal(out[~has_partner], images[~has_partner])
    assert np.all(weights[~has_partner] == 1.0) and np.all(weights[has_partner] < 1.0)
    never = {"version": 1, "ops": [{"op": "mixup", "p": 0.0}]}
    out, weights = _weights(never, images, partner_images, seeds)
    np.testing.assert_array_equal(out, images)
    assert np.all(weights == 1.0)


def test_mixing_without_partners_or_with_boxes_is_one_clear_error():
    images, partner_images, seeds = _batch(count=2)
    with pytest.raises(ValueError, match=r"mixes images \(mixup\): give partners"):
        augment(images, seeds, load_policy(MIXUP))
    with pytest.raises(ValueError, match="does not move segmentation masks, boxes or keypoints"):
        augment_targets(
            images,
            seeds,
            load_policy(MIXUP),
            partners=partner_images,
            boxes=np.zeros((2, 1, 4), np.float32),
        )
    with pytest.raises(PolicyError, match=r"field 'alpha' must be a number in \(0, 10\]"):
        load_policy({"version": 1, "ops": [{"op": "mixup", "alpha": 0}]})


def test_the_layer_mixes_each_image_with_the_one_before_it_and_mixes_labels_alike():
    images, _, seeds = _batch(count=5)
    layer = ImageAugmentation(BOTH, seed=3)
    labels = tf.one_hot([0, 1, 2, 3, 4], 5)
    out = layer({"images": images, "seeds": seeds, "labels": labels}, training=True)
    expected, weights = _weights(BOTH, images, np.roll(images, 1, axis=0), seeds)
    np.testing.assert_array_equal(out["images"].numpy(), expected)
    soft = weights[:, None] * labels.numpy() + (1 - weights[:, None]) * np.roll(labels, 1, 0)
    np.testing.assert_allclose(out["labels"].numpy(), soft, rtol=0, atol=1e-7)
    assert np.all(out["labels"].numpy().sum(axis=1) > 0.9999)
    # Explicit partners (the offline copy's), and inference is the identity.
    given = layer({"images": images, "seeds": seeds, "partners": images[::-1]}, training=True)
    np.testing.assert_array_equal(given.numpy(), _weights(BOTH, images, images[::-1], seeds)[0])
    inference = layer({"images": images, "labels": labels}, training=False)
    np.testing.assert_array_equal(inference["images"], images)
    np.testing.assert_array_equal(inference["labels"], labels)
    with pytest.raises(ValueError, match="a single image has no partner"):
        layer(images[0], training=True)
    with pytest.raises(ValueError, match="one-hot or soft labels"):
        layer({"images": images, "labels": tf.range(5)}, training=True)
    rebuilt = ImageAugmentation.from_config(layer.get_config())
    again = rebuilt({"images": images, "seeds": seeds}, training=True)
    np.testing.assert_array_equal(again.numpy(), expected)


def test_the_savedmodel_replays_a_mix_from_partners_and_mixes_within_its_batch(tmp_path):
    from tfx_image_augment.export import export_augmentation_model

    images, partner_images, seeds = _batch(count=4)
    export_augmentation_model(BOTH, 3, str(tmp_path))
    model = tf.saved_model.load(str(tmp_path / "saved_model"))
    assert set(model.signatures) == {"augment", "augment_with_partners"}
    replay = model.signatures["augment_with_partners"](
        images=tf.constant(images), partners=tf.constant(partner_images), seeds=tf.constant(seeds)
    )
    expected, weights = _weights(BOTH, images, partner_images, seeds)
    np.testing.assert_array_equal(replay["images"].numpy(), expected)
    np.testing.assert_array_equal(replay["mix_weights"].numpy(), weights)
    in_batch = model.signatures["augment"](images=tf.constant(images), seeds=tf.constant(seeds))
    layer = ImageAugmentation(BOTH)
    np.testing.assert_array_equal(
        in_batch["images"].numpy(), layer({"images": images, "seeds": seeds}, training=True)
    )


def _member(name: str, copy: int, slot: int) -> MixMember:
    return MixMember(slot.to_bytes(2, "big"), name.encode(), copy, b"")


def test_partners_follow_slot_order_skip_the_same_example_and_other_image_kinds():
    members = [
        _member("a", 1, 5),
        _member("a", 2, 6),
        _member("b", 1, 1),
        _member("c", 1, 9),
        _member("d", 1, 3),  # another image size: nobody's partner
    ]
    kind = {b"a": 32, b"b": 32, b"c": 32, b"d": 64}
    paired = partners(members[::-1], lambda m: kind[m.key])  # input order does not matter
    got = {(m.key, m.copy_index): tuple(p.key for p in ps) for m, ps in paired}
    # Slot order: b(1) d(3) a1(5) a2(6) c(9); each takes the next of another example and kind.
    assert got == {
        (b"b", 1): (b"a",),
        (b"d", 1): (),
        (b"a", 1): (b"c",),
        (b"a", 2): (b"c",),
        (b"c", 1): (b"b",),
    }
    assert [m.slot for m, _ in paired] == sorted(m.slot for m in members)
    # Mosaic's three: distinct examples, in slot order; fewer than three of the kind: none.
    members.append(_member("e", 1, 7))
    kind[b"e"] = 32
    tiled = {
        (m.key, m.copy_index): tuple(p.key for p in ps)
        for m, ps in partners(members, lambda m: kind[m.key], count=3)
    }
    # Slot order: b(1) d(3) a1(5) a2(6) e(7) c(9).
    assert tiled == {
        (b"b", 1): (b"a", b"e", b"c"),
        (b"d", 1): (),
        (b"a", 1): (b"e", b"c", b"b"),
        (b"a", 2): (b"e", b"c", b"b"),
        (b"e", 1): (b"c", b"b", b"a"),
        (b"c", 1): (b"b", b"a", b"e"),
    }
