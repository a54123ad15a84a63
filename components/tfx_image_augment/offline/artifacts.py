"""The `augmentation_model` artifact that every offline run writes beside its data."""

from __future__ import annotations

import os

from tfx_image_augment.io.killpoints import killpoint
from tfx_image_augment.offline.preview import PREVIEW_FILE, preview_from_pattern, write_png


def write_augmentation_model(model_dir: str, input_pattern: str, config) -> None:
    """policy.json and saved_model/ for the data's channel count, and preview.png drawn from
    `input_pattern` (left out when nothing there decodes)."""
    from tfx_image_augment.online.export import export_augmentation_model

    sheet, channels = preview_from_pattern(input_pattern, config)
    export_augmentation_model(
        config.loaded_policy,
        config.seed,
        model_dir,
        channels=channels or 3,
        min_box_visibility=config.min_box_visibility,
        keypoint_flip_permutation=config.keypoint_flip_permutation,
        boxes_from_masks=config.boxes_from_masks,
    )
    killpoint("model-export")
    if sheet is not None:
        write_png(os.path.join(model_dir, PREVIEW_FILE), sheet)
