"""Running the ImageAugment executor directly (TFX's executor-test shape) on real TFRecords."""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils, standard_artifacts
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.tfx_component.executor import Executor
from tfx_image_augment.tfx_component.spec import (
    AUGMENTATION_MODEL_KEY,
    AUGMENTED_EXAMPLES_KEY,
    EXAMPLES_KEY,
    AugmentationModel,
    exec_properties,
)

from tests.records import write_records


def examples_artifact(
    root: pathlib.Path, splits: dict[str, list[bytes]], files_per_split: int = 1, gzip: bool = False
):
    """An Examples artifact at `root` holding `splits` in `files_per_split` files each."""
    for name, records in splits.items():
        for f in range(files_per_split):
            suffix = ".gz" if gzip else ""
            write_records(
                root / f"Split-{name}" / f"data_{f:03d}.tfrecord{suffix}",
                records[f::files_per_split],
                gzip=gzip,
            )
    examples = standard_artifacts.Examples()
    examples.uri = str(root)
    examples.split_names = artifact_utils.encode_split_names(list(splits))
    examples.span = 3
    examples.version = 1
    examples_utils.set_payload_format(examples, 6)  # FORMAT_TF_EXAMPLE
    return examples


def run_executor(
    examples,
    out_root: pathlib.Path,
    config: AugmentConfig,
    beam_args: Sequence[str] = ("--direct_num_workers=1",),
):
    augmented = standard_artifacts.Examples()
    augmented.uri = str(out_root / "augmented")
    model = AugmentationModel()
    model.uri = str(out_root / "model")
    context = base_beam_executor.BaseBeamExecutor.Context(beam_pipeline_args=list(beam_args))
    Executor(context).Do(
        {EXAMPLES_KEY: [examples]},
        {AUGMENTED_EXAMPLES_KEY: [augmented], AUGMENTATION_MODEL_KEY: [model]},
        exec_properties(config),
    )
    return augmented, model


def counts(artifact) -> dict:
    return json.loads(artifact.get_string_custom_property("counts"))
