"""Every reason the project can quarantine an example for, each with its one line of meaning.

A quarantined example is written whole to `quarantine/Split-<name>/` (the record layout is in
`records.py`), counted under `quarantined/<reason>`, and the run goes on. The docs' list of
reasons (docs/bad-input.md) is checked against `REASONS`.
"""

from __future__ import annotations

# The record itself
NOT_AN_EXAMPLE = "not_a_tf_example"
KEY_MISSING = "key_missing"
LABEL_MISSING = "label_missing"
# The image
IMAGE_MISSING = "image_missing"
IMAGE_WRONG_TYPE = "image_wrong_type"
IMAGE_EMPTY = "image_empty"
NOT_AN_IMAGE = "not_an_image"
IMAGE_UNDECODABLE = "image_undecodable"
IMAGE_BAD_SHAPE = "image_bad_shape"
IMAGE_TOO_LARGE = "image_too_large"
IMAGE_ANIMATED = "image_animated"
IMAGE_NOT_FINITE = "image_not_finite"
IMAGE_OUT_OF_RANGE = "image_out_of_range"
# The segmentation mask
MASK_MISSING = "mask_missing"
MASK_INVALID = "mask_invalid"
MASK_SHAPE_MISMATCH = "mask_shape_mismatch"
# Detection objects
BOXES_MISALIGNED = "boxes_misaligned"
BOXES_INVALID = "boxes_invalid"
OBJECTS_MISALIGNED = "objects_misaligned"
KEYPOINTS_INVALID = "keypoints_invalid"
INSTANCE_MASK_INVALID = "instance_mask_invalid"
INSTANCE_MASK_SHAPE_MISMATCH = "instance_mask_shape_mismatch"
OBJECTS_WITH_MIXING = "objects_with_mixing"

REASONS = {
    NOT_AN_EXAMPLE: "the record does not parse as a tf.train.Example",
    KEY_MISSING: "`key_feature` is absent or empty",
    LABEL_MISSING: "`label_feature` is absent or empty while copies depend on the class",
    IMAGE_MISSING: "the image feature is absent or has no value",
    IMAGE_WRONG_TYPE: "the image feature has the wrong kind or count of values",
    IMAGE_EMPTY: "the encoded image has zero bytes",
    NOT_AN_IMAGE: "the bytes carry no PNG, JPEG, GIF or BMP signature",
    IMAGE_UNDECODABLE: "the header is unreadable, decoding fails, or it decodes to another size",
    IMAGE_BAD_SHAPE: "raw pixels do not fill `image_shape`, or not 1, 3 or 4 channels",
    IMAGE_TOO_LARGE: "width x height in the header is above `max_image_pixels` (not decoded)",
    IMAGE_ANIMATED: "an animated GIF or PNG (more than one frame)",
    IMAGE_NOT_FINITE: "raw float pixels hold NaN or infinity",
    IMAGE_OUT_OF_RANGE: "raw float pixels outside `value_range` with `out_of_range='quarantine'`",
    MASK_MISSING: "`mask_feature` is absent",
    MASK_INVALID: "the mask does not decode to one 8-bit channel",
    MASK_SHAPE_MISMATCH: "the mask's height and width differ from the image's",
    BOXES_MISALIGNED: "the four box coordinate lists have different lengths",
    BOXES_INVALID: "a box is not finite, outside the image, or has min > max",
    OBJECTS_MISALIGNED: "a per-object feature's length differs from the number of boxes",
    KEYPOINTS_INVALID: "keypoints are not K per object, not finite, or their visibility is wrong",
    INSTANCE_MASK_INVALID: "a per-object mask (`image/object/mask`) does not decode to one "
    "8-bit channel, or its raw values are not integers in [0, 255]",
    INSTANCE_MASK_SHAPE_MISMATCH: "a per-object mask's height and width differ from the "
    "image's, or raw masks do not hold objects x height x width values",
    OBJECTS_WITH_MIXING: "the record has objects the policy's mixing ops do not move yet: "
    "boxes under mixup or cutmix, keypoints or instance masks under mosaic",
}


class Quarantined(Exception):
    """An example that cannot be augmented: `reason` is a key of `REASONS`, `detail` says
    which feature and what was found."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in REASONS:
            raise ValueError(f"unknown quarantine reason {reason!r}")  # a bug: add it above
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail
