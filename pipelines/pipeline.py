"""create_pipeline: ImportExampleGen -> ImageAugment -> StatisticsGen -> SchemaGen ->
ExampleValidator -> Transform -> Trainer -> Evaluator -> Pusher."""

from __future__ import annotations

from typing import Any

import tensorflow_model_analysis as tfma
from tfx import v1 as tfx
from tfx_image_augment import ImageAugment
from tfx_image_augment.tfx_component.spec import AUGMENTATION_MODEL_KEY, AUGMENTED_EXAMPLES_KEY

from pipelines import configs, features
from pipelines.augmented_trainer import AugmentedTrainer, VertexAugmentedTrainer


def create_pipeline(
    pipeline_name: str,
    pipeline_root: str,
    data_root: str,
    serving_model_dir: str,
    policy: str = configs.POLICY,
    num_copies: int = configs.NUM_COPIES,
    seed: int = configs.SEED,
    key_feature: str | None = configs.KEY_FEATURE,
    mode: str = configs.MODE,
    train_steps: int = configs.TRAIN_STEPS,
    eval_steps: int = configs.EVAL_STEPS,
    channels: int = 1,
    image_size: int = configs.IMAGE_SIZE,
    accuracy_threshold: float = configs.ACCURACY_THRESHOLD,
    training_config: dict[str, Any] | None = None,
    vertex_training_args: dict[str, Any] | None = None,
    beam_pipeline_args: list[str] | None = None,
    metadata_connection_config=None,
    enable_cache: bool = True,
) -> tfx.dsl.Pipeline:
    """The whole pipeline. With `vertex_training_args` the Trainer runs as a Vertex AI job."""
    example_gen = tfx.components.ImportExampleGen(
        input_base=data_root,
        input_config=tfx.proto.Input(
            splits=[
                tfx.proto.Input.Split(name="train", pattern="train/*"),
                tfx.proto.Input.Split(name="eval", pattern="eval/*"),
            ]
        ),
    )
    augment = ImageAugment(
        examples=example_gen.outputs["examples"],
        policy=policy,
        num_copies=num_copies,
        seed=seed,
        key_feature=key_feature,
        # A mixing policy's copies then carry their partner's label: the Trainer's soft targets.
        label_feature=features.LABEL_KEY,
    )
    augmented = augment.outputs[AUGMENTED_EXAMPLES_KEY]
    statistics = tfx.components.StatisticsGen(examples=augmented)
    schema = tfx.components.SchemaGen(
        statistics=statistics.outputs["statistics"], exclude_splits=["eval"]
    )
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    )
    preprocessing_config = {"image_size": image_size, "channels": channels}
    transform = tfx.components.Transform(
        examples=augmented,
        schema=schema.outputs["schema"],
        preprocessing_fn=configs.PREPROCESSING_FN,
        custom_config=preprocessing_config,
        materialize=False,  # the Trainer applies the graph to raw examples, as serving does
        disable_statistics=True,
    )
    custom_config = {
        "mode": mode,
        "batch_size": configs.BATCH_SIZE,
        "epochs": configs.EPOCHS,
        "learning_rate": configs.LEARNING_RATE,
        **preprocessing_config,
        **(training_config or {}),
    }
    trainer_class = AugmentedTrainer
    if vertex_training_args:
        custom_config.update(vertex_training_args)
        trainer_class = VertexAugmentedTrainer
    trainer = trainer_class(
        examples=augmented,
        transform_graph=transform.outputs["transform_graph"],
        schema=schema.outputs["schema"],
        augmentation_model=augment.outputs[AUGMENTATION_MODEL_KEY],
        run_fn=configs.RUN_FN,
        train_args=tfx.proto.TrainArgs(num_steps=train_steps),
        eval_args=tfx.proto.EvalArgs(num_steps=eval_steps),
        custom_config=custom_config,
    )
    eval_config = tfma.EvalConfig(
        model_specs=[
            tfma.ModelSpec(label_key=features.LABEL_KEY, signature_name="serving_default")
        ],
        slicing_specs=[tfma.SlicingSpec()],
        metrics_specs=[
            tfma.MetricsSpec(
                metrics=[
                    tfma.MetricConfig(
                        class_name="SparseCategoricalAccuracy",
                        threshold=tfma.MetricThreshold(
                            value_threshold=tfma.GenericValueThreshold(
                                lower_bound={"value": accuracy_threshold}
                            )
                        ),
                    ),
                    tfma.MetricConfig(class_name="ExampleCount"),
                ]
            )
        ],
    )
    evaluator = tfx.components.Evaluator(
        # The untouched eval split, straight from ExampleGen: what a user's clients send.
        examples=example_gen.outputs["examples"],
        model=trainer.outputs["model"],
        eval_config=eval_config,
        example_splits=["eval"],
    )
    pusher = tfx.components.Pusher(
        model=trainer.outputs["model"],
        model_blessing=evaluator.outputs["blessing"],
        push_destination=tfx.proto.PushDestination(
            filesystem=tfx.proto.PushDestination.Filesystem(base_directory=serving_model_dir)
        ),
    )
    return tfx.dsl.Pipeline(
        pipeline_name=pipeline_name,
        pipeline_root=pipeline_root,
        components=[
            example_gen,
            augment,
            statistics,
            schema,
            validator,
            transform,
            trainer,
            evaluator,
            pusher,
        ],
        enable_cache=enable_cache,
        metadata_connection_config=metadata_connection_config,
        beam_pipeline_args=beam_pipeline_args or [],
    )
