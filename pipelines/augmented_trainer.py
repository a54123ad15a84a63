"""A Trainer that also takes the `augmentation_model` artifact through a channel.

Why this wiring: the standard Trainer has no input for an augmentation artifact, and passing
its URI through `custom_config` would hard-code a path and hide the dependency from ML Metadata.
This component is the standard Trainer (same spec, same executor, same `run_fn` contract) plus
one optional input channel; its executor hands the artifact's URI to `run_fn` as
`fn_args.custom_config["augmentation_model_uri"]`. MLMD records the Trainer as a consumer of
the augmentation model, and the Vertex variant ships the same executor to the training job.
"""

from __future__ import annotations

from typing import Any

from tfx.components.trainer import executor as trainer_executor
from tfx.dsl.components.base import base_component, executor_spec
from tfx.extensions.google_cloud_ai_platform.trainer import executor as vertex_executor
from tfx.proto import trainer_pb2
from tfx.types import artifact_utils, component_spec, standard_artifacts
from tfx.types import standard_component_specs as specs
from tfx.utils import json_utils
from tfx_image_augment.tfx_component.spec import AUGMENTATION_MODEL_KEY, AugmentationModel

AUGMENTATION_URI_CONFIG_KEY = "augmentation_model_uri"


class AugmentedTrainerSpec(specs.TrainerSpec):
    INPUTS = {
        **specs.TrainerSpec.INPUTS,
        AUGMENTATION_MODEL_KEY: component_spec.ChannelParameter(
            type=AugmentationModel, optional=True
        ),
    }


class TrainerExecutor(trainer_executor.GenericExecutor):
    """The standard generic Trainer executor, telling run_fn where the augmentation lives."""

    def _GetFnArgs(self, input_dict, output_dict, exec_properties):
        fn_args = super()._GetFnArgs(input_dict, output_dict, exec_properties)
        if input_dict.get(AUGMENTATION_MODEL_KEY):
            fn_args.custom_config = dict(fn_args.custom_config or {})
            fn_args.custom_config[AUGMENTATION_URI_CONFIG_KEY] = artifact_utils.get_single_uri(
                input_dict[AUGMENTATION_MODEL_KEY]
            )
        return fn_args


class VertexTrainerExecutor(vertex_executor.GenericExecutor):
    """Runs `TrainerExecutor` as a Vertex AI custom job."""

    def _GetExecutorClass(self):
        return TrainerExecutor


class AugmentedTrainer(base_component.BaseComponent):
    """tfx.components.Trainer with an optional `augmentation_model` input channel."""

    SPEC_CLASS = AugmentedTrainerSpec
    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(TrainerExecutor)

    def __init__(
        self,
        examples,
        transform_graph,
        schema,
        run_fn: str,
        augmentation_model=None,
        train_args: trainer_pb2.TrainArgs | None = None,
        eval_args: trainer_pb2.EvalArgs | None = None,
        custom_config: dict[str, Any] | None = None,
    ):
        from tfx import types

        spec = AugmentedTrainerSpec(
            examples=examples,
            transform_graph=transform_graph,
            schema=schema,
            augmentation_model=augmentation_model,
            train_args=train_args or trainer_pb2.TrainArgs(),
            eval_args=eval_args or trainer_pb2.EvalArgs(),
            run_fn=run_fn,
            custom_config=json_utils.dumps(custom_config or {}),
            model=types.Channel(type=standard_artifacts.Model),
            model_run=types.Channel(type=standard_artifacts.ModelRun),
        )
        super().__init__(spec=spec)


class VertexAugmentedTrainer(AugmentedTrainer):
    """The same Trainer, run as a Vertex AI custom job (GPU as configured)."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(VertexTrainerExecutor)
