"""The example TFX project: ImportExampleGen -> ImageAugment -> ... -> Trainer -> Pusher.

Importing it configures nothing; its entry points (the runners, and the trainer and
preprocessing modules that TFX loads) call `tfx_image_augment.environment.configure()`.
"""
