"""The op registry: `OPS`, name -> `OpDef`, in catalogue order (geometric, photometric, mixing).

Everything that lists ops derives from here: policy validation, the core's draw table and
dispatch, RandAugment's candidates, the test strategies, the benchmark and the docs' op table
(`tfx_image_augment.core.policy` adds the meta ops: one_of, randaugment, trivialaugment).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tfx_image_augment.core.ops.base import (
    GEOMETRIC,
    MIXING,
    PHOTOMETRIC,
    REQUIRED,
    Field,
    OpDef,
)
from tfx_image_augment.core.ops.geometric import GEOMETRIC_OPS
from tfx_image_augment.core.ops.mixing import MIXING_OPS
from tfx_image_augment.core.ops.photometric import PHOTOMETRIC_OPS

OPS: Mapping[str, OpDef] = {op.name: op for op in (*GEOMETRIC_OPS, *PHOTOMETRIC_OPS, *MIXING_OPS)}


def randaugment_specs(level: float) -> tuple[dict[str, Any], ...]:
    """RandAugment's and TrivialAugment's candidate ops at strength `level` in [0, 1], in the
    order of their slots (the order is part of the seed contract)."""
    slots = sorted(
        (slot.position, name, slot.fields_at) for name, op in OPS.items() for slot in op.randaugment
    )
    return tuple({"op": name, **fields_at(level)} for _, name, fields_at in slots)


__all__ = [
    "OPS",
    "OpDef",
    "Field",
    "REQUIRED",
    "GEOMETRIC",
    "PHOTOMETRIC",
    "MIXING",
    "randaugment_specs",
]
