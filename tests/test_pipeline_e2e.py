"""The end-to-end pipeline: local run, serving, the multi-replica Trainer, the Vertex compile."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

import local_runner
from tests.conftest import PROJECT_ROOT
from tests.pipeline_helpers import artifacts_of_type
from tests.records import read_records


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    output = tmp_path_factory.mktemp("local_run")
    assert local_runner.main(["--output-dir", str(output), "--copies", "2"]) == 0
    return output


@pytest.mark.e2e
def test_local_runner_trains_on_augmented_digits_blesses_and_pushes(local_run, capsys):
    metadata = local_run / "metadata.sqlite"
    trainer_examples = [
        a for a in artifacts_of_type(metadata, "Examples") if "counts" in a.custom_properties
    ]
    counts = json.loads(trainer_examples[0].custom_properties["counts"].string_value)
    assert counts["train"]["examples_read"] == 300 and counts["train"]["examples_out"] == 900
    (blessing,) = artifacts_of_type(metadata, "ModelBlessing")
    assert blessing.custom_properties["blessed"].int_value == 1
    pushed = list((local_run / "serving_model").iterdir())
    assert len(pushed) == 1
    # The Trainer drew what the model saw into TensorBoard.
    (model_run,) = artifacts_of_type(metadata, "ModelRun")
    assert list(pathlib.Path(model_run.uri).glob("events.out.tfevents.*"))


@pytest.mark.e2e
def test_pushed_model_serves_raw_examples_with_augmentation_off(local_run):
    (pushed,) = list((local_run / "serving_model").iterdir())
    serve = tf.saved_model.load(str(pushed)).signatures["serving_default"]
    requests, labels = [], []
    for record in read_records(str(local_run / "data/digits/eval/*"))[:40]:
        example = tf.train.Example.FromString(record)
        labels.append(example.features.feature["label"].int64_list.value[0])
        del example.features.feature["label"]  # a client sends no label
        requests.append(example.SerializeToString())
    first = serve(examples=tf.constant(requests))["probabilities"].numpy()
    second = serve(examples=tf.constant(requests))["probabilities"].numpy()
    assert first.shape == (40, 10)
    np.testing.assert_allclose(first.sum(axis=1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(first, second)  # no randomness at serving time
    # Real predictions, not noise (the whole eval split scores ~0.95; chance is 0.1).
    assert (first.argmax(axis=1) == np.array(labels)).mean() >= 0.8


@pytest.mark.e2e
def test_online_mode_reuses_the_cache_and_trains_with_the_emitted_layer(local_run):
    assert (
        local_runner.main(
            [
                "--output-dir",
                str(local_run),
                "--copies",
                "2",
                "--mode",
                "online",
                "--train-steps",
                "120",
            ]
        )
        == 0
    )
    metadata = local_run / "metadata.sqlite"
    # ImageAugment ran once: the second run took its outputs from TFX's cache.
    assert len(artifacts_of_type(metadata, "tfx_image_augment.AugmentationModel")) == 1
    models = artifacts_of_type(metadata, "Model")
    assert len(models) == 2
    saved = tf.saved_model.load(
        str(pathlib.Path(max(models, key=lambda a: a.id).uri) / "Format-Serving")
    )
    # The emitted layer is in the model and took one step per training batch.
    (step,) = [v for v in saved.variables if v.name.startswith("augment_step")]
    assert int(step.numpy()) >= 120


@pytest.mark.e2e
def test_run_fn_trains_with_mirrored_strategy_on_two_logical_devices(local_run):
    result = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "tests/scripts/two_device_trainer.py"), str(local_run)],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "TWO_DEVICE_RUN_OK" in result.stdout
    assert "MirroredStrategy over ['/cpu:0', '/cpu:1']" in result.stderr


def test_vertex_compile_names_our_executors_dataflow_args_and_the_gpu(tmp_path):
    import kubeflow_v2_runner
    from pipelines import configs

    output = tmp_path / "pipeline.json"
    image = "us-docker.pkg.dev/p/r/tfx-image-augment:1"
    assert (
        kubeflow_v2_runner.main(
            [
                "--output",
                str(output),
                "--project",
                "p",
                "--region",
                "europe-west4",
                "--bucket",
                "gs://b",
                "--image",
                image,
                "--accelerator-count",
                "2",
            ]
        )
        == 0
    )
    spec = json.loads(output.read_text())
    text = json.dumps(spec)
    assert "tfx_image_augment.tfx_component.executor.Executor" in text
    assert "pipelines.augmented_trainer.VertexTrainerExecutor" in text
    for arg in (
        "--runner=DataflowRunner",
        "--project=p",
        "--region=europe-west4",
        "--temp_location=gs://b/tmp",
        f"--sdk_container_image={image}",
    ):
        assert arg in text, arg
    assert "NVIDIA_TESLA_T4" in text and '\\"accelerator_count\\": 2' in text
    assert image in text
    assert "tfx_image_augment.AugmentationModel" in text
    # The Vertex UI shows copies, seed and splits as ImageAugment's own (typed) parameters.
    augment = spec["pipelineSpec"]["root"]["dag"]["tasks"]["ImageAugment"]["inputs"]
    values = {k: v["runtimeValue"]["constantValue"] for k, v in augment["parameters"].items()}
    assert values["num_copies"] == {"intValue": "4"} and values["seed"] == {"intValue": "42"}
    assert values["splits_to_augment"] == {"stringValue": '["train"]'}
    assert json.loads(values["config"]["stringValue"])["policy"] == configs.POLICY


def test_both_runners_take_the_policy_from_the_pipeline_configs():
    import kubeflow_v2_runner
    from pipelines import configs

    assert kubeflow_v2_runner.parse_args([]).policy == configs.POLICY
    assert local_runner.parse_args([]).policy == configs.POLICY
