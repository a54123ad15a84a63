"""What an op is: one `OpDef` holds everything about it, so every other place derives from it.

Policy validation (fields, ranges, defaults, ordered pairs), the per-image draw table (how many
uniforms an op takes), dispatch (its matrix, pixel or mixing function), RandAugment's candidate list
(its magnitude mapping), the test strategies, the online benchmark's Keras side-by-side and
the docs' op table all read these entries. Adding an op means one entry (in `geometric.py`,
`photometric.py` or `mixing.py`) and its tests.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

GEOMETRIC = "geometric"
PHOTOMETRIC = "photometric"
MIXING = "mixing"

REQUIRED = object()


def _fmt(value: float | None) -> str:
    if value is None:
        return "inf"
    return str(int(value)) if float(value).is_integer() else str(value)


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of an op: its type, range and default (`REQUIRED` when it has none).

    `typical` narrows the range property tests and benchmarks draw from (a valid but extreme
    value, like a blur sigma of 10 on a 32-pixel image, tells a test nothing new).
    """

    kind: str  # "number", "int", "range" (two numbers, lower <= upper), "string", "ops", "weights"
    low: float | None = None
    high: float | None = None
    default: Any = None
    choices: tuple[str, ...] = ()
    low_open: bool = False  # low itself is not allowed
    typical: tuple[float, float] | None = None

    def describe(self) -> str:
        if self.kind == "string":
            return "one of " + ", ".join(repr(c) for c in self.choices)
        if self.kind == "ops":
            return "a non-empty list of ops (not one_of, randaugment or trivialaugment)"
        if self.kind == "weights":
            return "a list of positive numbers, one per op"
        left = "(" if self.low_open else "["
        bounds = f"{left}{_fmt(self.low)}, {_fmt(self.high)}]"
        if self.kind == "int":
            return f"an integer in {bounds}"
        if self.kind == "range":
            return f"a list [lower, upper] with lower <= upper, both in {bounds}"
        return f"a number in {bounds}"


# The signatures of an op's implementation. `u` is the op's own [B, draws] uniforms in [0, 1)
# (drawn per image from its node's seed); `op` reads fields by name (`op["max_degrees"]`).
MatrixFn = Callable[..., Any]  # (op, u, height, width) -> [B, 3, 3] output->input map
PixelFn = Callable[..., Any]  # (op, x, u, context) -> x; x float32 [B, H, W, C] in [0, 1]
# (op, x, partner, u, fill_value=0.0) -> (mixed x, [B] float32 share of x in it); x as for
# PixelFn, partner [B, H, W, C] likewise (an op with `partners` > 1: [B, P, H, W, C] with
# P >= partners); fill_value: what pixels no image covers get (in [0, 1]; ops that cover every
# pixel ignore it)
MixFn = Callable[..., Any]
# (op, u, height, width) -> (forward [B, T, 2, 3], window [B, T, 4]): tile t's input pixel index
# -> output map (tile 0 the image, tile k partner k) and the normalized (ymin, xmin, ymax, xmax)
# part of the output where it shows; boxes move by the one and are clipped to the other
TilesFn = Callable[..., Any]


@dataclasses.dataclass(frozen=True)
class RandAugmentSlot:
    """One candidate of RandAugment/TrivialAugment's list: its position there (part of the seed
    contract: an image's drawn op is the candidate at that position) and its fields at strength
    `level` in [0, 1]."""

    position: int
    fields_at: Callable[[float], Mapping[str, Any]]


@dataclasses.dataclass(frozen=True)
class OpDef:
    """Everything about one op.

    Attributes:
      name: the op's name in a policy.
      kind: GEOMETRIC (moves pixels, masks, boxes: `matrix`), PHOTOMETRIC (`pixels`) or
        MIXING (blends the image with a partner image: `mix`).
      summary: the docs' words for its fields (the op table in docs/policies.md).
      fields: field name -> Field (every op also takes `p`, added by the policy).
      draws: uniforms it takes per image, or a function of the op's fields.
      matrix: geometric ops: the output->input affine map per image.
      pixels: photometric ops: the colour transform of a batch.
      mix: mixing ops: the blend of each image with its partner, and the image's share.
      partners: mixing ops: partner images per image (1: MixUp, CutMix; 3: Mosaic).
      tiles: mixing ops that place whole images (scaled, no blending) and so move their boxes:
        where each tile goes; None: the op moves no targets (the core refuses them).
      ordered: (low, high) field names where low must not exceed high.
      flip_axis: flips: the image axis reversed (flip-only stages skip the warp).
      crop_box: crops: (crop_h, crop_w, y0, x0) per image (a lone crop skips the warp).
      randaugment: its slots in RandAugment's candidate list (an op may have two, e.g. one per
        axis), or () when RandAugment does not draw it.
      example: representative fields, used by tests, golden pixels and benchmarks.
      keras: (layers, fields, image size) -> the Keras 3 layers that do the same, which the
        online benchmark (benchmarks/core_ops.py) times beside ours; None when Keras has no
        counterpart.
    """

    name: str
    kind: str
    summary: str = ""
    fields: Mapping[str, Field] = dataclasses.field(default_factory=dict)
    draws: int | Callable[[Any], int] = 0
    matrix: MatrixFn | None = None
    pixels: PixelFn | None = None
    mix: MixFn | None = None
    partners: int = 1
    tiles: TilesFn | None = None
    ordered: tuple[str, str] | None = None
    flip_axis: int | None = None
    crop_box: Callable[..., Any] | None = None
    randaugment: tuple[RandAugmentSlot, ...] = ()
    example: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    keras: Callable[[Any, Mapping[str, Any], int], list] | None = None

    def num_draws(self, op: Any) -> int:
        return self.draws(op) if callable(self.draws) else self.draws


# Draw helpers of the ops' parameter functions: `u` is the batch's [B, draws] uniforms in [0, 1).
def uniform(u, index: int, low: float, high: float):
    """Draw `index` of every image mapped from [0, 1) to [low, high)."""
    return low + (high - low) * u[:, index]


def symmetric(u, index: int, limit: float):
    """Draw `index` of every image mapped from [0, 1) to [-limit, limit)."""
    return uniform(u, index, -limit, limit)
