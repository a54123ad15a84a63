"""The offline expansion's settings, validated once: when the pipeline is built, not on workers."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

from tfx_image_augment.policy import PRESETS, Policy, load_policy

OUTPUT_FORMATS = ("same", "png", "jpeg")
BOX_COORDINATES = ("normalized", "pixels")
BALANCE_MODES = (None, "equal")
MAX_COPIES_LIMIT = 1000
OUT_OF_RANGE_ACTIONS = ("quarantine", "clip")
# Of the order of Pillow's decompression-bomb guard (it warns above 89.5 M pixels). An RGB
# image this large peaks at about 4 GB in a worker (benchmarks/results/memory.md).
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
SEED_SCHEME = "image-augment/v1"
# The seed is an int64 wherever it goes: ML Metadata, the Keras layer, the exported model.
SEED_MIN, SEED_MAX = -(2**63), 2**63 - 1


def _is_integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int in Python


def _is_number(value: Any) -> bool:
    return _is_integer(value) or isinstance(value, float)


@dataclasses.dataclass(frozen=True)
class AugmentConfig:
    """Everything the offline expansion needs; `validate()` raises one clear ValueError."""

    policy: str = "standard"  # preset name, JSON text or file path; see canonical_policy
    num_copies: int = 4
    seed: int = 0
    splits_to_augment: tuple[str, ...] = ("train",)
    include_original: bool = True
    image_feature: str = "image"
    key_feature: str | None = None
    mask_feature: str | None = None
    image_shape: tuple[int, int, int] | None = None  # for raw (non-encoded) pixels
    value_range: tuple[float, float] | None = None  # for raw float pixels
    output_format: str = "same"
    jpeg_quality: int = 95
    # zlib level of copies written as PNG: 1 encodes 2-4x faster than TensorFlow's default (6)
    # for files 1% (CIFAR-10) to 11% (224-px photos) larger; pixels are the same either way.
    png_compression: int = 1
    provenance: bool = True
    max_quarantine_fraction: float = 0.01
    batch_size: int = 1024
    # Detection records (TensorFlow Object Detection API layout; `objects.py`): boxes and
    # keypoints move with the image, objects that leave it are dropped with all their features.
    box_feature_prefix: str = "image/object/bbox/"
    object_feature_prefix: str = "image/object/"
    keypoint_feature_prefix: str = "image/object/keypoint/"
    box_coordinates: str = "normalized"  # or "pixels"
    min_box_visibility: float = 0.0
    keypoint_flip_permutation: tuple[int, ...] | None = None
    # Imbalanced data: copies per class, read from `label_feature` (`balance.py`).
    label_feature: str | None = None
    copies_per_class: Mapping[str, float] | None = None
    balance: str | None = None  # "equal": every class up to the largest one's count
    max_copies: int = 16
    # Output files per split (0: the runner decides).
    num_shards: int = 0
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS  # larger images are quarantined
    out_of_range: str = "quarantine"  # raw float pixels outside value_range: or "clip"

    def validate(self) -> AugmentConfig:
        load_policy(self.policy)  # raises PolicyError (a ValueError) with its own sentence

        def fail(field: str, rule: str, got: Any) -> ValueError:
            return ValueError(f"ImageAugment parameter {field!r} must be {rule}; got {got!r}.")

        if not _is_integer(self.num_copies) or self.num_copies < 1:
            raise fail("num_copies", "an integer >= 1", self.num_copies)
        if not _is_integer(self.seed) or not SEED_MIN <= self.seed <= SEED_MAX:
            raise fail("seed", "an integer in [-2**63, 2**63 - 1]", self.seed)
        if not self.splits_to_augment or not all(
            isinstance(s, str) and s for s in self.splits_to_augment
        ):
            raise fail(
                "splits_to_augment", "a non-empty list of split names", self.splits_to_augment
            )
        for field in ("image_feature", "key_feature", "mask_feature"):
            value = getattr(self, field)
            if value is not None and (not isinstance(value, str) or not value):
                raise fail(field, "a feature name", value)
        if self.image_shape is not None and (
            len(self.image_shape) != 3
            or not all(int(d) > 0 for d in self.image_shape)
            or self.image_shape[2] not in (1, 3, 4)
        ):
            raise fail(
                "image_shape", "[height, width, channels] with 1, 3 or 4 channels", self.image_shape
            )
        if self.value_range is not None and (
            len(self.value_range) != 2 or not self.value_range[0] < self.value_range[1]
        ):
            raise fail("value_range", "[low, high] with low < high", self.value_range)
        if self.value_range is not None and self.image_shape is None:
            raise fail(
                "value_range", "given only with image_shape (raw float pixels)", self.value_range
            )
        if self.output_format not in OUTPUT_FORMATS:
            raise fail("output_format", "one of 'same', 'png', 'jpeg'", self.output_format)
        if not _is_integer(self.jpeg_quality) or not 1 <= self.jpeg_quality <= 100:
            raise fail("jpeg_quality", "an integer in [1, 100]", self.jpeg_quality)
        if not _is_integer(self.png_compression) or not 0 <= self.png_compression <= 9:
            raise fail("png_compression", "an integer in [0, 9]", self.png_compression)
        if (
            not _is_number(self.max_quarantine_fraction)
            or not 0.0 <= self.max_quarantine_fraction <= 1.0
        ):
            raise fail(
                "max_quarantine_fraction", "a number in [0, 1]", self.max_quarantine_fraction
            )
        if not _is_integer(self.batch_size) or not 1 <= self.batch_size <= 4096:
            raise fail("batch_size", "an integer in [1, 4096]", self.batch_size)
        for field in ("box_feature_prefix", "object_feature_prefix", "keypoint_feature_prefix"):
            if not isinstance(getattr(self, field), str) or not getattr(self, field):
                raise fail(field, "a feature name prefix", getattr(self, field))
        if self.box_coordinates not in BOX_COORDINATES:
            raise fail("box_coordinates", "'normalized' or 'pixels'", self.box_coordinates)
        if not _is_number(self.min_box_visibility) or not 0 <= self.min_box_visibility <= 1:
            raise fail("min_box_visibility", "a number in [0, 1]", self.min_box_visibility)
        permutation = self.keypoint_flip_permutation
        if permutation is not None and (
            not all(_is_integer(j) for j in permutation)
            or sorted(permutation) != list(range(len(permutation)))
        ):
            raise fail(
                "keypoint_flip_permutation",
                "a permutation of 0..K-1 (K keypoints per object)",
                self.keypoint_flip_permutation,
            )
        if self.label_feature is not None and (
            not isinstance(self.label_feature, str) or not self.label_feature
        ):
            raise fail("label_feature", "a feature name", self.label_feature)
        if self.copies_per_class is not None:
            if not isinstance(self.copies_per_class, Mapping) or not all(
                isinstance(k, str) and _is_number(v) and 0 <= v <= MAX_COPIES_LIMIT
                for k, v in self.copies_per_class.items()
            ):
                raise fail(
                    "copies_per_class",
                    f"a map of class label (text) -> copies in [0, {MAX_COPIES_LIMIT}]",
                    self.copies_per_class,
                )
        if self.balance not in BALANCE_MODES:
            raise fail("balance", "None or 'equal'", self.balance)
        if self.balance and self.copies_per_class is not None:
            raise fail("balance", "left unset when copies_per_class is given", self.balance)
        if (self.balance or self.copies_per_class is not None) and not self.label_feature:
            raise fail(
                "label_feature", "set when balance or copies_per_class is", self.label_feature
            )
        if not _is_integer(self.max_copies) or not 1 <= self.max_copies <= MAX_COPIES_LIMIT:
            raise fail("max_copies", f"an integer in [1, {MAX_COPIES_LIMIT}]", self.max_copies)
        if self.balance and self.max_copies < self.num_copies:
            raise fail(
                "max_copies",
                f"at least num_copies ({self.num_copies}) when balancing",
                self.max_copies,
            )
        if not _is_integer(self.num_shards) or self.num_shards < 0:
            raise fail("num_shards", "an integer >= 0 (0: the runner decides)", self.num_shards)
        if not _is_integer(self.max_image_pixels) or self.max_image_pixels < 1:
            raise fail("max_image_pixels", "a positive integer", self.max_image_pixels)
        if self.out_of_range not in OUT_OF_RANGE_ACTIONS:
            raise fail("out_of_range", "'quarantine' or 'clip'", self.out_of_range)
        if (
            self.image_shape is not None
            and self.image_shape[0] * self.image_shape[1] > self.max_image_pixels
        ):
            # Raw pixels all have image_shape: every example would be quarantined.
            raise fail(
                "image_shape",
                f"at most max_image_pixels={self.max_image_pixels} pixels (height x width)",
                self.image_shape,
            )
        return self

    @property
    def loaded_policy(self) -> Policy:
        return load_policy(self.policy)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: dict[str, Any]) -> AugmentConfig:
        """The config of `to_dict()`, also after a JSON round trip (lists become tuples)."""
        fields = dict(fields)
        for field in (
            "splits_to_augment",
            "image_shape",
            "value_range",
            "keypoint_flip_permutation",
        ):
            if fields.get(field) is not None:
                fields[field] = tuple(fields[field])
        return cls(**fields)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AugmentConfig:
        return cls.from_dict(json.loads(text))


def canonical_policy(source: Policy | Mapping[str, Any] | str | os.PathLike) -> str:
    """The policy as a built pipeline stores it: a preset's name, anything else canonical JSON.

    A policy file is read here, once, when the pipeline is built: TFX's cache then sees an
    edited file as a new policy, and workers never read a path that may not exist for them.
    """
    if isinstance(source, str) and source.strip() in PRESETS:
        return source.strip()
    return load_policy(source).to_json()


def copy_seed(seed: int, key: bytes, copy_index: int) -> tuple[int, int]:
    """The documented seed of copy `copy_index` of the example with stable key `key`.

    SHA-256 of b"image-augment/v1|<seed>|<copy_index>|" + key; the first 16 bytes, read as two
    signed big-endian int64s, are the [2] seed the core takes. Depends on nothing but these three
    values: not on process, runner, worker, bundle, sharding or file order.
    """
    digest = hashlib.sha256(f"{SEED_SCHEME}|{seed}|{copy_index}|".encode() + key).digest()
    return (
        int.from_bytes(digest[:8], "big", signed=True),
        int.from_bytes(digest[8:16], "big", signed=True),
    )


def content_key(example_bytes_deterministic: bytes) -> bytes:
    """The stable key of an example without a key feature: the SHA-256 (hex) of the example
    serialized deterministically (feature maps in sorted order, unlike the raw input bytes)."""
    return hashlib.sha256(example_bytes_deterministic).hexdigest().encode()
