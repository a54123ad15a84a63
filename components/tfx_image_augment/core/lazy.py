"""TensorFlow, imported on first use: the op registry and policy validation need no TensorFlow
until an op runs, so a CLI can check a policy in milliseconds, before TensorFlow loads."""

from __future__ import annotations

import importlib


class _LazyModule:
    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        module = importlib.import_module(self._name)
        return getattr(module, attribute)


tf = _LazyModule("tensorflow")
