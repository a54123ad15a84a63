"""`tfx_image_augment.policy`, as the README teaches it: `tfx_image_augment.core.policy`."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tfx_image_augment.core.policy")
