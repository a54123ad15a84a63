"""The pure augmentation core: op registry, policy, plan, seed rules, draws, geometry, augment.

TensorFlow only; imports nothing else of this package. Every door (the Keras layer, the
SavedModel, the Beam expansion, the preview) calls `core.augment` with the same plan and seeds.
"""
