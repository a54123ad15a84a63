"""`image-augment`, the command line (`[beam]` extra for `run`)."""

from tfx_image_augment.cli.commands import main

__all__ = ["main"]
