"""Components of the image-augmentation project. Importing this package first tames the
environment (Keras flavour, log levels) for every entry point; see `_environment`."""

from components import _environment

_environment.configure()
