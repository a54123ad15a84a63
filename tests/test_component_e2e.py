"""ImageAugment as a TFX component: build-time validation and a real LocalDagRunner run."""

from __future__ import annotations

import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx_image_augment import AugmentationModel, ImageAugment, PolicyError

from tests import pipeline_helpers as ph


def _examples_channel():
    from tfx.types import channel_utils, standard_artifacts

    return channel_utils.as_channel([standard_artifacts.Examples()])


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"num_copies": 0}, "'num_copies' must be an integer >= 1"),
        ({"policy": "heavy"}, "Unknown policy 'heavy'"),
        ({"policy": {"version": 1, "ops": [{"op": "rotate"}]}}, "'max_degrees' is missing"),
        ({"output_format": "webp"}, "'output_format' must be one of"),
        ({"max_quarantine_fraction": 2}, "'max_quarantine_fraction' must be a number in [0, 1]"),
        ({"value_range": [0, 1]}, "given only with image_shape"),
        ({"image_shape": [28, 28, 2]}, "1, 3 or 4 channels"),
    ],
)
def test_parameters_are_validated_when_the_pipeline_is_built(kwargs, message):
    with pytest.raises((ValueError, PolicyError)) as raised:
        ImageAugment(examples=_examples_channel(), **kwargs)
    assert message in str(raised.value)


def test_component_is_a_beam_component_with_a_beam_executor_spec():
    from tfx.dsl.components.base import base_beam_component, executor_spec

    component = ImageAugment(examples=_examples_channel(), policy="light", num_copies=2)
    assert isinstance(component, base_beam_component.BaseBeamComponent)
    assert isinstance(component.executor_spec, executor_spec.BeamExecutorSpec)
    assert set(component.outputs) == {"augmented_examples", "augmentation_model"}


@pytest.mark.e2e
def test_pipeline_import_augment_statistics_schema_validator(cifar_dir, tmp_path):
    # All 128 training images: with fewer than 100 distinct ids, SchemaGen would infer a string
    # domain for id-like features (ours, aug_source_key, and the input's own id) and flag eval.
    data_root = ph.copy_cifar_subset(cifar_dir, tmp_path / "data", train=128, eval=16)
    example_gen = ph.import_example_gen(data_root)
    augment = ImageAugment(
        examples=example_gen.outputs["examples"],
        policy="standard",
        num_copies=2,
        seed=7,
        key_feature="id",
    )
    statistics = tfx.components.StatisticsGen(examples=augment.outputs["augmented_examples"])
    schema = tfx.components.SchemaGen(
        statistics=statistics.outputs["statistics"], exclude_splits=["eval"]
    )  # inferred from train only
    validator = tfx.components.ExampleValidator(
        statistics=statistics.outputs["statistics"], schema=schema.outputs["schema"]
    )
    metadata = ph.run_local(
        [example_gen, augment, statistics, schema, validator], tmp_path / "run", name="augment-e2e"
    )

    examples = [a for a in ph.artifacts_of_type(metadata, "Examples") if "ImageAugment" in a.uri]
    assert len(examples) == 1
    assert ph.split_names(examples[0]) == ["train", "eval"]
    assert len(ph.read_records(f"{examples[0].uri}/Split-train/*")) == 128 * 3
    assert len(ph.read_records(f"{examples[0].uri}/Split-eval/*")) == 16
    (model,) = ph.artifacts_of_type(metadata, AugmentationModel.TYPE_NAME)
    assert tf.io.gfile.exists(f"{model.uri}/saved_model/saved_model.pb")
    assert tf.io.gfile.exists(f"{model.uri}/preview.png")

    (anomalies,) = ph.artifacts_of_type(metadata, "ExampleAnomalies")
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    for split in ("train", "eval"):
        result = anomalies_pb2.Anomalies.FromString(
            tf.io.gfile.GFile(f"{anomalies.uri}/Split-{split}/SchemaDiff.pb", "rb").read()
        )
        assert not result.anomaly_info, f"{split}: {dict(result.anomaly_info)}"
