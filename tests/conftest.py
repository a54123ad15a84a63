"""Shared fixtures: where the real images live, and the environment every test runs in."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import pytest
from hypothesis import settings
from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow

# CI explores the same (derandomised) examples on every run, so a red CI means a change broke
# something; locally hypothesis keeps searching new examples.
settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    settings.load_profile("ci")

PROJECT_ROOT = pathlib.Path(__file__).resolve().parent.parent
# The example project (`pipelines/`) is not part of the installed package: subprocesses the
# tests start (scripts, Beam workers) find it through PYTHONPATH, as under `python
# local_runner.py` from the project root.
os.environ["PYTHONPATH"] = os.pathsep.join(
    p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p
)
# The CIFAR-10 sample ships beside the project in CI (../shared); a user's clone has none, so
# tests that need it skip with the reason below. IMAGE_AUGMENT_CIFAR_DIR overrides the place.
CIFAR_DIR = pathlib.Path(
    os.environ.get("IMAGE_AUGMENT_CIFAR_DIR", PROJECT_ROOT.parent / "shared/data/cifar10_sample")
)
CIFAR_MISSING = (
    f"the real CIFAR-10 sample is not at {CIFAR_DIR} (it ships beside the project as "
    "../shared/data/cifar10_sample; set IMAGE_AUGMENT_CIFAR_DIR to point elsewhere)"
)


@pytest.fixture(scope="session")
def cifar_dir() -> pathlib.Path:
    if not (CIFAR_DIR / "train").is_dir():
        pytest.skip(CIFAR_MISSING)
    return CIFAR_DIR


def run_python(code: str, unset=("TF_USE_LEGACY_KERAS",), **env: str):
    """`code` in a fresh interpreter of this environment, run from the project root, with the
    variables in `unset` removed (what a new user's shell would not have) and `env` added."""
    full_env = {k: v for k, v in os.environ.items() if k not in unset}
    full_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=PROJECT_ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=300,
    )
