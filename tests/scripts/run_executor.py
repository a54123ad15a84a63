"""Runs the ImageAugment executor once, in a process of its own, so a test can stop it (see
tfx_image_augment.io.killpoints) and look at what it left:

    python -m tests.scripts.run_executor IN_ROOT OUT_ROOT

IN_ROOT holds an Examples artifact's Split-train/ and Split-eval/ folders; the outputs go to
OUT_ROOT/augmented and OUT_ROOT/model (as tests.executor_helpers.run_executor lays them out).
"""

import pathlib
import sys

from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow

from tfx.components.util import examples_utils  # noqa: E402
from tfx.types import artifact_utils, standard_artifacts  # noqa: E402
from tfx_image_augment.offline.config import AugmentConfig  # noqa: E402

from tests.executor_helpers import run_executor  # noqa: E402

CONFIG = AugmentConfig(policy="no-flip", num_copies=2, seed=3, key_feature="id")


def main(in_root: str, out_root: str) -> None:
    examples = standard_artifacts.Examples()
    examples.uri = in_root
    examples.split_names = artifact_utils.encode_split_names(["train", "eval"])
    examples_utils.set_payload_format(examples, 6)  # FORMAT_TF_EXAMPLE
    run_executor(examples, pathlib.Path(out_root), CONFIG)


if __name__ == "__main__":
    main(*sys.argv[1:])
