"""`tfx_image_augment.layer`, as the README teaches it: `tfx_image_augment.online.layer`."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tfx_image_augment.online.layer")
