"""The core's promises, as properties over random policies and real images."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tfx_image_augment import augment, load_policy
from tfx_image_augment.core.augment import compile_policy
from tfx_image_augment.core.policy import CATALOGUE, GEOMETRIC, example_policies

from tests import images as real
from tests.strategies import geometric_policies, policies

PROPERTY = settings(
    max_examples=20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def _seeds(count: int, base: int = 0) -> np.ndarray:
    return np.array([[base + i, 1000 + 7 * i] for i in range(count)], np.int64)


def _real_batch(size: int, count: int, seed: int = 0) -> np.ndarray:
    return real.photo_crops(size, count, seed)


@PROPERTY
@given(config=policies(), size=st.sampled_from([17, 32, 48]), data_seed=st.integers(0, 50))
def test_dtype_shape_and_range_preserved_and_result_is_deterministic(config, size, data_seed):
    images = _real_batch(size, 3, data_seed)
    seeds = _seeds(3, data_seed)
    policy = load_policy(config)
    first = augment(images, seeds, policy)
    assert first.dtype == tf.uint8 and tuple(first.shape) == images.shape
    again = augment(images, seeds, policy)
    np.testing.assert_array_equal(first.numpy(), again.numpy())
    graph = tf.function(lambda x, s: augment(x, s, compile_policy(policy)))(images, seeds)
    np.testing.assert_array_equal(first.numpy(), graph.numpy())


@PROPERTY
@given(config=policies(), data_seed=st.integers(0, 50))
def test_an_image_gets_the_same_pixels_alone_or_inside_any_batch(config, data_seed):
    images = _real_batch(24, 4, data_seed)
    seeds = _seeds(4, data_seed)
    policy = load_policy(config)
    batch = augment(images, seeds, policy).numpy()
    for i in (0, 3):
        alone = augment(images[i], seeds[i], policy).numpy()
        np.testing.assert_array_equal(batch[i], alone)
    # In a different batch, at a different position, next to other images.
    shuffled = augment(images[[3, 1, 0]], seeds[[3, 1, 0]], policy).numpy()
    np.testing.assert_array_equal(shuffled[2], batch[0])


@pytest.mark.parametrize(
    "preset", ["light", "standard", "no-flip", "randaugment", "trivialaugment"]
)
def test_different_seeds_give_different_images_and_same_seed_the_same(preset):
    images = np.repeat(_real_batch(64, 1), 8, axis=0)  # the same photo eight times
    out = augment(images, _seeds(8), load_policy(preset)).numpy()
    distinct = {out[i].tobytes() for i in range(8)}
    assert len(distinct) >= 6, f"{preset}: only {len(distinct)} distinct results of 8 seeds"
    same = augment(images, np.repeat(_seeds(1), 8, axis=0), load_policy(preset)).numpy()
    assert len({same[i].tobytes() for i in range(8)}) == 1


def test_empty_policy_is_exact_identity():
    images = _real_batch(40, 2)
    np.testing.assert_array_equal(augment(images, _seeds(2), load_policy("none")).numpy(), images)


def test_float_images_keep_their_dtype_and_declared_range_like_mnist():
    digits, _ = real.digits(32)
    images = digits[:6].astype(np.float32) / 255.0 - 0.5  # MNIST-style [-0.5, 0.5]
    out = augment(images, _seeds(6), load_policy("randaugment"), value_range=(-0.5, 0.5))
    assert out.dtype == tf.float32
    assert float(tf.reduce_min(out)) >= -0.5 and float(tf.reduce_max(out)) <= 0.5
    float64 = augment(
        images.astype(np.float64), _seeds(6), load_policy("no-flip"), value_range=(-0.5, 0.5)
    )
    assert float64.dtype == tf.float64


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_one_three_and_four_channels_and_alpha_is_kept(channels):
    photo = _real_batch(32, 3)
    if channels == 1:
        images = real.digits(32)[0][:3]
    elif channels == 3:
        images = photo
    else:
        alpha = (np.arange(32 * 32).reshape(1, 32, 32, 1) % 256).astype(np.uint8)
        images = np.concatenate([photo, np.repeat(alpha, 3, axis=0)], axis=-1)
    policy = load_policy(
        {
            "version": 1,
            "ops": [
                {"op": "brightness", "max_delta": 0.3},
                {"op": "saturation", "lower": 0, "upper": 2},
                {"op": "hue", "max_delta": 0.3},
                {"op": "equalize"},
                {"op": "jpeg_quality", "min": 20, "max": 60},
            ],
        }
    )
    out = augment(images, _seeds(3), policy).numpy()
    assert out.shape == images.shape
    assert not np.array_equal(out[..., : min(channels, 3)], images[..., : min(channels, 3)])
    if channels == 4:
        np.testing.assert_array_equal(out[..., 3], images[..., 3])


def _label_mask(size: int) -> np.ndarray:
    """A synthetic 4-region label map (real datasets here carry no masks)."""
    mask = np.zeros((size, size), np.uint8)
    mask[: size // 2, size // 2 :] = 85
    mask[size // 2 :, : size // 2] = 170
    mask[size // 2 :, size // 2 :] = 255
    return mask


@PROPERTY
@given(config=geometric_policies(), data_seed=st.integers(0, 50))
def test_geometric_ops_move_a_mask_exactly_as_the_image(config, data_seed):
    size = 40
    mask = np.stack([_label_mask(size)] * 3)[..., None]
    seeds = _seeds(3, data_seed)
    policy = load_policy(config)
    # The image is the mask itself: wherever bilinear sampling lands inside a region (the value
    # is a pure label), nearest sampling of the mask must give that same label.
    out_images, out_masks = augment(mask, seeds, policy, masks=mask)
    out_images, out_masks = out_images.numpy(), out_masks.numpy()
    labels = np.isin(out_images, [0, 85, 170, 255])
    agree = (out_images == out_masks)[labels].mean()
    assert agree >= 0.98, f"mask and image disagree on {1 - agree:.1%} of pure-label pixels"
    assert set(np.unique(out_masks)) <= {0, 85, 170, 255}  # nearest: no blended labels
    # And the image path is unchanged by passing a mask.
    np.testing.assert_array_equal(out_images, augment(mask, seeds, policy).numpy())


def test_photometric_ops_leave_masks_untouched():
    images = _real_batch(32, 2)
    mask = np.stack([_label_mask(32)] * 2)[..., None]
    _, out_masks = augment(images, _seeds(2), load_policy("light"), masks=mask)
    policy = load_policy({"version": 1, "ops": [{"op": "equalize"}, {"op": "cutout", "size": 0.3}]})
    _, out_masks = augment(images, _seeds(2), policy, masks=mask)
    np.testing.assert_array_equal(out_masks.numpy(), mask)


def test_flips_are_exact_pixel_reversals():
    images = _real_batch(20, 4)
    policy = load_policy({"version": 1, "ops": [{"op": "flip_left_right"}]})
    np.testing.assert_array_equal(augment(images, _seeds(4), policy).numpy(), images[:, :, ::-1])


def test_geometric_runs_compile_to_one_warp_and_flips_or_crop_to_cheap_paths():
    stages = [s.kind for s in compile_policy(load_policy("standard")).stages]
    assert stages == ["warp", "pixel", "pixel", "pixel"]
    flips = load_policy(
        {
            "version": 1,
            "ops": [{"op": "flip_left_right", "p": 0.5}, {"op": "flip_up_down", "p": 0.5}],
        }
    )
    assert [s.kind for s in compile_policy(flips).stages] == ["flip"]
    crop = load_policy({"version": 1, "ops": [{"op": "random_resized_crop"}]})
    assert [s.kind for s in compile_policy(crop).stages] == ["crop"]
    rand = compile_policy(load_policy({"version": 1, "ops": [{"op": "randaugment", "num_ops": 3}]}))
    assert [s.kind for s in rand.stages].count("warp") == 1


def test_equalize_and_sharpness_match_pil_on_a_real_photo():
    from PIL import Image, ImageEnhance, ImageOps

    photo = _real_batch(48, 1)
    equalize = load_policy({"version": 1, "ops": [{"op": "equalize"}]})
    np.testing.assert_array_equal(
        augment(photo, _seeds(1), equalize).numpy()[0],
        np.asarray(ImageOps.equalize(Image.fromarray(photo[0]))),
    )
    smooth = load_policy({"version": 1, "ops": [{"op": "sharpness", "lower": 0, "upper": 0}]})
    ours = augment(photo, _seeds(1), smooth).numpy()[0].astype(int)
    theirs = np.asarray(ImageEnhance.Sharpness(Image.fromarray(photo[0])).enhance(0.0))
    assert np.abs(ours - theirs).max() <= 1


def test_cifar_sample_through_every_preset(cifar_dir):
    images = real.cifar_images(cifar_dir, count=16)
    for preset in ("light", "standard", "randaugment"):
        out = augment(images, _seeds(16), load_policy(preset)).numpy()
        assert out.shape == images.shape and out.dtype == np.uint8
        assert not np.array_equal(out, images)


# Every op alone with its registry example (one_of, randaugment and trivialaugment included).
EVERY_OP = [policy["ops"][0] for policy in example_policies().values()]
ALL_GEOMETRIC = [op for op in EVERY_OP if CATALOGUE[op["op"]][0] == GEOMETRIC]


@pytest.mark.parametrize(
    "ops",
    [[op] for op in EVERY_OP] + [ALL_GEOMETRIC, EVERY_OP],
    ids=[op["op"] for op in EVERY_OP] + ["all_geometric", "everything"],
)
def test_a_large_batch_matches_each_image_alone(ops):
    # Large batches of odd-sized images put an image's pixels at other offsets of TensorFlow's
    # vectorised kernels and switch reductions to multi-threaded orders; the image must not
    # notice.
    images = _real_batch(33, 96, seed=3)
    seeds = _seeds(96, 40)
    policy = load_policy({"version": 1, "ops": ops})
    partners = None
    count = compile_policy(policy).partner_count
    if count == 1:  # each image mixes with the one before it
        partners = np.roll(images, 1, axis=0)
    elif count:  # mosaic: with the 3 before it
        partners = np.stack([np.roll(images, k, axis=0) for k in range(1, count + 1)], axis=1)
    batch = augment(images, seeds, policy, partners=partners).numpy()
    for i in (0, 1, 17, 50, 95):
        partner = None if partners is None else partners[i]
        alone = augment(images[i], seeds[i], policy, partners=partner).numpy()
        np.testing.assert_array_equal(batch[i], alone)


@pytest.mark.parametrize("preset", ["standard", "randaugment"])
def test_the_batch_wide_draws_are_tensorflows_stateless_stream_bit_for_bit(preset):
    # The seed contract says node n draws stateless_uniform([n], fold_in(seed, id)); the core
    # computes that for the whole batch with its own Philox. Any seed, extremes included.
    from tfx_image_augment.core.draws import draw_table
    from tfx_image_augment.core.plan import compile_policy

    plan = compile_policy(load_policy(preset))
    rng = np.random.default_rng(3)
    seeds = np.concatenate(
        [
            rng.integers(-(2**63), 2**63 - 1, size=(200, 2), dtype=np.int64),
            np.array([[0, 0], [-1, -1], [2**63 - 1, -(2**63)], [1, 2]], np.int64),
        ]
    )

    def one_image(seed):
        return tf.concat(
            [
                tf.random.stateless_uniform(
                    [draws], tf.random.experimental.stateless_fold_in(seed, node)
                )
                for node, draws in plan.nodes
            ],
            axis=0,
        )

    expected = tf.map_fn(one_image, tf.constant(seeds), fn_output_signature=tf.float32)
    np.testing.assert_array_equal(draw_table(plan, tf.constant(seeds)).numpy(), expected.numpy())
