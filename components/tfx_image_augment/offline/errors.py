"""How an offline run fails after it started (raised by the Beam expansion; no Beam needed to
catch them, so the CLI judges a failure without loading Beam)."""

from __future__ import annotations


class QuarantineLimitExceeded(RuntimeError):
    """More than `max_quarantine_fraction` of the examples were bad."""


class CorruptInputError(RuntimeError):
    """An input TFRecord file is damaged (bad CRC, truncated)."""


class EmptyInputError(ValueError):
    """The run read no example of a split it was to augment."""
