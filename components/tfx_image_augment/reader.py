"""`tfx_image_augment.reader`, as the README teaches it: `tfx_image_augment.io.reader`."""

import importlib
import sys

sys.modules[__name__] = importlib.import_module("tfx_image_augment.io.reader")
