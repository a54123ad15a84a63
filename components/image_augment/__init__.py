"""Seeded, stateless image augmentation for TFX: one core behind two doors (Beam and Keras).

Public API:
  ImageAugmentation            the Keras layer (online)
  Policy, PolicyError, load_policy, PRESETS
  augment                      the pure core: augment(images, seeds, policy)
  export_augmentation_model    policy.json + a portable SavedModel
  ImageAugment                 the TFX component (offline, through Beam)
"""

from components.image_augment.core import augment
from components.image_augment.export import export_augmentation_model, load_exported_policy
from components.image_augment.layer import ImageAugmentation, batch_seeds
from components.image_augment.policy import PRESETS, Policy, PolicyError, load_policy


def __getattr__(name):
    # The TFX component pulls in TFX and Beam; import it only when asked for, so the layer and
    # the core stay light for training jobs that never touch the pipeline.
    if name in ("ImageAugment", "AugmentationModel"):
        from components.image_augment import component

        return getattr(component, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "ImageAugment",
    "AugmentationModel",
    "ImageAugmentation",
    "Policy",
    "PolicyError",
    "load_policy",
    "PRESETS",
    "augment",
    "batch_seeds",
    "export_augmentation_model",
    "load_exported_policy",
]
