"""Mosaic in the core, on real photo crops: each quadrant is its image at half scale exactly as
the bilinear warp defines it, boxes drawn into the images come out around their pixels, an
image gets the same pixels, boxes and weight alone or in a batch, and the closed gate changes
nothing.

The independent reference for pixels: at half scale with a whole-pixel centre on an even size,
output pixel r of a tile samples input 2 (r - corner) + 0.5, halfway between two pixel
centres on each axis, where bilinear interpolation gives each of the 2 x 2 pixels weight
1/4: the kernel's (0.5 a + 0.5 b) rows, then columns, which in float32 is exactly
((a + b) + (c + d)) / 4 with (a, b) the upper pair. Pixels a tile does not cover are the fill.
"""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tfx_image_augment.core.augment import augment, augment_targets
from tfx_image_augment.core.draws import draw_table
from tfx_image_augment.core.plan import compile_policy
from tfx_image_augment.core.policy import PolicyError, load_policy

from tests import images as real
from tests.strategies import policies


def _policy(*ops, fill_value: float = 0.0) -> dict:
    return {"version": 1, "ops": list(ops), "fill_mode": "constant", "fill_value": fill_value}


def _mosaic(low: float = 0.25, high: float = 0.75, p: float = 1.0) -> dict:
    return {"op": "mosaic", "center": [low, high], "p": p}


def _seeds(count: int, base: int = 0) -> np.ndarray:
    return np.stack([base + np.arange(count), 500 + 7 * np.arange(count)], 1).astype(np.int64)


def _photos(count: int, size: int, seed: int = 3):
    """`count` images and their 3 partners each, [count, 3, size, size, 3], all distinct."""
    crops = real.photo_crops(size, 4 * count, seed)
    return crops[:count], crops[count:].reshape(count, 3, size, size, 3)


def _centres(policy: dict, seeds: np.ndarray, height: int, width: int):
    """(cy, cx, gate open) per image from the seed contract's words: the mosaic node's gate,
    then cy = floor(H (low + (high - low) u0) + 0.5), cx likewise from u1 and W."""
    plan = compile_policy(load_policy(policy))
    (inst,) = [i for s in plan.stages if s.kind == "mix" for i in s.instances]
    table = draw_table(plan, tf.constant(seeds)).numpy()
    u = table[:, inst.first_column : inst.first_column + 2].astype(np.float64)
    low, high = inst.op["center"]
    cy = np.floor(height * (low + (high - low) * u[:, 0]) + 0.5).astype(int)
    cx = np.floor(width * (low + (high - low) * u[:, 1]) + 0.5).astype(int)
    return cy, cx, table[:, inst.first_column - 1] < inst.op["p"]


def _unit(images: np.ndarray) -> np.ndarray:
    """uint8 -> [0, 1] as the core's traced graph does it: its x / 255 is constant-folded into
    x * float32(1 / 255) (in every door alike, as they all run that graph)."""
    return images.astype(np.float32) * np.float32(1 / 255)


def _half(image: np.ndarray) -> np.ndarray:
    """The half-scale image (float32 [H, W, C], H and W even): mean of each 2 x 2 block."""
    top = image[0::2, 0::2] + image[0::2, 1::2]
    bottom = image[1::2, 0::2] + image[1::2, 1::2]
    return (top + bottom) * np.float32(0.25)


def _tiles(cy: int, cx: int, height: int, width: int):
    """Each tile's top-left corner and quadrant (rows r0:r1, columns c0:c1), tile 0 the image."""
    half_h, half_w = height / 2, width / 2
    corners = [(cy - half_h, cx - half_w), (cy - half_h, cx), (cy, cx - half_w), (cy, cx)]
    quadrants = [(0, cy, 0, cx), (0, cy, cx, width), (cy, height, 0, cx), (cy, height, cx, width)]
    return corners, quadrants


