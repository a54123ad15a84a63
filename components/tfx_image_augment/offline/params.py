"""The offline settings, each declared once: name, kind, default, allowed values, one line of help.

`AugmentConfig` (config.py), the TFX component's parameters, the CLI's options and the docs'
parameter table are all derived from `PARAMS`; a test checks each against it. Nothing here
imports TensorFlow, so the CLI checks its arguments before TensorFlow loads.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from tfx_image_augment.core.seeds import SEED_MAX, SEED_MIN
from tfx_image_augment.io.records import (
    BOX_FEATURE_PREFIX,
    IMAGE_FEATURE,
    KEYPOINT_FEATURE_PREFIX,
    OBJECT_FEATURE_PREFIX,
)
from tfx_image_augment.io.rules import (
    DEFAULT_MAX_IMAGE_PIXELS,
    MAX_BATCH_PIXELS,
    OUT_OF_RANGE_ACTIONS,
    OUTPUT_FORMATS,
)

BOX_COORDINATES = ("normalized", "pixels")
BALANCE_MODES = (None, "equal")
MAX_COPIES_LIMIT = 1000
MAX_BATCH_SIZE = 4096
# Which CLI commands offer a setting.
RUN, PREVIEW = "run", "preview"
BOTH = (RUN, PREVIEW)


def is_integer(value: Any) -> bool:
    """Whether a parameter value is an integer (a bool is not)."""
    return isinstance(value, int) and not isinstance(value, bool)  # True is an int in Python


def is_number(value: Any) -> bool:
    """Whether a parameter value is an int or a float (a bool is neither)."""
    return is_integer(value) or isinstance(value, float)


@dataclasses.dataclass(frozen=True)
class Param:
    """One offline setting.

    kind: how its value is checked and parsed from the command line: "policy", "int", "number",
      "bool", "choice", "feature" (a feature name, None allowed), "prefix" (a non-empty text),
      "splits", "shape", "range", "permutation", "class_map".
    low, high: the allowed range of an "int" or "number" (inclusive; None: unbounded).
    choices: the allowed values of a "choice".
    flag: the CLI option; a "bool" whose default is True is offered as `--no-<...>` (flag).
    commands: the CLI commands that take it (none: the CLI does not offer it, and `why_not_cli`
      says why).
    """

    name: str
    kind: str
    default: Any
    help: str
    low: float | None = None
    high: float | None = None
    choices: tuple = ()
    flag: str | None = None
    commands: tuple[str, ...] = (RUN,)
    why_not_cli: str = ""
    metavar: str | None = None

    def rule(self) -> str:
        """What a valid value is, in words (for error messages)."""
        if self.kind in ("int", "number"):
            noun = "an integer" if self.kind == "int" else "a number"
            if self.low is not None and self.high is not None:
                return f"{noun} in [{_text(self.low)}, {_text(self.high)}]"
            if self.low is not None:
                return f"{noun} >= {_text(self.low)}"
            return noun
        return _RULES[self.kind](self)

    def accepts(self, value: Any) -> bool:
        return _CHECKS[self.kind](self, value)

    def default_text(self) -> str:
        """The default as the docs' table and `--help` show it."""
        value = self.default
        if value is None:
            return "none"
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, tuple):
            return "[" + ", ".join(f'"{v}"' if isinstance(v, str) else str(v) for v in value) + "]"
        if is_integer(value) and abs(value) >= 10_000:
            return f"{value:,}"
        return str(value)


def _text(number: float) -> str:
    if number == SEED_MIN:
        return "-2**63"
    if number == SEED_MAX:
        return "2**63 - 1"
    return f"{number:g}" if isinstance(number, float) else str(number)


def _in_range(param: Param, value: Any) -> bool:
    number = is_integer(value) if param.kind == "int" else is_number(value)
    if not number:
        return False
    return (param.low is None or value >= param.low) and (param.high is None or value <= param.high)


def _shape(param: Param, value: Any) -> bool:
    if value is None:
        return True
    try:
        return (
            len(value) == 3
            and all(is_integer(d) and d > 0 for d in value)
            and value[2] in (1, 3, 4)
        )
    except TypeError:
        return False


def _value_range(param: Param, value: Any) -> bool:
    if value is None:
        return True
    try:
        return len(value) == 2 and all(is_number(v) for v in value) and value[0] < value[1]
    except TypeError:
        return False


def _permutation(param: Param, value: Any) -> bool:
    if value is None:
        return True
    try:
        return all(is_integer(j) for j in value) and sorted(value) == list(range(len(value)))
    except TypeError:
        return False


