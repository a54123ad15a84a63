"""The end-to-end pipeline: ImportExampleGen -> ImageAugment -> ... -> Trainer -> Pusher."""

import components  # noqa: F401  (tames the environment before TensorFlow loads)
