"""The stack works: real images through ImportExampleGen and StatisticsGen under LocalDagRunner."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    full_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL")
    }
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_importing_the_project_and_tfx_prints_no_warning_wall():
    result = _run_python(
        "from tfx_image_augment import environment; environment.configure()\n"
        "from tfx import v1 as tfx\n"
        "import tensorflow as tf, apache_beam, tensorflow_transform\n"
        "print(tfx.__version__ if hasattr(tfx, '__version__') else '', tf.__version__)\n"
        "import tfx as t; print(t.__version__)\n"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split()[-1] == "1.16.0"
    # Without the taming this prints ~40 lines: CUDA factories, TensorRT, FutureWarnings.
    assert result.stderr.strip() == "", result.stderr


def test_an_entry_point_decides_the_keras_flavour_before_tensorflow_loads():
    code = (
        "from tfx_image_augment import environment; environment.configure()\n"
        "import tensorflow as tf\n"
        "print(tf.keras.layers.Layer.__module__.split('.')[0])\n"
        "import os; print(os.environ['TF_USE_LEGACY_KERAS'])"
    )
    legacy = _run_python(code)
    assert legacy.returncode == 0, legacy.stderr
    assert legacy.stdout.split()[-1] == "1"
    assert legacy.stdout.split()[0] == "tf_keras"
    # A user's explicit choice wins.
    keras3 = _run_python(code, TF_USE_LEGACY_KERAS="0")
    assert keras3.returncode == 0, keras3.stderr
    assert keras3.stdout.split()[-1] == "0"
    assert keras3.stdout.split()[0] == "keras"


def test_log_level_can_be_raised_to_see_tensorflow_messages():
    result = _run_python(
        "from tfx_image_augment import environment; environment.configure()\n"
        "import tensorflow as tf; tf.constant(1)",
        IMAGE_AUGMENT_LOG_LEVEL="DEBUG",
    )
    assert result.returncode == 0, result.stderr
    assert "tensorflow" in result.stderr  # TF's C++ start-up lines are back


LIBRARY_IMPORT = """
import json, logging, os, sys, warnings
import tensorflow as tf  # what TensorFlow itself does on import is not ours to judge
def state():
    return {
        "environ": dict(os.environ),
        "warning_filters": [repr(f) for f in warnings.filters],
        "log_levels": {n: logging.getLogger(n).level for n in ("", "tensorflow", "absl")},
    }
before = state()
import tfx_image_augment
from tfx_image_augment import ImageAugmentation, augment, export_augmentation_model, load_policy
from tfx_image_augment import read_images, environment, cli, ops, plan
after = state()
print("SAME", json.dumps({k: before[k] == after[k] for k in before}))
print("LEGACY", os.environ.get("TF_USE_LEGACY_KERAS"))
print("LAYER", ImageAugmentation.__mro__[1].__module__.split(".")[0])
print("KERAS", tf.keras.layers.Layer.__module__.split(".")[0])
"""


def test_importing_the_library_changes_nothing_in_the_process():
    result = _run_python(LIBRARY_IMPORT)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert json.loads(lines["SAME"]) == {
        "environ": True,
        "warning_filters": True,
        "log_levels": True,
    }
    assert lines["LEGACY"] == "None"


@pytest.mark.parametrize("legacy, flavour", [(None, "keras"), ("1", "tf_keras")])
def test_the_layer_is_built_on_the_keras_the_user_has(legacy, flavour):
    env = {} if legacy is None else {"TF_USE_LEGACY_KERAS": legacy}
    result = _run_python(LIBRARY_IMPORT, **env)
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["LAYER"] == lines["KERAS"] == flavour


def test_the_codec_records_reader_and_preview_work_without_beam_or_tfx(tmp_path):
    path = str(tmp_path / "data.tfrecord.gz")
    result = _run_python(
        "import sys\n"
        "sys.modules['apache_beam'] = sys.modules['tfx'] = None  # as if not installed\n"
        "import numpy as np, tensorflow as tf\n"
        "from tfx_image_augment import codec, reader, records\n"
        "from tfx_image_augment.config import AugmentConfig\n"
        "from tfx_image_augment.preview import preview_from_pattern\n"
        "example = tf.train.Example()\n"
        "png = tf.io.encode_png(np.full((8, 8, 3), 90, np.uint8)).numpy()\n"
        "example.features.feature['image'].bytes_list.value.append(png)\n"
        f"with tf.io.TFRecordWriter({path!r}, 'GZIP') as writer:\n"
        "    writer.write(example.SerializeToString())\n"
        f"sheet, channels = preview_from_pattern({path!r}, AugmentConfig(num_copies=2))\n"
        "print('PREVIEW', sheet.shape[1] > sheet.shape[0], channels)\n"
    )
    assert result.returncode == 0, result.stderr
    assert "PREVIEW True 3" in result.stdout


@pytest.mark.e2e
def test_import_example_gen_and_statistics_gen_run_on_real_images(cifar_dir, tmp_path):
    from tests import pipeline_helpers

    data_root = pipeline_helpers.copy_cifar_subset(cifar_dir, tmp_path / "data", train=24, eval=8)
    outputs = pipeline_helpers.run_example_gen_and_statistics(data_root, tmp_path / "run")

    assert outputs["split_names"] == ["train", "eval"]
    assert outputs["counts"] == {"train": 24, "eval": 8}
    assert set(outputs["statistics_splits"]) == {"train", "eval"}
    assert outputs["statistics_counts"] == {"train": 24, "eval": 8}
