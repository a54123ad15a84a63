"""The portable artifact: `policy.json` and a SavedModel any TensorFlow job can load.

The SavedModel holds only TensorFlow ops (no Python of this project), so
`tf.saved_model.load(path).signatures["augment"]` works where this package is not installed.
"""

from __future__ import annotations

import json
import os
from typing import Any

import tensorflow as tf

from tfx_image_augment.core import augment as core
from tfx_image_augment.core.policy import Policy, load_policy
from tfx_image_augment.core.seeds import SEED_RULE_VERSION

POLICY_FILE = "policy.json"
SAVED_MODEL_DIR = "saved_model"
AUGMENT_SIGNATURE = "augment"
AUGMENT_WITH_MASKS_SIGNATURE = "augment_with_masks"
AUGMENT_WITH_BOXES_SIGNATURE = "augment_with_boxes"
AUGMENT_WITH_INSTANCE_MASKS_SIGNATURE = "augment_with_instance_masks"
AUGMENT_WITH_PARTNERS_SIGNATURE = "augment_with_partners"
AUGMENT_WITH_PARTNER_BOXES_SIGNATURE = "augment_with_partner_boxes"


class _AugmentModule(tf.Module):
    def __init__(
        self,
        policy: Policy,
        channels: int,
        min_box_visibility: float,
        keypoint_flip_permutation,
        boxes_from_masks: bool,
    ):
        super().__init__(name="image_augmentation")
        plan = core.compile_policy(policy)
        images = tf.TensorSpec([None, None, None, channels], tf.uint8, name="images")
        seeds = tf.TensorSpec([None, 2], tf.int64, name="seeds")
        masks = tf.TensorSpec([None, None, None, 1], tf.uint8, name="masks")

        count = plan.partner_count
        # One partner per image [B, H, W, C]; mosaic's three: [B, 3, H, W, C].
        partner_shape = [None, None, None] if count < 2 else [None, count, None, None]
        partners = tf.TensorSpec([*partner_shape, channels], tf.uint8, name="partners")
        self.mixes, self.tiles = bool(plan.mixing_ops), bool(plan.tiling_ops)

        # autograph=False: the wrappers branch on Python values only, and converting their
        # source for each signature took a third of the export (11.2-13.7 -> 8.3 s here).
        @tf.function(input_signature=[images, seeds], autograph=False)
        def augment(images, seeds):
            if self.mixes:  # as the Keras layer: the image(s) before each one in its batch
                partners = core.batch_partners(images, count)
                return {"images": core.augment(images, seeds, plan, partners=partners)}
            return {"images": core.augment(images, seeds, plan)}

        @tf.function(input_signature=[images, partners, seeds], autograph=False)
        def augment_with_partners(images, partners, seeds):
            out = core.augment_targets(images, seeds, plan, partners=partners)
            return {"images": out["images"], "mix_weights": out["mix_weights"]}

        @tf.function(input_signature=[images, masks, seeds], autograph=False)
        def augment_with_masks(images, masks, seeds):
            out_images, out_masks = core.augment(images, seeds, plan, masks=masks)
            return {"images": out_images, "masks": out_masks}

        objects = [
            tf.TensorSpec([None, None, 4], tf.float32, name="boxes"),
            tf.TensorSpec([None, None], tf.bool, name="box_valid"),
            tf.TensorSpec([None, None, None, 2], tf.float32, name="keypoints"),
            tf.TensorSpec([None, None, None], tf.bool, name="keypoint_visible"),
        ]

        def with_objects(images, seeds, boxes, box_valid, keypoints, keypoint_visible, **more):
            return core.augment_targets(
                images,
                seeds,
                plan,
                boxes=boxes,
                box_valid=box_valid,
                keypoints=keypoints,
                keypoint_visible=keypoint_visible,
                min_box_visibility=min_box_visibility,
                keypoint_flip_permutation=keypoint_flip_permutation,
                **more,
            )

        @tf.function(input_signature=[images, seeds, *objects], autograph=False)
        def augment_with_boxes(images, seeds, boxes, box_valid, keypoints, keypoint_visible):
            return with_objects(images, seeds, boxes, box_valid, keypoints, keypoint_visible)

        instance_masks = tf.TensorSpec([None, None, None, None], tf.uint8, name="instance_masks")

        @tf.function(input_signature=[images, seeds, *objects, instance_masks], autograph=False)
        def augment_with_instance_masks(
            images, seeds, boxes, box_valid, keypoints, keypoint_visible, instance_masks
        ):
            return with_objects(
                images,
                seeds,
                boxes,
                box_valid,
                keypoints,
                keypoint_visible,
                instance_masks=instance_masks,
                boxes_from_masks=boxes_from_masks,
            )

        partner_boxes = tf.TensorSpec([None, count, None, 4], tf.float32, name="partner_boxes")
        partner_valid = tf.TensorSpec([None, count, None], tf.bool, name="partner_box_valid")

        @tf.function(
            input_signature=[images, partners, seeds, *objects[:2], partner_boxes, partner_valid],
            autograph=False,
        )
        def augment_with_partner_boxes(
            images, partners, seeds, boxes, box_valid, partner_boxes, partner_box_valid
        ):
            out = core.augment_targets(
                images,
                seeds,
                plan,
                partners=partners,
                boxes=boxes,
                box_valid=box_valid,
                partner_boxes=partner_boxes,
                partner_box_valid=partner_box_valid,
                min_box_visibility=min_box_visibility,
            )
            names = ("images", "boxes", "box_valid", "mix_weights")
            return {name: out[name] for name in names}

        self.augment = augment
        self.augment_with_partners = augment_with_partners
        if self.tiles:
            self.augment_with_partner_boxes = augment_with_partner_boxes
        if not self.mixes:  # saving traces every tf.function attribute; these cannot mix
            self.augment_with_masks = augment_with_masks
            self.augment_with_boxes = augment_with_boxes
            self.augment_with_instance_masks = augment_with_instance_masks


