"""`tfx_image_augment.spec`, as the README teaches it: `tfx_image_augment.tfx_component.spec`."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tfx_image_augment.tfx_component.spec")
