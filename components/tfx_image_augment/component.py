"""The README's `tfx_image_augment.component`: `tfx_image_augment.tfx_component.component`."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tfx_image_augment.tfx_component.component")
