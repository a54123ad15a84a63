"""`tfx_image_augment.export`, as the README teaches it: `tfx_image_augment.online.export`."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tfx_image_augment.online.export")
