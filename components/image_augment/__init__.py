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

__all__ = ["ImageAugmentation", "Policy", "PolicyError", "load_policy", "PRESETS", "augment",
           "batch_seeds", "export_augmentation_model", "load_exported_policy"]
