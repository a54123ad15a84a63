"""The stack works: real images through ImportExampleGen and StatisticsGen under LocalDagRunner."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.conftest import PROJECT_ROOT, run_python


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return run_python(code, unset=("TF_USE_LEGACY_KERAS", "TF_CPP_MIN_LOG_LEVEL"), **env)


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


@pytest.mark.e2e
def test_import_example_gen_and_statistics_gen_run_on_real_images(cifar_dir, tmp_path):
    from tests import pipeline_helpers

    data_root = pipeline_helpers.copy_cifar_subset(cifar_dir, tmp_path / "data", train=24, eval=8)
    outputs = pipeline_helpers.run_example_gen_and_statistics(data_root, tmp_path / "run")

    assert outputs["split_names"] == ["train", "eval"]
    assert outputs["counts"] == {"train": 24, "eval": 8}
    assert set(outputs["statistics_splits"]) == {"train", "eval"}
    assert outputs["statistics_counts"] == {"train": 24, "eval": 8}


def test_a_multi_processing_cli_run_prints_only_its_own_lines(tmp_path):
    """Beam's worker processes start their own TensorFlow and Google client libraries; the
    CLI's environment (inherited by the workers) keeps their warnings and C++ lines out."""
    import tensorflow as tf

    from pipelines.data import image_example
    from tests import images as real
    from tests.records import write_records

    digits, labels = real.digits(32)
    write_records(
        tmp_path / "in.tfrecord",
        [image_example(tf.io.encode_png(digits[i]).numpy(), labels[i], f"d{i}") for i in range(12)],
    )
    # This test process has configured itself; the CLI must do it on its own.
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONWARNINGS", "TF_CPP_MIN_LOG_LEVEL", "GRPC_VERBOSITY")
    }
    command = [sys.executable, "-m", "tfx_image_augment.cli", "run", "--copies", "2"]
    command += ["--input", str(tmp_path / "in.tfrecord"), "--output", str(tmp_path / "out")]
    command += ["--", "--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    result = subprocess.run(
        command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "12 examples in -> 36 out" in result.stdout
    for noise in ("FutureWarning", "absl", "tensorflow/", "WARNING:apache_beam", "cuda"):
        assert noise not in result.stderr, result.stderr
    # What is left is the CLI's own progress line(s): "HH:MM:SS image-augment: ...".
    assert result.stderr.strip(), "the CLI's own progress line is missing"
    for line in result.stderr.strip().splitlines():
        assert re.match(r"\d\d:\d\d:\d\d image[-_]augment: ", line), result.stderr
