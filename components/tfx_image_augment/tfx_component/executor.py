"""The ImageAugment executor: one Beam pipeline over all splits, then the model and preview.

Its output folders are written as publish.py describes for artifact folders: whatever an earlier
attempt left in them is cleared first (the Examples marker first), the run writes into staging
folders inside them, the results are moved into place, and the Examples artifact's completion
marker (`_SUCCESS`, listing every shard) is written last. A retried execution therefore never
leaves a mix of two attempts, and readers (reader.read_images) trust only a folder with a marker.
"""

from __future__ import annotations

import json
import os
from typing import Any

from tfx.components.util import examples_utils
from tfx.dsl.components.base import base_beam_executor
from tfx.types import artifact_utils

from tfx_image_augment import environment
from tfx_image_augment.io import inputs
from tfx_image_augment.io.completion import QUARANTINE_DIR, write_marker
from tfx_image_augment.io.killpoints import killpoint
from tfx_image_augment.io.publish import (
    clear_folder,
    move_children,
    new_staging_folder,
    remove_tree,
)
from tfx_image_augment.offline.beam.run import Destination, run_offline
from tfx_image_augment.tfx_component.spec import (
    AUGMENTATION_MODEL_KEY,
    AUGMENTED_EXAMPLES_KEY,
    EXAMPLES_KEY,
    config_from_exec_properties,
)


class Executor(base_beam_executor.BaseBeamExecutor):
    """Runs the expansion through Beam, with the pipeline's `beam_pipeline_args`."""

    def Do(
        self,
        input_dict: dict[str, list],
        output_dict: dict[str, list],
        exec_properties: dict[str, Any],
    ) -> None:
        """Augments the chosen splits, passes the others through, then writes the model.

        Args:
          input_dict: `EXAMPLES_KEY`: one Examples artifact; every split of it is read.
          output_dict: `AUGMENTED_EXAMPLES_KEY`: one Examples artifact that receives every
            split (`Split-<name>/data_tfrecord-*.gz`), the quarantine (`quarantine/`), the
            completion marker (`_SUCCESS`, written last) and the run's custom properties;
            `AUGMENTATION_MODEL_KEY`: one AugmentationModel artifact that receives
            policy.json, saved_model/ and preview.png.
          exec_properties: ImageAugmentSpec's parameters (`NUM_COPIES_KEY`, `SEED_KEY`,
            `SPLITS_TO_AUGMENT_KEY`, `CONFIG_KEY`), as `spec.exec_properties` writes them.

        Raises:
          ValueError: the parameters break a rule, or `splits_to_augment` names a split the
            input does not have.
          CorruptInputError: an input TFRecord file is damaged (the message names it).
          QuarantineLimitExceeded: more than `max_quarantine_fraction` of the examples were
            quarantined (the quarantine is kept in the artifact folder, without a marker).
        """
        log = environment.progress_logger()
        config = config_from_exec_properties(exec_properties).validate()
        examples = artifact_utils.get_single_instance(input_dict[EXAMPLES_KEY])
        augmented = artifact_utils.get_single_instance(output_dict[AUGMENTED_EXAMPLES_KEY])
        model = artifact_utils.get_single_instance(output_dict[AUGMENTATION_MODEL_KEY])

        split_names = artifact_utils.decode_split_names(examples.split_names)
        unknown = sorted(set(config.splits_to_augment) - set(split_names))
        if unknown:
            raise ValueError(
                f"splits_to_augment names {unknown}, which the input Examples do "
                f"not have; its splits are {split_names}."
            )
        for name in split_names:  # before anything is written: reading a FIFO would hang
            split_glob = os.path.join(artifact_utils.get_split_uri([examples], name), "*")
            inputs.refuse_special_files(split_glob, f"the input split {name!r}")
        # Anything here is an earlier attempt's: cleared before this one writes.
        clear_folder(augmented.uri)
        clear_folder(model.uri)
        staging = new_staging_folder(augmented.uri)
        model_staging = new_staging_folder(model.uri)
        quarantine_dir = os.path.join(augmented.uri, QUARANTINE_DIR)
        policy = config.loaded_policy
        log.info(
            "ImageAugment: %d copies of %s with policy %s (%s), seed %d",
            config.num_copies,
            ", ".join(config.splits_to_augment),
            policy.name or "custom",
            policy.fingerprint[:12],
            config.seed,
        )

        def publish(marker: dict) -> None:
            killpoint("before-publish")
            move_children(model_staging, model.uri)
            move_children(staging, augmented.uri)
            killpoint("before-marker")
            write_marker(augmented.uri, marker)

        try:
            counts = run_offline(
                self._make_beam_pipeline(),
                {
                    name: os.path.join(artifact_utils.get_split_uri([examples], name), "*")
                    for name in split_names
                },
                config,
                Destination(
                    staging=staging,
                    split_dirs={name: f"Split-{name}" for name in split_names},
                    model_dir=model_staging,
                    quarantine_kept_in=quarantine_dir,
                    keep_quarantine=lambda: move_children(
                        staging, augmented.uri, only=[QUARANTINE_DIR]
                    ),
                    publish=publish,
                ),
            ).counts
        finally:
            remove_tree(staging)
            remove_tree(model_staging)

        augmented.split_names = examples.split_names
        augmented.span = examples.span
        augmented.version = examples.version
        examples_utils.set_payload_format(augmented, examples_utils.get_payload_format(examples))
        examples_utils.set_file_format(augmented, "tfrecords_gzip")
        for target in (augmented, model):
            target.set_string_custom_property("policy_fingerprint", policy.fingerprint)
            target.set_int_custom_property("seed", config.seed)
            target.set_int_custom_property("num_copies", config.num_copies)
            target.set_string_custom_property("counts", json.dumps(counts, sort_keys=True))
        augmented.set_string_custom_property("quarantine_uri", quarantine_dir)
        for name, split_counts in counts.items():
            log.info(
                "ImageAugment[%s]: %d read -> %d written, %d quarantined %s",
                name,
                split_counts["examples_read"],
                split_counts["examples_out"],
                sum(split_counts["quarantined"].values()),
                split_counts["quarantined"] or "",
            )