def _expected_mosaic(image, partners, cy: int, cx: int, fill: float) -> np.ndarray:
    """The mosaic of unit-float images (even size): each quadrant its tile's _half, placed at
    its corner, and the fill where the tile does not reach."""
    size_h, size_w, channels = image.shape
    out = np.full(image.shape, np.float32(fill), np.float32)
    corners, quadrants = _tiles(cy, cx, size_h, size_w)
    for tile, (oy, ox), (r0, r1, c0, c1) in zip(
        [image, *partners[:3]], corners, quadrants, strict=True
    ):
        canvas = np.full((3 * size_h, 3 * size_w, channels), np.float32(fill), np.float32)
        top, left = size_h + int(oy), size_w + int(ox)
        canvas[top : top + size_h // 2, left : left + size_w // 2] = _half(tile)
        placed = canvas[size_h : 2 * size_h, size_w : 2 * size_w]
        out[r0:r1, c0:c1] = placed[r0:r1, c0:c1]
    return out


def _to_uint8(x: np.ndarray) -> np.ndarray:
    return np.round(np.clip(x, 0, 1) * np.float32(255)).astype(np.uint8)


def _run(policy, images, partners, seeds, **kwargs) -> dict[str, np.ndarray]:
    out = augment_targets(images, seeds, load_policy(policy), partners=partners, **kwargs)
    return {k: v.numpy() for k, v in out.items()}


# ----------------------------------------------------------------------------------------------
# (1) pixels: every quadrant is its image at half scale
# ----------------------------------------------------------------------------------------------


def test_a_centred_mosaic_is_the_four_images_at_half_scale_exactly():
    images, partners = _photos(6, 48)
    policy = _policy(_mosaic(0.5, 0.5))
    out = _run(policy, images, partners, _seeds(6))
    for i in range(6):
        tiles = [_half(_unit(t)) for t in (images[i], *partners[i])]
        expected = np.concatenate(
            [np.concatenate(tiles[:2], axis=1), np.concatenate(tiles[2:], axis=1)], axis=0
        )
        np.testing.assert_array_equal(out["images"][i], _to_uint8(expected))
    np.testing.assert_array_equal(out["mix_weights"], np.full(6, 0.25, np.float32))
    # Floating-point images in [0, 1]: the same floats, not rounded to uint8.
    floats = _run(policy, _unit(images), _unit(partners), _seeds(6))
    for i in range(6):
        expected = _expected_mosaic(_unit(images[i]), _unit(partners[i]), 24, 24, 0.0)
        np.testing.assert_array_equal(floats["images"][i], expected)


@pytest.mark.parametrize("center", [(0.1, 0.9), (0.25, 0.75), (0.7, 0.7), (0.0, 1.0)])
def test_any_centre_places_each_image_at_its_corner_and_fills_what_none_covers(center):
    images, partners = _photos(8, 40, seed=5)
    seeds = _seeds(8, base=31)
    policy = _policy(_mosaic(*center), fill_value=0.25)
    out = _run(policy, images, partners, seeds)
    cy, cx, _ = _centres(policy, seeds, 40, 40)
    low, high = center
    assert np.all((cy >= np.floor(40 * low)) & (cy <= np.ceil(40 * high)))
    for i in range(8):
        expected = _expected_mosaic(_unit(images[i]), _unit(partners[i]), cy[i], cx[i], 0.25)
        np.testing.assert_array_equal(out["images"][i], _to_uint8(expected), err_msg=str(i))
    if low < high:
        assert len(set(zip(cy.tolist(), cx.tolist(), strict=True))) > 4  # the centres vary


# ----------------------------------------------------------------------------------------------
# (6) the image's share
# ----------------------------------------------------------------------------------------------


def test_the_weight_is_the_share_of_the_output_the_image_itself_covers():
    size, count = 36, 12
    seeds = _seeds(count, base=9)
    policy = _policy(_mosaic(0.05, 0.95))
    # The image white, its partners black, fill black: the share is the white pixels.
    white = np.ones((count, size, size, 3), np.float32)
    black = np.zeros((count, 3, size, size, 3), np.float32)
    out = _run(policy, white, black, seeds)
    cy, cx, _ = _centres(policy, seeds, size, size)
    covered = np.minimum(cy, size // 2) * np.minimum(cx, size // 2)
    for i in range(count):
        lit = out["images"][i, ..., 0] == 1.0
        assert lit.sum() == covered[i]
        assert np.all(lit[: cy[i], : cx[i]].sum() == lit.sum())  # all in its own quadrant
        assert out["mix_weights"][i] == np.float32(covered[i] / (size * size))
    assert np.any(cy > size // 2) and np.any(cy < size // 2)  # the image cut, and not
    # The same weights for photos: the draws do not look at pixels.
    images, partners = _photos(count, size)
    np.testing.assert_array_equal(
        _run(policy, images, partners, seeds)["mix_weights"], out["mix_weights"]
    )


# ----------------------------------------------------------------------------------------------
# (3) boxes known by construction
# ----------------------------------------------------------------------------------------------

_COLOURS = np.array(
    [
        [255, 255, 0],
        [255, 0, 255],
        [0, 255, 255],
        [255, 255, 255],
        [255, 128, 0],
        [0, 128, 255],
        [128, 255, 0],
        [255, 0, 128],
    ],
    np.uint8,
)


def _scene(count: int, size: int, seed: int):
    """Darkened photo crops (channels <= 89), each with two rectangles in colours no blend with
    the background can take: rectangle r of tile t has colour 2 t + r. Rectangle 0 lies in
    rows [0, 30), rectangle 1 in rows [34, 64): never within a pixel of each other at half
    scale. Returns the images, partners, and their boxes [count, 2, 4] / [count, 3, 2, 4]."""
    rng = np.random.default_rng(seed)
    crops = (real.photo_crops(size, 4 * count, seed) * 0.35).astype(np.uint8)
    boxes = np.zeros((4 * count, 2, 4), np.float32)
    for k in range(4 * count):
        tile = k // count  # images first, then each image's partner 1, 2, 3 (below)
        for r, (lo, hi) in enumerate([(0, 30), (34, size)]):
            height, width = rng.integers(6, 17), rng.integers(6, 21)
            y0 = rng.integers(lo, hi - height + 1)
            x0 = rng.integers(0, size - width + 1)
            crops[k, y0 : y0 + height, x0 : x0 + width] = _COLOURS[2 * tile + r]
            boxes[k, r] = np.array([y0, x0, y0 + height, x0 + width]) / size
    images, partners = crops[:count], crops[count:].reshape(3, count, size, size, 3)
    partner_boxes = boxes[count:].reshape(3, count, 2, 4)
    return images, boxes[:count], partners.swapaxes(0, 1), partner_boxes.swapaxes(0, 1)


def _expected_boxes(boxes, cy: int, cx: int, size: int):
    """Boxes [4, N, 4] of tiles 0..3 in output pixel units, moved (x / 2 + corner) and cut to
    their quadrant within the placed copy; and each one's visible fraction."""
    corners, quadrants = _tiles(cy, cx, size, size)
    moved, clipped = [], []
    for tile_boxes, (oy, ox), (r0, r1, c0, c1) in zip(boxes, corners, quadrants, strict=True):
        box = tile_boxes.astype(np.float64) * size / 2 + np.array([oy, ox, oy, ox])
        low = np.array([max(r0, oy), max(c0, ox)] * 2)
        high = np.array([min(r1, oy + size / 2), min(c1, ox + size / 2)] * 2)
        moved.append(box)
        clipped.append(np.minimum(np.maximum(box, low), high))
    moved, clipped = np.stack(moved), np.stack(clipped)

    def area(b):
        return np.maximum(b[..., 2] - b[..., 0], 0) * np.maximum(b[..., 3] - b[..., 1], 0)

    return clipped, area(clipped) / area(moved)


@pytest.mark.parametrize("min_visibility", [0.0, 0.43])
@pytest.mark.parametrize("center", [(0.5, 0.5), (0.3, 0.3), (0.7, 0.7), (0.2, 0.8)])
def test_boxes_drawn_in_the_four_images_come_out_around_their_pixels(center, min_visibility):
    size, count = 64, 6
    images, boxes, partners, partner_boxes = _scene(count, size, seed=int(center[0] * 10))
    seeds = _seeds(count, base=3)
    policy = _policy(_mosaic(*center))
    out = _run(
        policy,
        images,
        partners,
        seeds,
        boxes=boxes,
        partner_boxes=partner_boxes,
        min_box_visibility=min_visibility,
    )
    assert out["boxes"].shape == (count, 8, 4) and out["box_valid"].shape == (count, 8)
    cy, cx, _ = _centres(policy, seeds, size, size)
    cut, kept = 0, 0
    for i in range(count):
        tiles = np.concatenate([boxes[i][None], partner_boxes[i]])  # [4, 2, 4]
        expected, visible = _expected_boxes(tiles, cy[i], cx[i], size)
        for row in range(8):
            tile, r = divmod(row, 2)
            valid, got = out["box_valid"][i, row], out["boxes"][i, row] * size
            box = expected[tile, r]
            has_area = box[2] > box[0] and box[3] > box[1]
            assert valid == (has_area and visible[tile, r] >= min_visibility), (i, row)
            lit = np.all(out["images"][i] == _COLOURS[2 * tile + r], axis=-1)
            rows, cols = np.nonzero(lit)
            if not has_area:  # wholly outside its quadrant: invalid, and none of it shows
                assert not valid and len(rows) == 0, (i, row)
                cut += 1
                continue
            np.testing.assert_allclose(got, box, rtol=0, atol=1e-4)
            kept += valid
            if len(rows) == 0:  # only a sliver shows (blended with the background)
                assert min(box[2] - box[0], box[3] - box[1]) < 1.5
                continue
            # The box encloses the rectangle's pixels, within a pixel of them.
            ymin, xmin, ymax, xmax = got
            assert ymin <= rows.min() + 1e-3 and ymax >= rows.max() + 1 - 1e-3, (i, row)
            assert xmin <= cols.min() + 1e-3 and xmax >= cols.max() + 1 - 1e-3, (i, row)
            assert ymin >= rows.min() - 1 and ymax <= rows.max() + 2, (i, row)
            assert xmin >= cols.min() - 1 and xmax <= cols.max() + 2, (i, row)
    assert kept > 0
    if center != (0.5, 0.5):
        assert cut > 0  # the scenes put some rectangles where their quadrant cuts them off


def test_ops_before_mosaic_move_the_images_own_boxes_and_ops_after_move_all_of_them():
    size, count = 64, 4
    images, boxes, partners, partner_boxes = _scene(count, size, seed=11)
    seeds = _seeds(count)
    kwargs = {"boxes": boxes, "partner_boxes": partner_boxes}
    flip, no_flip = {"op": "flip_left_right"}, {"op": "flip_left_right", "p": 0.0}
    # Before: the same as the flipped image with flipped boxes under a flip that never applies
    # (same node ids, so the same draws).
    out = _run(_policy(flip, _mosaic()), images, partners, seeds, **kwargs)
    mirrored = boxes[..., [0, 3, 2, 1]] * np.array([1, -1, 1, -1], np.float32) + [0, 1, 0, 1]
    twin = _run(
        _policy(no_flip, _mosaic()),
        images[:, :, ::-1],
        partners,
        seeds,
        boxes=mirrored,
        partner_boxes=partner_boxes,
    )
    for key in ("images", "boxes", "box_valid", "mix_weights"):
        np.testing.assert_array_equal(out[key], twin[key], err_msg=key)
    # After: every row, partners' included, is mirrored with the mosaic.
    out = _run(_policy(_mosaic(), flip), images, partners, seeds, **kwargs)
    plain = _run(_policy(_mosaic(), no_flip), images, partners, seeds, **kwargs)
    np.testing.assert_array_equal(out["images"], plain["images"][:, :, ::-1])
    np.testing.assert_array_equal(out["box_valid"], plain["box_valid"])
    flipped = 1.0 - plain["boxes"][..., [0, 3, 2, 1]]
    valid = plain["box_valid"]
    np.testing.assert_array_equal(out["boxes"][valid][:, [1, 3]], flipped[valid][:, [1, 3]])
    np.testing.assert_array_equal(out["boxes"][..., [0, 2]], plain["boxes"][..., [0, 2]])
    assert valid[:, 2:].any()


# ----------------------------------------------------------------------------------------------
# (2) an image alone or in a batch
# ----------------------------------------------------------------------------------------------

WITH_BOXES = {
    "flip_mosaic_rotate": _policy(
        {"op": "flip_left_right", "p": 0.5},
        _mosaic(),
        {"op": "rotate", "max_degrees": 25, "p": 0.8},
    ),
    "zoom_mosaic_crop": _policy(
        {"op": "zoom", "min_scale": 0.8, "max_scale": 1.3},
        _mosaic(0.2, 0.8, p=0.7),
        {"op": "brightness", "max_delta": 0.2},
        {"op": "random_resized_crop", "p": 0.6},
        fill_value=0.4,
    ),
}


@pytest.mark.parametrize("size", [48, 45], ids=["even", "odd"])
@pytest.mark.parametrize("name", list(WITH_BOXES))
def test_an_image_gets_the_same_pixels_boxes_and_weight_alone_as_in_a_batch_of_nine(name, size):
    rng = np.random.default_rng(size)
    images, partners = _photos(9, size, seed=size)
    corner = rng.uniform(0, 0.7, (9, 4, 3, 2))
    sides = rng.uniform(0.05, 0.3, (9, 4, 3, 2))
    all_boxes = np.concatenate([corner, corner + sides], axis=-1).astype(np.float32)
    valid = rng.uniform(size=(9, 4, 3)) < 0.8
    kwargs = {
        "boxes": all_boxes[:, 0],
        "box_valid": valid[:, 0],
        "partner_boxes": all_boxes[:, 1:],
        "partner_box_valid": valid[:, 1:],
        "min_box_visibility": 0.2,
    }
    seeds = _seeds(9, base=size)
    policy = WITH_BOXES[name]
    batch = _run(policy, images, partners, seeds, **kwargs)
    assert batch["boxes"].shape == (9, 12, 4)
    assert np.any(batch["mix_weights"] < 1) and batch["box_valid"][:, 3:].any()
    for i in range(9):
        alone = _run(
            policy,
            images[i],
            partners[i],
            seeds[i],
            **{k: v[i] if isinstance(v, np.ndarray) else v for k, v in kwargs.items()},
        )
        for key, value in alone.items():
            np.testing.assert_array_equal(value, batch[key][i], err_msg=f"{key} of image {i}")
    # Floating-point images: the same boxes and weights, and again alone as in the batch.
    floats = _run(policy, _unit(images), _unit(partners), seeds, **kwargs)
    for key in ("boxes", "box_valid", "mix_weights"):
        np.testing.assert_array_equal(floats[key], batch[key])
    pair = {k: v[3:5] if isinstance(v, np.ndarray) else v for k, v in kwargs.items()}
    alone = _run(policy, _unit(images[3:5]), _unit(partners[3:5]), seeds[3:5], **pair)
    np.testing.assert_array_equal(alone["images"], floats["images"][3:5])


PIXELS_ONLY = _policy(
    {"op": "one_of", "ops": [{"op": "mixup"}, {"op": "cutmix"}, _mosaic()], "p": 0.9},
    {"op": "contrast", "lower": 0.8, "upper": 1.2},
    {"op": "shear", "max_degrees": 10},
)


def test_without_boxes_mosaic_mixes_pixels_alone_and_an_image_gets_the_same_alone():
    images, partners = _photos(9, 33)
    seeds = _seeds(9, base=70)
    batch = augment_targets(images, seeds, load_policy(PIXELS_ONLY), partners=partners)
    assert set(batch) == {"images", "mix_weights"}
    for i in (0, 4, 8):
        alone = augment(images[i], seeds[i], load_policy(PIXELS_ONLY), partners=partners[i])
        np.testing.assert_array_equal(alone.numpy(), batch["images"][i].numpy())


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=policies(mixing=True, partners=3), data_seed=st.integers(0, 50))
def test_random_policies_with_mosaic_give_an_image_the_same_pixels_alone(config, data_seed):
    images = real.photo_crops(24, 6, data_seed)
    partners = np.stack([np.roll(images, k, axis=0) for k in (1, 2, 3)], axis=1)
    seeds = np.stack([np.arange(6) + data_seed, np.arange(6)], axis=1).astype(np.int64)
    policy = load_policy(config)
    batch = augment_targets(images, seeds, policy, partners=partners)
    for i in (0, 5):
        alone = augment_targets(images[i], seeds[i], policy, partners=partners[i])
        for key, value in alone.items():
            np.testing.assert_array_equal(value.numpy(), batch[key][i].numpy())


def test_mixup_and_cutmix_blend_partner_zero_of_several():
    images, partners = _photos(5, 32)
    seeds = _seeds(5)
    for op in ({"op": "mixup", "alpha": 0.4}, {"op": "cutmix"}):
        one = _run(_policy(op), images, partners[:, 0], seeds)
        several = _run(_policy(op), images, partners, seeds)
        for key in ("images", "mix_weights"):
            np.testing.assert_array_equal(several[key], one[key])


# ----------------------------------------------------------------------------------------------
# (4) a closed gate, or no partners
# ----------------------------------------------------------------------------------------------


def test_a_closed_gate_or_no_partner_leaves_the_image_and_its_boxes_as_without_mosaic():
    size, count = 64, 12
    images, boxes, partners, partner_boxes = _scene(count, size, seed=4)
    seeds = _seeds(count, base=40)
    flip, rotate = {"op": "flip_left_right", "p": 0.5}, {"op": "rotate", "max_degrees": 20}
    policy = _policy(flip, _mosaic(p=0.5), rotate)
    # The same node ids, no mosaic: an op at the same place that never applies.
    without = _policy(flip, {"op": "brightness", "max_delta": 0.2, "p": 0.0}, rotate)
    has_partner = np.arange(count) % 2 == 0
    kwargs = {"boxes": boxes, "partner_boxes": partner_boxes}
    out = _run(policy, images, partners, seeds, has_partner=has_partner, **kwargs)
    plain = _run(without, images, None, seeds, boxes=boxes)
    _, _, gate = _centres(policy, seeds, size, size)
    mixed = gate & has_partner
    assert mixed.any() and (gate & ~has_partner).any() and (~gate & has_partner).any()
    np.testing.assert_array_equal(out["mix_weights"] < 1, mixed)
    np.testing.assert_array_equal(out["mix_weights"][~mixed], 1.0)
    alone = ~mixed
    np.testing.assert_array_equal(out["images"][alone], plain["images"][alone])
    np.testing.assert_array_equal(out["boxes"][alone, :2], plain["boxes"][alone])
    np.testing.assert_array_equal(out["box_valid"][alone, :2], plain["box_valid"][alone])
    assert not out["box_valid"][alone, 2:].any()
    # The mosaic leaves the partners' rows of those images empty (a later op moves them as it
    # moves any invalid row).
    last = _run(_policy(flip, _mosaic(p=0.5)), images, partners, seeds, **kwargs)
    np.testing.assert_array_equal(last["boxes"][~gate, 2:], 0.0)
    assert not last["box_valid"][~gate, 2:].any()
    assert not np.array_equal(out["images"][mixed], plain["images"][mixed])
    assert out["box_valid"][mixed, 2:].any()


# ----------------------------------------------------------------------------------------------
# (5) clear errors
# ----------------------------------------------------------------------------------------------


def test_mosaic_refuses_what_it_cannot_take_in_one_clear_sentence():
    images, partners = _photos(2, 32)
    seeds = _seeds(2)
    policy = load_policy(_policy(_mosaic()))
    boxes = np.tile(np.array([[[0.1, 0.1, 0.5, 0.5]]], np.float32), (2, 1, 1))
    partner_boxes = np.tile(boxes[:, None], (1, 3, 1, 1))
    with pytest.raises(ValueError, match=r"mixes images \(mosaic\) with 3 partners per image"):
        augment(images, seeds, policy, partners=partners[:, 0])
    with pytest.raises(ValueError, match=r"P >= 3; got shape \(2, 2, 32, 32, 3\)"):
        augment(images, seeds, policy, partners=partners[:, :2])
    with pytest.raises(ValueError, match=r"P >= 3"):
        augment(images[0], seeds[0], policy, partners=partners[0, 0])
    with pytest.raises(ValueError, match=r"mixes images \(mosaic\): give partners"):
        augment(images, seeds, policy)
    with pytest.raises(ValueError, match="boxes were given: give partner_boxes"):
        augment_targets(images, seeds, policy, partners=partners, boxes=boxes)
    with pytest.raises(ValueError, match="partner_boxes were given without boxes"):
        augment_targets(images, seeds, policy, partners=partners, partner_boxes=partner_boxes)
    with pytest.raises(ValueError, match="padded to the images' N = 1"):
        augment_targets(
            images,
            seeds,
            policy,
            partners=partners,
            boxes=boxes,
            partner_boxes=np.tile(partner_boxes, (1, 1, 2, 1)),
        )
    with pytest.raises(ValueError, match="no mixing op that moves boxes"):
        augment_targets(
            images,
            seeds,
            load_policy(_policy({"op": "rotate", "max_degrees": 5})),
            boxes=boxes,
            partner_boxes=partner_boxes,
        )
    keypoints = np.full((2, 1, 2, 2), 0.5, np.float32)
    for targets in (
        {"keypoints": keypoints},
        {"boxes": boxes, "partner_boxes": partner_boxes, "keypoints": keypoints},
        {"masks": np.zeros((2, 32, 32, 1), np.uint8)},
        {
            "boxes": boxes,
            "partner_boxes": partner_boxes,
            "instance_masks": np.ones((2, 1, 32, 32), np.uint8),
        },
    ):
        with pytest.raises(ValueError, match="keypoints and instance masks are not supported"):
            augment_targets(images, seeds, policy, partners=partners, **targets)
    # MixUp and CutMix still refuse every target, beside mosaic too.
    both = load_policy(_policy({"op": "mixup"}, _mosaic()))
    with pytest.raises(ValueError, match=r"\(mixup\); mixing does not move segmentation masks"):
        augment_targets(
            images, seeds, both, partners=partners, boxes=boxes, partner_boxes=partner_boxes
        )
    twice = load_policy(_policy(_mosaic(), _mosaic()))
    with pytest.raises(ValueError, match="with boxes, it may tile once"):
        augment_targets(
            images, seeds, twice, partners=partners, boxes=boxes, partner_boxes=partner_boxes
        )
    assert augment(images, seeds, twice, partners=partners).shape == images.shape  # pixels: fine
    with pytest.raises(PolicyError, match=r"field 'center' must be a list \[lower, upper\]"):
        load_policy(_policy({"op": "mosaic", "center": [0.6, 1.2]}))


def test_the_layer_tiles_each_image_with_the_three_before_it_and_their_boxes_come_along():
    from tfx_image_augment import ImageAugmentation

    images, boxes, _, _ = _scene(5, 64, seed=11)
    labels = np.arange(10, dtype=np.int64).reshape(5, 2)
    seeds = _seeds(5, 40)
    policy = WITH_BOXES["flip_mosaic_rotate"]
    layer = ImageAugmentation(policy, seed=1)
    inputs = {"boxes": boxes, "labels": labels}
    out = layer({"images": images, "seeds": seeds, "bounding_boxes": inputs}, training=True)
    rolled = np.stack([np.roll(images, k, axis=0) for k in (1, 2, 3)], axis=1)
    rolled_boxes = np.stack([np.roll(boxes, k, axis=0) for k in (1, 2, 3)], axis=1)
    expected = _run(policy, images, rolled, seeds, boxes=boxes, partner_boxes=rolled_boxes)
    np.testing.assert_array_equal(out["images"].numpy(), expected["images"])
    np.testing.assert_array_equal(out["bounding_boxes"]["boxes"].numpy(), expected["boxes"])
    # Each row keeps its object's label (own rows, then partner 1's, 2's, 3's), -1 once gone.
    row_labels = np.concatenate([labels, *(np.roll(labels, k, axis=0) for k in (1, 2, 3))], 1)
    np.testing.assert_array_equal(
        out["bounding_boxes"]["labels"].numpy(),
        np.where(expected["box_valid"], row_labels, -1),
    )
    with pytest.raises(ValueError, match="one weight cannot mix their class labels"):
        layer({"images": images, "labels": tf.one_hot(np.arange(5), 5)}, training=True)


def test_the_savedmodel_replays_a_mosaic_with_its_partners_boxes(tmp_path):
    from tfx_image_augment import ImageAugmentation, export_augmentation_model

    images, boxes, partners, partner_boxes = _scene(4, 64, seed=12)
    seeds = _seeds(4, 50)
    policy = WITH_BOXES["zoom_mosaic_crop"]
    export_augmentation_model(policy, 1, str(tmp_path))
    model = tf.saved_model.load(str(tmp_path / "saved_model"))
    assert set(model.signatures) == {
        "augment",
        "augment_with_partners",
        "augment_with_partner_boxes",
    }
    valid = np.ones(boxes.shape[:2], bool)
    out = model.signatures["augment_with_partner_boxes"](
        images=tf.constant(images),
        partners=tf.constant(partners),
        seeds=tf.constant(seeds),
        boxes=tf.constant(boxes),
        box_valid=tf.constant(valid),
        partner_boxes=tf.constant(partner_boxes),
        partner_box_valid=tf.constant(np.ones(partner_boxes.shape[:3], bool)),
    )
    expected = _run(policy, images, partners, seeds, boxes=boxes, partner_boxes=partner_boxes)
    for name in ("images", "boxes", "box_valid", "mix_weights"):
        np.testing.assert_array_equal(out[name].numpy(), expected[name])
    in_batch = model.signatures["augment"](images=tf.constant(images), seeds=tf.constant(seeds))
    layer = ImageAugmentation(policy)
    np.testing.assert_array_equal(
        in_batch["images"].numpy(), layer({"images": images, "seeds": seeds}, training=True)
    )
