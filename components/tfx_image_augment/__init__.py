"""Seeded, stateless image augmentation for TFX: one core behind two doors (Beam and Keras).

Public API (each name is imported on first use, so `import tfx_image_augment` loads nothing
and changes nothing in your process: no TensorFlow, no environment variables, no log levels):
  ImageAugmentation            the Keras layer (online); base install, TensorFlow only
  Policy, PolicyError, load_policy, PRESETS, OPS (the op registry)
  augment, augment_targets     the pure core: augment(images, seeds, policy), and with boxes,
                               keypoints and masks
  export_augmentation_model    policy.json + a portable SavedModel
  read_images, read_detection  augmented TFRecords back as a tf.data.Dataset
  ImageAugment                 the TFX component (offline, through Beam); extra `[tfx]`

Entry points (CLIs, runners, trainer modules) that want this project's Keras flavour and quiet
logs call `tfx_image_augment.environment.configure()` before TensorFlow loads.
"""

from __future__ import annotations

import importlib
import sys

__version__ = "0.3.0"

# public name -> the module that defines it
_EXPORTS = {
    "augment": "core.augment",
    "augment_targets": "core.augment",
    "Policy": "core.policy",
    "PolicyError": "core.policy",
    "load_policy": "core.policy",
    "PRESETS": "core.policy",
    "OPS": "core.ops",
    "ImageAugmentation": "online.layer",
    "batch_seeds": "online.layer",
    "export_augmentation_model": "online.export",
    "load_exported_policy": "online.export",
    "read_images": "io.reader",
    "read_detection": "io.reader",
}
# Need the `[tfx]` extra; not in __all__, so `import *` works on a base install.
_TFX_EXPORTS = {
    "ImageAugment": "tfx_component.component",
    "AugmentationModel": "tfx_component.spec",
}
# Submodules reachable as attributes after `import tfx_image_augment` (imported on first use),
# e.g. `tfx_image_augment.environment.configure()`.
_SUBMODULES = frozenset(
    {"environment", "core", "online", "io", "offline", "cli", "tfx_component"}
    | {"reader", "spec", "policy", "layer", "export", "component"}
)


def _register_with_a_loaded_keras() -> None:
    """Keras finds a saved layer's class only in its registry, which importing the layer's
    module fills. Where Keras is loaded already, that import loads nothing new and changes
    nothing else, so it happens here: `keras.saving.load_model("m.keras")` then works after
    `import tfx_image_augment`. Where Keras is not loaded, importing this package loads nothing
    (then `from tfx_image_augment import ImageAugmentation` before loading)."""
    if "keras" in sys.modules or "tf_keras" in sys.modules:
        importlib.import_module(f"{__name__}.online.layer")


_register_with_a_loaded_keras()


def __getattr__(name: str):
    if name in _EXPORTS:
        module = importlib.import_module(f"{__name__}.{_EXPORTS[name]}")
        return getattr(module, name)
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    if name in _TFX_EXPORTS:
        try:
            module = importlib.import_module(f"{__name__}.{_TFX_EXPORTS[name]}")
        except ImportError as err:
            raise ImportError(
                f"tfx_image_augment.{name} needs TFX: pip install 'tfx-image-augment[tfx]' ({err})"
            ) from err
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__():
    return sorted([*globals(), *_EXPORTS, *_TFX_EXPORTS])


__all__ = ["__version__", *_EXPORTS]
