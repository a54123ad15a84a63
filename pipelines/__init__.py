"""The end-to-end pipeline: ImportExampleGen -> ImageAugment -> ... -> Trainer -> Pusher."""

from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
