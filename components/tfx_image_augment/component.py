"""The ImageAugment TFX component (its spec and artifact type live in `spec.py`)."""

from __future__ import annotations

from collections.abc import Sequence

from tfx.dsl.components.base import base_beam_component, executor_spec
from tfx.types import standard_artifacts

from tfx_image_augment import executor
from tfx_image_augment.config import AugmentConfig, canonical_policy
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

    Every other split is passed through record for record. Parameters are validated here, when
    the pipeline is built; see README "ImageAugment parameters" for each one.
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
        provenance: bool = True,
        max_quarantine_fraction: float = 0.01,
        batch_size: int = 64,
    ):
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
            provenance=provenance,
            max_quarantine_fraction=max_quarantine_fraction,
            batch_size=batch_size,
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
