"""ImageAugment as a TFX component: build-time validation and a real LocalDagRunner run."""

from __future__ import annotations

import json

import pytest
import tensorflow as tf
from tfx import v1 as tfx
from tfx_image_augment import AugmentationModel, ImageAugment, PolicyError, load_policy
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.tfx_component.spec import (
    AUGMENTATION_MODEL_KEY,
    AUGMENTED_EXAMPLES_KEY,
    CONFIG_KEY,
    EXAMPLES_KEY,
    NUM_COPIES_KEY,
    SEED_KEY,
    SPLITS_TO_AUGMENT_KEY,
    ImageAugmentSpec,
    config_from_exec_properties,
)

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
        # Python's True is an int: a bool is refused where a count or a number is meant.
        ({"num_copies": True}, "'num_copies' must be an integer >= 1; got True."),
        ({"seed": False}, "'seed' must be an integer in [-2**63, 2**63 - 1]; got False."),
        ({"seed": 1.0}, "'seed' must be an integer in [-2**63, 2**63 - 1]; got 1.0."),
        (
            {"seed": 2**63},
            "'seed' must be an integer in [-2**63, 2**63 - 1]; got 9223372036854775808.",
        ),
        ({"jpeg_quality": True}, "'jpeg_quality' must be an integer in [1, 100]; got True."),
        ({"jpeg_quality": 90.5}, "'jpeg_quality' must be an integer in [1, 100]; got 90.5."),
        ({"jpeg_quality": "95"}, "'jpeg_quality' must be an integer in [1, 100]; got '95'."),
        ({"png_compression": 10}, "'png_compression' must be an integer in [0, 9]; got 10."),
        ({"batch_size": True}, "'batch_size' must be an integer in [1, 4096]; got True."),
        ({"batch_size": 32.0}, "'batch_size' must be an integer in [1, 4096]; got 32.0."),
        ({"batch_size": "64"}, "'batch_size' must be an integer in [1, 4096]; got '64'."),
        (
            {"max_quarantine_fraction": "0.5"},
            "'max_quarantine_fraction' must be a number in [0, 1]; got '0.5'.",
        ),
        ({"max_image_pixels": 0}, "'max_image_pixels' must be an integer >= 1; got 0."),
        (
            {"max_image_pixels": 1e6},
            "'max_image_pixels' must be an integer >= 1; got 1000000.0.",
        ),
        ({"out_of_range": "wrap"}, "'out_of_range' must be 'quarantine' or 'clip'; got 'wrap'."),
        (
            {"image_shape": [8000, 8000, 3]},
            "'image_shape' must be at most max_image_pixels=50000000 pixels (height x width); "
            "got (8000, 8000, 3).",
        ),
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
    assert set(component.outputs) == {AUGMENTED_EXAMPLES_KEY, AUGMENTATION_MODEL_KEY}


def test_channel_names_are_the_documented_ones():
    # Pipelines wire these names (README); renaming one breaks every pipeline that uses it.
    assert (EXAMPLES_KEY, AUGMENTED_EXAMPLES_KEY, AUGMENTATION_MODEL_KEY) == (
        "examples",
        "augmented_examples",
        "augmentation_model",
    )
    assert set(ImageAugmentSpec.INPUTS) == {EXAMPLES_KEY}


def test_the_artifact_type_keeps_its_name_and_its_old_import_path():
    from tfx_image_augment.tfx_component import component, spec

    assert component.AugmentationModel is spec.AugmentationModel is AugmentationModel
    assert AugmentationModel.TYPE_NAME == "tfx_image_augment.AugmentationModel"


def test_copies_seed_and_splits_are_execution_parameters_of_their_own():
    parameters = ImageAugmentSpec.PARAMETERS
    assert parameters[NUM_COPIES_KEY].type is int and parameters[SEED_KEY].type is int
    assert parameters[SPLITS_TO_AUGMENT_KEY].type is str and parameters[CONFIG_KEY].type is str
    component = ImageAugment(
        examples=_examples_channel(),
        policy="light",
        num_copies=3,
        seed=11,
        splits_to_augment=["train", "extra"],
        batch_size=16,
    )
    properties = component.exec_properties
    assert properties[NUM_COPIES_KEY] == 3 and properties[SEED_KEY] == 11
    assert properties[SPLITS_TO_AUGMENT_KEY] == '["train", "extra"]'
    rest = json.loads(properties[CONFIG_KEY])
    assert {"num_copies", "seed", "splits_to_augment"}.isdisjoint(rest)
    assert rest["batch_size"] == 16
    # The executor rebuilds exactly the config the component validated.
    assert config_from_exec_properties(properties) == AugmentConfig(
        policy="light", num_copies=3, seed=11, splits_to_augment=("train", "extra"), batch_size=16
    )


def _stored_policy(policy) -> str:
    component = ImageAugment(examples=_examples_channel(), policy=policy)
    return json.loads(component.exec_properties[CONFIG_KEY])["policy"]


def test_a_policy_file_is_read_when_the_pipeline_is_built(tmp_path):
    path = tmp_path / "my_policy.json"
    path.write_text(json.dumps({"version": 1, "ops": [{"op": "rotate", "max_degrees": 10}]}))
    before = ImageAugment(examples=_examples_channel(), policy=str(path)).exec_properties
    path.write_text(json.dumps({"version": 1, "ops": [{"op": "rotate", "max_degrees": 20}]}))
    after = ImageAugment(examples=_examples_channel(), policy=str(path)).exec_properties
    # An edited file is a new exec property, so TFX's cache does not reuse the old outputs.
    assert before[CONFIG_KEY] != after[CONFIG_KEY]
    assert json.loads(after[CONFIG_KEY])["policy"] == (
        '{"fill_mode":"reflect","fill_value":0.0,'
        '"ops":[{"max_degrees":20.0,"op":"rotate","p":1.0}],"version":1}'
    )
    for properties in (before, after):
        assert "my_policy" not in json.dumps(properties)  # workers never look for the file


def test_presets_are_stored_by_name_and_other_policies_as_canonical_json():
    assert _stored_policy(" no-flip ") == "no-flip"
    short = {"ops": [{"op": "rotate", "max_degrees": 10}], "version": 1}
    spelled_out = {
        "version": 1,
        "fill_mode": "reflect",
        "fill_value": 0,
        "ops": [{"p": 1, "max_degrees": 10.0, "op": "rotate"}],
    }
    stored = _stored_policy(short)
    assert stored == load_policy(short).to_json()
    assert _stored_policy(json.dumps(short)) == stored
    assert _stored_policy(spelled_out) == stored  # one policy, one cache key
    assert load_policy(stored).fingerprint == load_policy(short).fingerprint


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
    statistics = tfx.components.StatisticsGen(examples=augment.outputs[AUGMENTED_EXAMPLES_KEY])
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
    # ML Metadata shows the settings runs are told apart by, each on its own.
    (execution,) = ph.executions_of_type(
        metadata, "tfx_image_augment.tfx_component.component.ImageAugment"
    )
    properties = {**execution.custom_properties, **execution.properties}
    assert properties[NUM_COPIES_KEY].int_value == 2 and properties[SEED_KEY].int_value == 7
    assert properties[SPLITS_TO_AUGMENT_KEY].string_value == '["train"]'
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
