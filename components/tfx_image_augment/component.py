"""The ImageAugment TFX component (its spec and artifact type live in `spec.py`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from tfx_image_augment import executor
from tfx_image_augment.config import DEFAULT_MAX_IMAGE_PIXELS, AugmentConfig, canonical_policy
from tfx_image_augment.spec import (  # noqa: F401 (AugmentationModel: re-exported)
    AUGMENTATION_MODEL_KEY,
    AUGMENTED_EXAMPLES_KEY,
    EXAMPLES_KEY,
    AugmentationModel,
    ImageAugmentSpec,
    exec_properties,
)


class ImageAugment(base_beam_component.BaseBeamComponent):
    """Writes K seeded augmented copies of every example of the chosen splits, through Beam.

    Every other split is passed through record for record. Parameters are validated when the
    pipeline is built; `__init__` documents each one.
    """

    SPEC_CLASS = ImageAugmentSpec
    EXECUTOR_SPEC = executor_spec.BeamExecutorSpec(executor.Executor)

    def __init__(
        self,
        examples,
        policy: str | dict = "standard",
        num_copies: int = 4,
        seed: int = 0,
        splits_to_augment: Sequence[str] = ("train",),
        include_original: bool = True,
        image_feature: str = "image",
        key_feature: str | None = None,
        mask_feature: str | None = None,
        image_shape: Sequence[int] | None = None,
        value_range: Sequence[float] | None = None,
        output_format: str = "same",
        jpeg_quality: int = 95,
        png_compression: int = 1,
        provenance: bool = True,
        max_quarantine_fraction: float = 0.01,
        batch_size: int = 1024,
        box_feature_prefix: str = "image/object/bbox/",
        object_feature_prefix: str = "image/object/",
        keypoint_feature_prefix: str = "image/object/keypoint/",
        box_coordinates: str = "normalized",
        min_box_visibility: float = 0.0,
        keypoint_flip_permutation: Sequence[int] | None = None,
        label_feature: str | None = None,
        copies_per_class: Mapping[str | int, float] | None = None,
        balance: str | None = None,
        max_copies: int = 16,
        num_shards: int = 0,
        max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
        out_of_range: str = "quarantine",
    ):
        """Builds the component; every parameter is validated here, when the pipeline is built.

        Args:
          examples: a channel of Examples (e.g. ExampleGen's `outputs["examples"]`): TFRecords
            of tf.Example, gzipped or not. Every split is read.
          policy: the augmentation policy: a preset name ("light", "standard", "no-flip",
            "randaugment", "trivialaugment", "none"), a JSON string, a dict or the path of a
            JSON file. Read now and stored as the preset's name or as canonical JSON, so TFX's
            cache sees an edited file and workers never read it.
          num_copies: K >= 1 augmented copies written per example of each augmented split.
          seed: the int64 all copies' seeds derive from: copy k of the example with stable
            key x gets `copy_seed(seed, x, k)`, wherever and however often it runs.
          splits_to_augment: the names of the splits to augment; every other split is passed
            through record for record.
          include_original: also write each original, unchanged, as copy 0.
          image_feature: the feature holding the image: PNG, JPEG, GIF or BMP bytes, or raw
            pixels (with `image_shape`). A 16-bit PNG stays 16-bit: its copies are 16-bit PNGs.
            An animated GIF or PNG is quarantined (`image_animated`).
          key_feature: a feature holding a stable example id for the seeds (its first value);
            None uses the SHA-256 of the example. Examples of augmented splits lacking it are
            quarantined.
          mask_feature: an optional 1-channel segmentation mask (PNG or raw) that moves with
            the image's geometry (nearest sampling) and is left out of photometric ops.
          image_shape: [height, width, channels] of raw pixels stored as one bytes value, an
            int64 list or a float list; None for encoded images.
          value_range: [low, high] of raw float pixels (needs `image_shape`); default [0, 1].
          output_format: "same" keeps each copy in its input's format (raw stays raw), or
            "png" / "jpeg". A copy that would be GIF, BMP, or JPEG with alpha or 16 bits is
            written as PNG (TensorFlow writes neither GIF nor BMP; JPEG holds 8-bit colour only).
          jpeg_quality: the quality, 1-100, of copies written as JPEG.
          png_compression: the zlib level, 0-9, of copies written as PNG (lossless at any
            level; 1 is 2-4x faster to write than 6 and 1-11% larger).
          provenance: add `aug_copy_index` (0 for originals), `aug_source_key` and `aug_seed`
            (two int64s) to every written record, pass-through splits included.
          max_quarantine_fraction: the run fails when more than this fraction (0-1) of the
            augmented splits' examples is quarantined (bad records are kept whole either way).
          batch_size: at most this many copies per TensorFlow call on the workers, 1-4096. A
            call also holds at most 64 * 224 * 224 pixels (64 copies of 224x224, 1024 of
            32x32); a larger single image is augmented alone.
          box_feature_prefix: where detection boxes are: `<prefix>{ymin,xmin,ymax,xmax}`, one
            float per object (the Object Detection API's names by default). Records with these
            features have their boxes moved with the image; others are image-only.
          object_feature_prefix: every feature under it holds one value per object
            (`class/label`, `class/text`, `area`, `is_crowd`, ...); an object that leaves the
            image is dropped from all of them, so they stay aligned.
          keypoint_feature_prefix: `<prefix>{y,x}` (K per object, object-major) and optional
            `<prefix>visibility`; keypoints that leave the image keep their place with
            visibility 0, the others keep their visibility value; one given with visibility
            0 (not labelled) is written as given.
          box_coordinates: "normalized" ([0, 1]) or "pixels", for boxes and keypoints.
          min_box_visibility: drop an object whose visible fraction of its moved box falls
            below this (0-1); one with nothing left is always dropped.
          keypoint_flip_permutation: for keypoints with a handedness (left/right eye): in a
            mirrored copy, keypoint slot j takes the moved keypoint `permutation[j]`.
          label_feature: the class feature (its first value, as text): counts per class before
            and after go into the `counts` property; needed by `copies_per_class` and
            `balance`.
          copies_per_class: label -> copies per example (may be fractional: resolved per
            example from its key); unlisted classes get `num_copies`.
          balance: "equal" brings every class to the largest class's count of records (the
            largest keeps `num_copies` copies per example); counts come from the data.
          max_copies: the most copies `balance` gives one example, 1-1000.
          num_shards: output files per split (0: the runner decides).
          max_image_pixels: an encoded image whose header says width x height is above this
            positive integer is quarantined (`image_too_large`) before it is decoded, so one
            huge or decompression-bomb image cannot exhaust a worker's memory. Raw pixels:
            `image_shape` must be within it.
          out_of_range: what happens to raw float pixels outside `value_range`: "quarantine"
            (`image_out_of_range`, the default) or "clip" (clipped to the range before
            augmenting; the original is written unchanged). NaN or infinite values are always
            quarantined (`image_not_finite`).

        Raises:
          ValueError: a parameter breaks its rule; the one-sentence message names it (an
            invalid policy raises PolicyError, a ValueError).
        """
        config = AugmentConfig(
            policy=canonical_policy(policy),
            num_copies=num_copies,
            seed=seed,
            splits_to_augment=tuple(splits_to_augment),
            include_original=include_original,
            image_feature=image_feature,
            key_feature=key_feature,
            mask_feature=mask_feature,
            image_shape=tuple(image_shape) if image_shape else None,
            value_range=tuple(value_range) if value_range else None,
            output_format=output_format,
            jpeg_quality=jpeg_quality,
            png_compression=png_compression,
            provenance=provenance,
            max_quarantine_fraction=max_quarantine_fraction,
            batch_size=batch_size,
            box_feature_prefix=box_feature_prefix,
            object_feature_prefix=object_feature_prefix,
            keypoint_feature_prefix=keypoint_feature_prefix,
            box_coordinates=box_coordinates,
            min_box_visibility=min_box_visibility,
            keypoint_flip_permutation=(
                None if keypoint_flip_permutation is None else tuple(keypoint_flip_permutation)
            ),
            label_feature=label_feature,
            copies_per_class=(
                None
                if copies_per_class is None
                else {str(label): copies for label, copies in copies_per_class.items()}
            ),
            balance=balance,
            max_copies=max_copies,
            num_shards=num_shards,
            max_image_pixels=max_image_pixels,
            out_of_range=out_of_range,
        ).validate()
        spec = ImageAugmentSpec(
            **{
                EXAMPLES_KEY: examples,
                AUGMENTED_EXAMPLES_KEY: _channel(standard_artifacts.Examples),
                AUGMENTATION_MODEL_KEY: _channel(AugmentationModel),
            },
            **exec_properties(config),
        )
        super().__init__(spec=spec)


def _channel(artifact_type):
    from tfx.types import channel_utils

    return channel_utils.as_channel([artifact_type()])
