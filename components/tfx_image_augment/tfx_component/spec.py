"""ImageAugment's contract with TFX: channel and parameter names, the spec, the artifact type.

As in TFX's own `standard_component_specs`, the names are module constants (`*_KEY`), used by
the component, the executor and pipelines instead of string literals.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from tfx.types import artifact, component_spec, standard_artifacts

from tfx_image_augment.offline.config import AugmentConfig

# Channels.
EXAMPLES_KEY = "examples"
AUGMENTED_EXAMPLES_KEY = "augmented_examples"
AUGMENTATION_MODEL_KEY = "augmentation_model"
# Parameters. The settings runs are told apart by have one each, so ML Metadata and the Vertex
# UI show them; the other AugmentConfig fields travel together as one JSON string.
NUM_COPIES_KEY = "num_copies"
SEED_KEY = "seed"
SPLITS_TO_AUGMENT_KEY = "splits_to_augment"
CONFIG_KEY = "config"


class AugmentationModel(artifact.Artifact):
    """The augmentation that made a dataset: policy.json, saved_model/ and preview.png."""

    # Namespaced: KFP v2 (Vertex) accepts custom artifact types only as "namespace.Name".
    TYPE_NAME = "tfx_image_augment.AugmentationModel"


class ImageAugmentSpec(component_spec.ComponentSpec):
    PARAMETERS = {
        NUM_COPIES_KEY: component_spec.ExecutionParameter(type=int),
        SEED_KEY: component_spec.ExecutionParameter(type=int),
        SPLITS_TO_AUGMENT_KEY: component_spec.ExecutionParameter(type=str),  # a JSON list
        CONFIG_KEY: component_spec.ExecutionParameter(type=str),  # the rest, a JSON object
    }
    INPUTS = {
        EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
    }
    OUTPUTS = {
        AUGMENTED_EXAMPLES_KEY: component_spec.ChannelParameter(type=standard_artifacts.Examples),
        AUGMENTATION_MODEL_KEY: component_spec.ChannelParameter(type=AugmentationModel),
    }


def exec_properties(config: AugmentConfig) -> dict[str, Any]:
    """The spec's PARAMETERS holding `config`."""
    rest = config.to_dict()
    return {
        NUM_COPIES_KEY: rest.pop("num_copies"),
        SEED_KEY: rest.pop("seed"),
        SPLITS_TO_AUGMENT_KEY: json.dumps(list(rest.pop("splits_to_augment"))),
        CONFIG_KEY: json.dumps(rest, sort_keys=True),
    }


def config_from_exec_properties(properties: Mapping[str, Any]) -> AugmentConfig:
    """The one AugmentConfig that `exec_properties` spread over the spec's PARAMETERS."""
    fields = json.loads(properties[CONFIG_KEY])
    fields["num_copies"] = properties[NUM_COPIES_KEY]
    fields["seed"] = properties[SEED_KEY]
    fields["splits_to_augment"] = json.loads(properties[SPLITS_TO_AUGMENT_KEY])
    return AugmentConfig.from_dict(fields)
