"""Augmentation policies: plain, versioned JSON, validated at construction and fingerprinted.

A policy is::

    {"version": 1,
     "fill_mode": "reflect", "fill_value": 0.0,        # optional, for uncovered pixels
     "ops": [{"op": "flip_left_right", "p": 0.5},
             {"op": "rotate", "max_degrees": 20, "p": 0.8},
             {"op": "brightness", "max_delta": 0.2},
             {"op": "contrast", "lower": 0.8, "upper": 1.2}]}

Semantics (exact):
- Ops run in the listed order. Each op is applied to an image with probability `p` (default 1),
  drawn per image. Runs of consecutive geometric ops are composed into one affine matrix and
  warped once; that equals applying them one after another, except that pixels a middle op
  would push out of the frame and a later op would bring back are sampled from the source
  (a single warp never loses them).
- `fill_mode` (constant, reflect, nearest, wrap; default reflect) and `fill_value` (in [0, 1] of
  the image's value range; default 0) say what uncovered pixels get, for every warp.
- Photometric values are in units of the image's value range mapped to [0, 1] (so
  `brightness.max_delta=0.2` adds at most 20% of full scale, `solarize.threshold=0.5` is mid
  grey). They touch colour channels only: the alpha of RGBA images is kept.
- `mixup` and `cutmix` blend the image with a partner image (offline: a deterministic other
  example of the split; online: the previous image of the batch), given as it was before any
  op: ops listed before a mixing op change the image alone, ops after it change the mix.
  `mosaic` tiles the image with three partner images (in the core, given by the caller) at
  half size around a drawn centre, and moves their boxes with them.
- `one_of` applies exactly one of its ops per image, picked by `weights`; `randaugment` applies
  `num_ops` ops per image drawn uniformly from a fixed list at strength `magnitude` (0-30);
  `trivialaugment` applies one op from that list at full strength. In `randaugment` the drawn
  geometric ops are composed into one warp applied before the drawn photometric ops, so an image
  pays for one warp however many ops it draws.

The fingerprint is the SHA-256 of the canonical JSON of the policy with every default filled
in, so two spellings of the same policy share it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
from collections.abc import Mapping
from typing import Any

from tfx_image_augment.core.ops import OPS, randaugment_specs
from tfx_image_augment.core.ops.base import GEOMETRIC, MIXING, PHOTOMETRIC, REQUIRED, Field

POLICY_VERSION = 1
FILL_MODES = ("constant", "reflect", "nearest", "wrap")
META = "meta"
ONE_OF, RANDAUGMENT, TRIVIALAUGMENT = "one_of", "randaugment", "trivialaugment"


class PolicyError(ValueError):
    """An augmentation policy that cannot be run; the message names the op, field and rule."""


_P = Field("number", 0.0, 1.0, default=1.0)


@dataclasses.dataclass(frozen=True)
class MetaOp:
    """An op made of other ops (the leaf ops live in the registry, `tfx_image_augment.core.ops`)."""

    name: str
    summary: str
    fields: Mapping[str, Field]
    example: Mapping[str, Any]


META_OPS: Mapping[str, MetaOp] = {
    meta.name: meta
    for meta in (
        MetaOp(
            ONE_OF,
            "`ops`, `weights`",
            {"ops": Field("ops", default=REQUIRED), "weights": Field("weights", default=None)},
            {"ops": [{"op": "rotate", "max_degrees": 30}, {"op": "equalize"}]},
        ),
        MetaOp(
            RANDAUGMENT,
            "`num_ops` (2), `magnitude` (0-30, default 9)",
            {
                "num_ops": Field("int", 1, 10, default=2, typical=(1, 3)),
                "magnitude": Field("number", 0, 30, default=9),
            },
            {"num_ops": 2, "magnitude": 12},
        ),
        MetaOp(TRIVIALAUGMENT, "", {}, {}),
    )
}

# name -> (kind, fields): the whole public shape of every op, leaf and meta.
CATALOGUE: Mapping[str, tuple[str, Mapping[str, Field]]] = {
    **{name: (op.kind, op.fields) for name, op in OPS.items()},
    **{name: (META, meta.fields) for name, meta in META_OPS.items()},
}


def example_policies() -> dict[str, dict[str, Any]]:
    """One single-op policy per catalogue entry, with its representative fields."""
    examples = {name: op.example for name, op in OPS.items()}
    examples.update({name: meta.example for name, meta in META_OPS.items()})
    return {
        name: {"version": 1, "ops": [{"op": name, **fields}]} for name, fields in examples.items()
    }


def catalogue_table() -> str:
    """The docs' op table (docs/policies.md), from the registry.

    `python -m tfx_image_augment.core.policy` prints it.
    """
    lines = ["| kind | op | fields (every op also takes `p`, default 1) |", "|---|---|---|"]
    headings = {
        GEOMETRIC: "geometric (moves masks too, nearest sampling)",
        PHOTOMETRIC: "photometric (colour channels only; alpha kept)",
        MIXING: "mixing (with a partner image; [Mixing](mixing.md))",
        META: "policies of policies",
    }
    summaries = {name: op.summary for name, op in OPS.items()}
    summaries.update({name: meta.summary for name, meta in META_OPS.items()})
    for name, (kind, _) in CATALOGUE.items():
        lines.append(f"| {headings.pop(kind, '')} | `{name}` | {summaries[name]} |")
    return "\n".join(lines)


@dataclasses.dataclass(frozen=True)
class Op:
    """One validated op: its name and every field (defaults filled in), `p` included."""

    name: str
    params: tuple[tuple[str, Any], ...]
    children: tuple[Op, ...] = ()

    @property
    def kind(self) -> str:
        return CATALOGUE[self.name][0]

    def __getitem__(self, field: str) -> Any:
        return dict(self.params)[field]

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"op": self.name}
        for key, value in self.params:
            out[key] = list(value) if isinstance(value, tuple) else value
        if self.name == ONE_OF:
            out["ops"] = [child.to_dict() for child in self.children]
        return out


@dataclasses.dataclass(frozen=True)
class Policy:
    """A validated augmentation policy. Build it with `load_policy` (or `Policy.from_dict`)."""

    ops: tuple[Op, ...]
    fill_mode: str = "reflect"
    fill_value: float = 0.0
    version: int = POLICY_VERSION
    name: str | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def from_dict(cls, config: Mapping[str, Any], name: str | None = None) -> Policy:
        return _parse_policy(config, name)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "fill_mode": self.fill_mode,
            "fill_value": self.fill_value,
            "ops": [op.to_dict() for op in self.ops],
        }

    def to_json(self, indent: int | None = None) -> str:
        return json.dumps(
            self.to_dict(), sort_keys=True, indent=indent, separators=None if indent else (",", ":")
        )

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(self.to_json().encode("utf-8")).hexdigest()

    @property
    def is_identity(self) -> bool:
        return not self.ops


PRESETS: dict[str, dict[str, Any]] = {
    # Mild colour changes and a horizontal flip: safe for almost any natural-image dataset.
    "light": {
        "version": 1,
        "ops": [
            {"op": "flip_left_right", "p": 0.5},
            {"op": "brightness", "max_delta": 0.1},
            {"op": "contrast", "lower": 0.9, "upper": 1.1},
        ],
    },
    # The everyday choice for natural images; the four geometric ops cost one warp.
    "standard": {
        "version": 1,
        "ops": [
            {"op": "flip_left_right", "p": 0.5},
            {"op": "rotate", "max_degrees": 15, "p": 0.8},
            {"op": "zoom", "min_scale": 0.9, "max_scale": 1.1, "p": 0.8},
            {"op": "translate", "max_dx": 0.1, "max_dy": 0.1, "p": 0.8},
            {"op": "brightness", "max_delta": 0.2},
            {"op": "contrast", "lower": 0.8, "upper": 1.2},
            {"op": "saturation", "lower": 0.8, "upper": 1.2},
        ],
    },
    # For digits and text, where a mirror image changes the label (a flipped 6 is not a 6).
    "no-flip": {
        "version": 1,
        "fill_mode": "constant",
        # Colour first, geometry last: the constant fill stays the background's black.
        "ops": [
            {"op": "brightness", "max_delta": 0.1},
            {"op": "contrast", "lower": 0.9, "upper": 1.1},
            {"op": "rotate", "max_degrees": 12},
            {"op": "zoom", "min_scale": 0.9, "max_scale": 1.1},
            {"op": "translate", "max_dx": 0.1, "max_dy": 0.1},
        ],
    },
    "randaugment": {"version": 1, "ops": [{"op": "randaugment", "num_ops": 2, "magnitude": 9}]},
    "trivialaugment": {"version": 1, "ops": [{"op": "trivialaugment"}]},
    # No augmentation at all: decode and re-encode only (the floor in benchmarks).
    "none": {"version": 1, "ops": []},
}


def load_policy(source: Policy | Mapping[str, Any] | str | os.PathLike) -> Policy:
    """A `Policy` from a preset name, a JSON string, a dict, a path to a JSON file or a Policy."""
    if isinstance(source, Policy):
        return source
    if isinstance(source, Mapping):
        return _parse_policy(source, None)
    if isinstance(source, os.PathLike):
        source = os.fspath(source)
    if not isinstance(source, str):
        raise PolicyError(
            f"A policy must be a preset name, a JSON string, a dict or a path to a "
            f"JSON file; got {type(source).__name__}."
        )
    text = source.strip()
    if text in PRESETS:
        return _parse_policy(PRESETS[text], text)
    if text.startswith("{"):
        try:
            config = json.loads(text)
        except json.JSONDecodeError as err:
            raise PolicyError(f"The policy is not valid JSON: {err}.") from None
        return _parse_policy(config, None)
    if _is_file(text):
        with _open(text) as handle:
            try:
                config = json.load(handle)
            except json.JSONDecodeError as err:
                raise PolicyError(f"The policy file {text} is not valid JSON: {err}.") from None
        return _parse_policy(config, os.path.basename(text))
    if _looks_like_path(text):
        if _is_folder(text):
            raise PolicyError(f"The policy file {text} is a folder, not a JSON file.")
        raise PolicyError(f"The policy file {text} does not exist (no such file).")
    raise PolicyError(
        f"Unknown policy {text!r}: give a preset ({', '.join(sorted(PRESETS))}), "
        f"a JSON object or the path of a JSON file."
    )


def _looks_like_path(text: str) -> bool:
    """A name no preset has: a folder separator, a scheme or a .json suffix."""
    return "/" in text or os.sep in text or text.lower().endswith(".json")


def _is_folder(path: str) -> bool:
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.isdir(path)
    return os.path.isdir(path)


def _is_file(path: str) -> bool:
    if "://" in path:  # gs:// and friends, through TensorFlow's filesystems
        import tensorflow as tf

        return tf.io.gfile.exists(path)
    return os.path.isfile(path)


def _open(path: str):
    if "://" in path:
        import tensorflow as tf

        return tf.io.gfile.GFile(path, "r")
    return open(path, encoding="utf-8")


def _parse_policy(config: Any, name: str | None) -> Policy:
    if not isinstance(config, Mapping):
        raise PolicyError(f"A policy must be a JSON object; got {type(config).__name__}.")
    unknown = sorted(set(config) - {"version", "ops", "fill_mode", "fill_value"})
    if unknown:
        raise PolicyError(
            f"Policy field {unknown[0]!r} is unknown; the allowed fields are "
            f"'version', 'ops', 'fill_mode' and 'fill_value'."
        )
    if "version" not in config:
        raise PolicyError(
            f"Policy field 'version' is missing; the supported version is {POLICY_VERSION}."
        )
    version = config["version"]
    if version != POLICY_VERSION or isinstance(version, bool):
        raise PolicyError(
            f"Policy version {version!r} is unknown; the supported version is {POLICY_VERSION}."
        )
    if "ops" not in config:
        raise PolicyError(
            "Policy field 'ops' is missing; it must be a list of ops "
            "(an empty list means no augmentation)."
        )
    ops = config["ops"]
    if not isinstance(ops, list):
        raise PolicyError(f"Policy field 'ops' must be a list of ops; got {type(ops).__name__}.")
    fill_mode = config.get("fill_mode", "reflect")
    if fill_mode not in FILL_MODES:
        raise PolicyError(
            f"Policy field 'fill_mode' must be one of "
            f"{', '.join(repr(m) for m in FILL_MODES)}; got {fill_mode!r}."
        )
    fill_value = config.get("fill_value", 0.0)
    if not _is_number(fill_value) or not 0 <= fill_value <= 1:
        raise PolicyError(
            f"Policy field 'fill_value' must be a number in [0, 1]; got {fill_value!r}."
        )
    parsed = tuple(_parse_op(op, f"ops[{i}]", allow_meta=True) for i, op in enumerate(ops))
    return Policy(
        ops=parsed,
        fill_mode=fill_mode,
        fill_value=float(fill_value),
        version=POLICY_VERSION,
        name=name,
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _parse_op(raw: Any, where: str, allow_meta: bool) -> Op:
    if not isinstance(raw, Mapping):
        raise PolicyError(
            f'Policy {where} must be an object like {{"op": "rotate", ...}}; '
            f"got {type(raw).__name__}."
        )
    name = raw.get("op")
    if name is None:
        raise PolicyError(
            f"Policy {where} has no 'op' field; it must name one of: {', '.join(CATALOGUE)}."
        )
    if name not in CATALOGUE:
        raise PolicyError(
            f"Policy {where}: op {name!r} is unknown; the known ops are: {', '.join(CATALOGUE)}."
        )
    kind, fields = CATALOGUE[name]
    ordered = OPS[name].ordered if name in OPS else None
    label = f"Policy {where} ({name})"
    if kind == META and not allow_meta:
        raise PolicyError(
            f"{label}: {name} cannot be nested inside one_of; list it at the top level of 'ops'."
        )
    allowed = {"op", "p", *fields}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise PolicyError(
            f"{label}: field {unknown[0]!r} is unknown; the allowed fields are "
            f"{', '.join(repr(f) for f in sorted(allowed - {'op'}))}."
        )
    values: dict[str, Any] = {"p": _check_field(label, "p", _P, raw.get("p", 1.0))}
    children: tuple[Op, ...] = ()
    for field_name, field in fields.items():
        if field_name not in raw:
            if field.default is REQUIRED:
                raise PolicyError(
                    f"{label}: field {field_name!r} is missing; it must be {field.describe()}."
                )
            if field.kind == "ops":
                continue
            values[field_name] = field.default
            continue
        value = raw[field_name]
        if field.kind == "ops":
            if not isinstance(value, list) or not value:
                raise PolicyError(f"{label}: field 'ops' must be {field.describe()}.")
            children = tuple(
                _parse_op(child, f"{where}.ops[{j}]", allow_meta=False)
                for j, child in enumerate(value)
            )
            continue
        values[field_name] = _check_field(label, field_name, field, value)
    if name == ONE_OF:
        weights = values.get("weights")
        if weights is None:
            weights = tuple(1.0 for _ in children)
        if len(weights) != len(children):
            raise PolicyError(
                f"{label}: field 'weights' must have one weight per op "
                f"({len(children)}); got {len(weights)}."
            )
        values["weights"] = tuple(float(w) for w in weights)
    if ordered:
        low_name, high_name = ordered
        if values[low_name] > values[high_name]:
            raise PolicyError(
                f"{label}: field {low_name!r} ({values[low_name]}) must not exceed "
                f"{high_name!r} ({values[high_name]})."
            )
    params = tuple(sorted((k, v) for k, v in values.items()))
    return Op(name=name, params=params, children=children)


def _check_field(label: str, name: str, field: Field, value: Any) -> Any:
    def fail(got: Any = value) -> PolicyError:
        return PolicyError(f"{label}: field {name!r} must be {field.describe()}; got {got!r}.")

    def in_bounds(x: float) -> bool:
        above = x > field.low if field.low_open else x >= field.low
        return above and (field.high is None or x <= field.high)

    if field.kind == "string":
        if value not in field.choices:
            raise fail()
        return value
    if field.kind == "weights":
        if (
            not isinstance(value, list)
            or not value
            or not all(_is_number(w) and w > 0 for w in value)
        ):
            raise fail()
        return tuple(value)
    if field.kind == "range":
        if (
            not isinstance(value, (list, tuple))
            or len(value) != 2
            or not all(_is_number(v) for v in value)
            or value[0] > value[1]
            or not all(in_bounds(v) for v in value)
        ):
            raise fail()
        return (float(value[0]), float(value[1]))
    if field.kind == "int":
        if not _is_number(value) or float(value) != int(value) or not in_bounds(value):
            raise fail()
        return int(value)
    if not _is_number(value) or not in_bounds(value):
        raise fail()
    return float(value)


def randaugment_candidates(level: float) -> tuple[Op, ...]:
    """The ops RandAugment and TrivialAugment draw from, at strength `level` in [0, 1].

    Magnitudes follow torchvision's RandAugment table where our ops allow (shear and translate
    per axis, rotate up to 30 degrees, colour factors 1 +- 0.9 level); each op's mapping is its
    registry entry's `randaugment` slots.
    """
    return tuple(
        _parse_op(spec, f"randaugment list[{i}]", allow_meta=False)
        for i, spec in enumerate(randaugment_specs(level))
    )


if __name__ == "__main__":
    print(catalogue_table())