def _class_map(param: Param, value: Any) -> bool:
    return value is None or (
        isinstance(value, Mapping)
        and all(
            isinstance(k, str) and is_number(v) and 0 <= v <= MAX_COPIES_LIMIT
            for k, v in value.items()
        )
    )


_CHECKS: dict[str, Callable[[Param, Any], bool]] = {
    "policy": lambda p, v: isinstance(v, str) and bool(v.strip()),
    "int": _in_range,
    "number": _in_range,
    "bool": lambda p, v: isinstance(v, bool),
    "choice": lambda p, v: v in p.choices,
    "feature": lambda p, v: v is None or (isinstance(v, str) and bool(v)),
    "prefix": lambda p, v: isinstance(v, str) and bool(v),
    "splits": lambda p, v: (
        isinstance(v, (tuple, list)) and bool(v) and all(isinstance(s, str) and s for s in v)
    ),
    "shape": _shape,
    "range": _value_range,
    "permutation": _permutation,
    "class_map": _class_map,
}
_RULES: dict[str, Callable[[Param], str]] = {
    "policy": lambda p: "a preset name, JSON text, a dict or a JSON file",
    "bool": lambda p: "true or false",
    "choice": lambda p: (
        " or ".join(repr(c) for c in p.choices)
        if len(p.choices) == 2
        else "one of " + ", ".join(repr(c) for c in p.choices)
    ),
    "feature": lambda p: "a feature name",
    "prefix": lambda p: "a feature name prefix",
    "splits": lambda p: "a non-empty list of split names",
    "shape": lambda p: "[height, width, channels] with 1, 3 or 4 channels",
    "range": lambda p: "[low, high] with low < high",
    "permutation": lambda p: "a permutation of 0..K-1 (K keypoints per object)",
    "class_map": lambda p: f"a map of class label (text) -> copies in [0, {MAX_COPIES_LIMIT}]",
}

