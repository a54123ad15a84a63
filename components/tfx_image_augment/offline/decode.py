"""One input record -> the decoded example the offline door augments, or Quarantined.

Shared by the Beam expansion and the preview, so both read a record the same way.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tfx_image_augment.io.codec import decode_image, decode_mask
from tfx_image_augment.io.quarantine import (
    IMAGE_MISSING,
    MASK_MISSING,
    MASK_SHAPE_MISMATCH,
    NOT_AN_EXAMPLE,
    Quarantined,
)
from tfx_image_augment.io.records import image_feature_of, stable_key
from tfx_image_augment.offline.balance import label_of
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.objects import Objects, read_objects


@dataclasses.dataclass
class DecodedExample:
    key: bytes
    record: bytes  # the input record, untouched
    pixels: np.ndarray
    image_format: str
    mask: np.ndarray | None
    mask_format: str | None
    image_feature: str = ""  # the feature the image was read from
    objects: Objects | None = None  # boxes and keypoints, normalized
    label: str | None = None  # the class, when `label_feature` is set
    copies: int = 0  # how many augmented copies it gets (`balance.copies_for`)


def decode_example(record: bytes, config: AugmentConfig) -> DecodedExample:
    """Parses, validates and decodes `record`; raises Quarantined with the reason."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        example = tf.train.Example.FromString(record)
    except DecodeError as err:
        raise Quarantined(NOT_AN_EXAMPLE, str(err)[:200]) from None
    features = example.features.feature
    image_feature = image_feature_of(features, config.image_feature)
    if image_feature is None:
        raise Quarantined(IMAGE_MISSING, f"no feature {config.image_feature!r}")
    pixels, fmt = decode_image(features[image_feature], config.decode_rules, image_feature)
    mask, mask_fmt = None, None
    if config.mask_feature:
        if config.mask_feature not in features:
            raise Quarantined(MASK_MISSING, f"no feature {config.mask_feature!r}")
        mask, mask_fmt = decode_mask(
            features[config.mask_feature], config.decode_rules, config.mask_feature
        )
        if mask.shape[:2] != pixels.shape[:2]:
            raise Quarantined(
                MASK_SHAPE_MISMATCH, f"mask {mask.shape[:2]} vs image {pixels.shape[:2]}"
            )
    objects = read_objects(example, config, pixels.shape[0], pixels.shape[1])
    label = label_of(example, config)
    key = stable_key(example, config.key_feature)
    return DecodedExample(key, record, pixels, fmt, mask, mask_fmt, image_feature, objects, label)
