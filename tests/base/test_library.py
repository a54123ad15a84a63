"""The library as a user installs it: one top-level package, TensorFlow only, no side effects.

Runs in both of `make test`'s environments (the TFX 1.16 stack and the newest TensorFlow with
Keras 3 and no TFX).
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import zipfile

import pytest

from tests.conftest import PROJECT_ROOT, run_python


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess:
    return run_python(code, **env)


def _findings(result: subprocess.CompletedProcess) -> dict[str, str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)


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
from tfx_image_augment import read_images, environment
import tfx_image_augment.cli.commands, tfx_image_augment.core.plan, tfx_image_augment.core.ops
import tfx_image_augment.offline.config, tfx_image_augment.offline.preview
after = state()
print("SAME", json.dumps({k: before[k] == after[k] for k in before}))
print("LEGACY", os.environ.get("TF_USE_LEGACY_KERAS"))
print("LAYER", ImageAugmentation.__mro__[1].__module__.split(".")[0])
print("KERAS", tf.keras.layers.Layer.__module__.split(".")[0])
"""


def test_importing_the_library_changes_nothing_in_the_process():
    lines = _findings(_run_python(LIBRARY_IMPORT))
    assert json.loads(lines["SAME"]) == {
        "environ": True,
        "warning_filters": True,
        "log_levels": True,
    }
    assert lines["LEGACY"] == "None"


HAS_TF_KERAS = importlib.util.find_spec("tf_keras") is not None


@pytest.mark.parametrize(
    "legacy, flavour",
    [
        (None, "keras"),
        pytest.param(
            "1",
            "tf_keras",
            marks=pytest.mark.skipif(not HAS_TF_KERAS, reason="tf_keras is not installed"),
        ),
    ],
)
def test_the_layer_is_built_on_the_keras_the_user_has(legacy, flavour):
    env = {} if legacy is None else {"TF_USE_LEGACY_KERAS": legacy}
    lines = _findings(_run_python(LIBRARY_IMPORT, **env))
    assert lines["LAYER"] == lines["KERAS"] == flavour


def test_an_entry_point_without_tf_keras_keeps_keras_3():
    # configure() asks for tf_keras only where it is installed (the TFX stack).
    lines = _findings(
        _run_python(
            "from tfx_image_augment import environment; environment.configure()\n"
            "import importlib.util, os, tensorflow as tf\n"
            "print('HAS', importlib.util.find_spec('tf_keras') is not None)\n"
            "print('KERAS', tf.keras.layers.Layer.__module__.split('.')[0])\n"
        )
    )
    assert lines["KERAS"] == ("tf_keras" if lines["HAS"] == "True" else "keras")


def test_the_wheel_holds_one_top_level_package(tmp_path):
    import setuptools

    if int(setuptools.__version__.split(".")[0]) < 68:
        pytest.skip(
            f"building needs setuptools >= 68; this environment has {setuptools.__version__}"
        )
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(PROJECT_ROOT),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (wheel,) = tmp_path.glob("tfx_image_augment-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"tfx_image_augment"}
    assert "tfx_image_augment/core/ops/geometric.py" in names
    assert "tfx_image_augment/offline/beam/transforms.py" in names
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    requires = [line for line in text.splitlines() if line.startswith("Requires-Dist:")]
    base = [r for r in requires if "extra ==" not in r]
    assert sorted(r.split()[1].split(">")[0].split("=")[0] for r in base) == ["numpy", "tensorflow"]
    # [beam] runs locally without Google Cloud's clients; [gcp] adds them (gs://, Dataflow).
    extras = {}
    for r in requires:
        if "extra ==" in r:
            spec, extra = r.split(":", 1)[1].split(";")
            extras.setdefault(extra.split("==")[1].strip().strip("\"'"), []).append(spec.strip())
    # tqdm draws the progress bar, google-crc32c the records' CRCs in C: neither is a cloud client.
    assert extras["beam"] == ["apache-beam>=2.59", "tqdm", "google-crc32c"]
    assert extras["gcp"] == ["apache-beam[gcp]>=2.59"]
    assert any(spec.startswith("apache-beam[gcp]") for spec in extras["tfx"])


def test_the_codec_records_reader_and_preview_work_without_beam_or_tfx(tmp_path):
    path = str(tmp_path / "data.tfrecord.gz")
    result = _run_python(
        "import sys\n"
        "sys.modules['apache_beam'] = sys.modules['tfx'] = None  # as if not installed\n"
        "import numpy as np, tensorflow as tf\n"
        "from tfx_image_augment.io import codec, reader, records\n"
        "from tfx_image_augment.offline.config import AugmentConfig\n"
        "from tfx_image_augment.offline.preview import preview_from_pattern\n"
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


def test_star_import_needs_no_tfx():
    # In the base environment (no TFX) this is the real check; the TFX names stay reachable by
    # attribute where TFX is installed, and say which extra they need where it is not.
    result = _run_python(
        "import sys\n"
        "sys.modules['tfx'] = None  # as if not installed\n"
        "from tfx_image_augment import *\n"
        "import tfx_image_augment\n"
        "print('OPS', len(OPS))\n"
        "try:\n"
        "    tfx_image_augment.ImageAugment\n"
        "except ImportError as err:\n"
        "    print('TFX', err)\n"
    )
    lines = _findings(result)
    assert int(lines["OPS"]) >= 20
    assert "pip install 'tfx-image-augment[tfx]'" in lines["TFX"]