def _signatures(module: _AugmentModule) -> dict:
    signatures = {
        AUGMENT_SIGNATURE: module.augment,
        AUGMENT_WITH_PARTNERS_SIGNATURE: module.augment_with_partners,
    }
    if module.tiles:
        signatures[AUGMENT_WITH_PARTNER_BOXES_SIGNATURE] = module.augment_with_partner_boxes
    if not module.mixes:
        signatures.update(
            {
                AUGMENT_WITH_MASKS_SIGNATURE: module.augment_with_masks,
                AUGMENT_WITH_BOXES_SIGNATURE: module.augment_with_boxes,
                AUGMENT_WITH_INSTANCE_MASKS_SIGNATURE: module.augment_with_instance_masks,
            }
        )
    return signatures


def export_augmentation_model(
    policy: Any,
    seed: int,
    output_dir: str,
    channels: int = 3,
    min_box_visibility: float = 0.0,
    keypoint_flip_permutation=None,
    boxes_from_masks: bool = True,
) -> str:
    """Writes `output_dir/policy.json` and `output_dir/saved_model/`; returns `output_dir`.

    Signatures: `augment(images uint8 [B,H,W,C], seeds int64 [B,2]) -> {"images"}`,
    `augment_with_masks(images, masks uint8 [B,H,W,1], seeds) -> {"images", "masks"}` and
    `augment_with_partners(images, partners uint8 [B,H,W,C], seeds) -> {"images",
    "mix_weights" float [B]}` (each image mixed with its partner by the mixing ops, and its
    share of the pixels: it replays an offline mixed copy from its original, the partner named
    by `aug_mix_partner_key` and `aug_seed`; for a policy that does not mix, `augment` with
    weights 1). With `mosaic`, partners are [B, 3, H, W, C] and
    `augment_with_partner_boxes(images, partners, seeds, boxes, box_valid, partner_boxes
    float [B,3,N,4], partner_box_valid bool [B,3,N]) -> {"images", "boxes" [B,4N,4],
    "box_valid" [B,4N], "mix_weights"}` moves every tile's boxes. For a mixing policy,
    `augment` mixes each image with the one(s) before it in its batch (as the Keras layer
    does), and the signatures below are left out (mixing moves no masks or keypoints yet).
    Otherwise:
    `augment_with_boxes(images, seeds, boxes float [B,N,4] normalized ymin/xmin/ymax/xmax,
    box_valid bool [B,N], keypoints float [B,N,K,2] normalized y/x (K may be 0),
    keypoint_visible bool [B,N,K]) -> {"images", "boxes", "box_valid", "keypoints",
    "keypoint_visible"}` and `augment_with_instance_masks(` the same inputs `, instance_masks
    uint8 [B,N,H,W]) -> {` the same outputs `, "instance_masks"}` (per-object masks moved with
    the pixels; an object whose mask leaves the image is not valid; with `boxes_from_masks`,
    boxes are the tight boxes of the moved masks).
    `seed` is the pipeline seed, recorded in policy.json; the signatures take per-image seeds.
    """
    policy = load_policy(policy)
    if channels not in core.SUPPORTED_CHANNELS:
        raise ValueError(f"channels must be 1, 3 or 4; got {channels}.")
    tf.io.gfile.makedirs(output_dir)
    permutation = None if keypoint_flip_permutation is None else list(keypoint_flip_permutation)
    module = _AugmentModule(
        policy, channels, float(min_box_visibility), permutation, bool(boxes_from_masks)
    )
    tf.saved_model.save(
        module,
        os.path.join(output_dir, SAVED_MODEL_DIR),
        signatures=_signatures(module),
    )
    record = {
        "policy": policy.to_dict(),
        "fingerprint": policy.fingerprint,
        "seed": int(seed),
        "channels": channels,
        "min_box_visibility": float(min_box_visibility),
        "keypoint_flip_permutation": permutation,
        "boxes_from_masks": bool(boxes_from_masks),
        "preset": policy.name,
        "seed_rule_version": SEED_RULE_VERSION,
    }
    with tf.io.gfile.GFile(os.path.join(output_dir, POLICY_FILE), "w") as handle:
        handle.write(json.dumps(record, indent=2, sort_keys=True))
    return output_dir


def load_exported_policy(model_dir: str) -> tuple[Policy, int]:
    """The policy and seed an exported augmentation model records."""
    with tf.io.gfile.GFile(os.path.join(model_dir, POLICY_FILE)) as handle:
        record = json.load(handle)
    return load_policy(record["policy"]), int(record["seed"])