PARAMS: tuple[Param, ...] = (
    Param(
        "policy",
        "policy",
        "standard",
        "a preset (light, standard, no-flip, randaugment, trivialaugment, none), JSON text or a "
        "JSON file; read once, when the pipeline is built",
        flag="--policy",
        commands=BOTH,
    ),
    Param(
        "num_copies",
        "int",
        4,
        "augmented copies written per example of each augmented split",
        low=1,
        flag="--copies",
        commands=BOTH,
    ),
    Param(
        "seed",
        "int",
        0,
        "the int64 every copy's seed derives from (with the example's key and the copy index)",
        low=SEED_MIN,
        high=SEED_MAX,
        flag="--seed",
        commands=BOTH,
    ),
    Param(
        "splits_to_augment",
        "splits",
        ("train",),
        "the splits to augment; every other split is passed through record for record",
        commands=(),
        why_not_cli="the CLI's --input is one split",
    ),
    Param(
        "include_original",
        "bool",
        True,
        "also write each original, unchanged, as copy 0",
        flag="--no-original",
    ),
    Param(
        "image_feature",
        "prefix",
        IMAGE_FEATURE,
        "the feature holding the image (PNG, JPEG, GIF, BMP bytes, or raw pixels with "
        "image_shape); falls back to image/encoded (detection records) when left at the default",
        flag="--image-feature",
        commands=BOTH,
    ),
    Param(
        "key_feature",
        "feature",
        None,
        "a feature holding a stable example id for the seeds; none: the SHA-256 of the example",
        flag="--key-feature",
        commands=BOTH,
    ),
    Param(
        "mask_feature",
        "feature",
        None,
        "a 1-channel segmentation mask (PNG or raw) moved with the image's geometry",
        flag="--mask-feature",
    ),
    Param(
        "image_shape",
        "shape",
        None,
        "[height, width, channels] of raw pixels (one bytes value, int64s or floats)",
        flag="--image-shape",
        commands=BOTH,
        metavar="H,W,C",
    ),
    Param(
        "value_range",
        "range",
        None,
        "[low, high] of raw float pixels (with image_shape); none: [0, 1]",
        flag="--value-range",
        commands=BOTH,
        metavar="LOW,HIGH",
    ),
    Param(
        "output_format",
        "choice",
        "same",
        "same: each copy in its input's format (raw stays raw); or png, jpeg (a copy's "
        "image/format, when the record has one, names the format it is written in)",
        choices=OUTPUT_FORMATS,
        flag="--output-format",
    ),
    Param(
        "jpeg_quality",
        "int",
        95,
        "the quality of copies written as JPEG",
        low=1,
        high=100,
        flag="--jpeg-quality",
    ),
    Param(
        "png_compression",
        "int",
        1,
        "the zlib level of copies written as PNG (lossless at any level; 1 writes 2-4x faster "
        "than 6, files 1-11% larger)",
        low=0,
        high=9,
        flag="--png-compression",
    ),
    Param(
        "provenance",
        "bool",
        True,
        "add aug_copy_index, aug_source_key and aug_seed to every written record",
        flag="--no-provenance",
    ),
    Param(
        "max_quarantine_fraction",
        "number",
        0.01,
        "the run fails when more than this fraction of the examples is quarantined",
        low=0.0,
        high=1.0,
        flag="--max-quarantine-fraction",
    ),
    Param(
        "batch_size",
        "int",
        1024,
        f"at most this many copies per TensorFlow call (and at most {MAX_BATCH_PIXELS:,} "
        "pixels; a larger image goes alone)",
        low=1,
        high=MAX_BATCH_SIZE,
        flag="--batch-size",
    ),
    Param(
        "box_feature_prefix",
        "prefix",
        BOX_FEATURE_PREFIX,
        "detection boxes are <prefix>{ymin,xmin,ymax,xmax}, one float per object",
        flag="--box-feature-prefix",
        commands=BOTH,
    ),
    Param(
        "object_feature_prefix",
        "prefix",
        OBJECT_FEATURE_PREFIX,
        "every feature under it holds one value per object (dropped with its object)",
        flag="--object-feature-prefix",
        commands=BOTH,
    ),
    Param(
        "keypoint_feature_prefix",
        "prefix",
        KEYPOINT_FEATURE_PREFIX,
        "keypoints are <prefix>{y,x} (K per object) and optional <prefix>visibility",
        flag="--keypoint-feature-prefix",
        commands=BOTH,
    ),
    Param(
        "box_coordinates",
        "choice",
        "normalized",
        "units of boxes and keypoints: normalized ([0, 1]) or pixels",
        choices=BOX_COORDINATES,
        flag="--box-coordinates",
        commands=BOTH,
    ),
    Param(
        "min_box_visibility",
        "number",
        0.0,
        "drop an object whose visible fraction of its moved box falls below this",
        low=0.0,
        high=1.0,
        flag="--min-box-visibility",
        commands=BOTH,
    ),
    Param(
        "keypoint_flip_permutation",
        "permutation",
        None,
        "in a mirrored copy, keypoint slot j takes moved keypoint J (left/right pairs swap)",
        flag="--keypoint-flip-permutation",
        commands=BOTH,
        metavar="J,J,...",
    ),
    Param(
        "boxes_from_masks",
        "bool",
        True,
        "objects with instance masks (image/object/mask) get the tight box of their moved "
        "mask, not the box around the moved box's corners",
        flag="--no-boxes-from-masks",
        commands=BOTH,
    ),
    Param(
        "label_feature",
        "feature",
        None,
        "the class feature: counts per class before and after; needed by copies_per_class "
        "and balance",
        flag="--label-feature",
        commands=BOTH,
    ),
    Param(
        "copies_per_class",
        "class_map",
        None,
        "copies per example of each listed class (fractions allowed); others get num_copies",
        flag="--copies-per-class",
        metavar="LABEL=K,...",
    ),
    Param(
        "balance",
        "choice",
        None,
        "equal: bring every class up to the largest class's count of records",
        choices=BALANCE_MODES,
        flag="--balance",
    ),
    Param(
        "max_copies",
        "int",
        16,
        "the most copies balance gives one example",
        low=1,
        high=MAX_COPIES_LIMIT,
        flag="--max-copies",
    ),
    Param(
        "num_shards",
        "int",
        0,
        "output files per split (0: the runner decides)",
        low=0,
        flag="--num-shards",
    ),
    Param(
        "max_image_pixels",
        "int",
        DEFAULT_MAX_IMAGE_PIXELS,
        "images larger (width x height, read from the header) are quarantined unread",
        low=1,
        flag="--max-image-pixels",
        commands=BOTH,
    ),
    Param(
        "out_of_range",
        "choice",
        "quarantine",
        "raw float pixels outside value_range: quarantine the example, or clip them",
        choices=OUT_OF_RANGE_ACTIONS,
        flag="--out-of-range",
        commands=BOTH,
    ),
)
BY_NAME: dict[str, Param] = {param.name: param for param in PARAMS}
DEFAULTS: dict[str, Any] = {param.name: param.default for param in PARAMS}


def markdown_table() -> str:
    """The docs' parameter table (docs/parameters.md; a test checks the page against it)."""
    lines = ["| parameter | CLI | default | meaning |", "|---|---|---|---|"]
    for param in PARAMS:
        flag = f"`{param.flag}`" if param.flag else "-"
        lines.append(f"| `{param.name}` | {flag} | `{param.default_text()}` | {param.help} |")
    return "\n".join(lines)
