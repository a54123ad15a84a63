"""The offline expansion's settings, validated once: when the pipeline is built, not on workers.

`AugmentConfig` has one field per entry of `params.PARAMS`, with its default; `validate()`
checks each against its rule, then the rules that join settings.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from typing import Any

from tfx_image_augment.io.rules import DecodeRules, EncodeRules
from tfx_image_augment.offline.params import BY_NAME, PARAMS, is_number

# Settings held as tuples (a JSON round trip or a user gives lists).
_SEQUENCES = tuple(p.name for p in PARAMS if p.kind in ("splits", "shape", "range", "permutation"))


class _ConfigMethods:
    """What AugmentConfig does besides holding the settings."""

    def validate(self) -> AugmentConfig:
        """Returns self, or raises ValueError with one sentence naming the setting (an invalid
        policy raises PolicyError, a ValueError)."""
        from tfx_image_augment.core.policy import load_policy

        if not BY_NAME["policy"].accepts(self.policy):
            raise _fail("policy", BY_NAME["policy"].rule(), self.policy)
        load_policy(self.policy)  # raises PolicyError with its own sentence
        for param in PARAMS:
            value = getattr(self, param.name)
            if not param.accepts(value):
                raise _fail(param.name, param.rule(), value)
        if self.value_range is not None and self.image_shape is None:
            raise _fail(
                "value_range", "given only with image_shape (raw float pixels)", self.value_range
            )
        if self.balance and self.copies_per_class is not None:
            raise _fail("balance", "left unset when copies_per_class is given", self.balance)
        if (self.balance or self.copies_per_class is not None) and not self.label_feature:
            raise _fail(
                "label_feature", "set when balance or copies_per_class is", self.label_feature
            )
        if self.balance and self.max_copies < self.num_copies:
            raise _fail(
                "max_copies",
                f"at least num_copies ({self.num_copies}) when balancing",
                self.max_copies,
            )
        mixing = self.plan.mixing_ops
        if mixing and self.mask_feature:
            raise _fail(
                "mask_feature",
                f"left unset with a policy that mixes images ({', '.join(mixing)}): mixing "
                "moves no segmentation masks yet",
                self.mask_feature,
            )
        if (
            self.image_shape is not None
            and self.image_shape[0] * self.image_shape[1] > self.max_image_pixels
        ):
            # Raw pixels all have image_shape: every example would be quarantined.
            raise _fail(
                "image_shape",
                f"at most max_image_pixels={self.max_image_pixels} pixels (height x width)",
                self.image_shape,
            )
        return self

    @property
    def loaded_policy(self):
        from tfx_image_augment.core.policy import load_policy

        return load_policy(self.policy)

    @property
    def plan(self):
        """The policy compiled (`core.plan`): which stages run, which ops mix images."""
        from tfx_image_augment.core.plan import compile_policy

        return compile_policy(self.loaded_policy)

    @property
    def decode_rules(self) -> DecodeRules:
        return DecodeRules(
            raw_shape=self.image_shape,
            value_range=self.value_range,
            max_pixels=self.max_image_pixels,
            out_of_range=self.out_of_range,
        )

    @property
    def encode_rules(self) -> EncodeRules:
        return EncodeRules(self.output_format, self.jpeg_quality, self.png_compression)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, fields: Mapping[str, Any]) -> AugmentConfig:
        """The config of `to_dict()`, also after a JSON round trip (lists become tuples)."""
        fields = dict(fields)
        for field in _SEQUENCES:
            if fields.get(field) is not None:
                fields[field] = tuple(fields[field])
        return cls(**fields)

    @classmethod
    def from_user(cls, **settings: Any) -> AugmentConfig:
        """A validated config from what a user passes to the component or the CLI: the policy
        read once (`canonical_policy`), sequences as tuples, class labels as text."""
        unknown = sorted(set(settings) - set(BY_NAME))
        if unknown:
            raise TypeError(f"unknown ImageAugment parameter(s) {unknown}; see params.PARAMS")
        if "policy" in settings:
            settings["policy"] = canonical_policy(settings["policy"])
        if isinstance(settings.get("splits_to_augment"), str):
            settings["splits_to_augment"] = (settings["splits_to_augment"],)  # one split's name
        for field in _SEQUENCES:
            value = settings.get(field)
            if isinstance(value, Sequence) and not isinstance(value, str):
                empty_is_unset = field in ("image_shape", "value_range")
                settings[field] = tuple(value) if value or not empty_is_unset else None
        # Numbers in one canonical type, so the CLI and the component store the same config.
        value_range = settings.get("value_range")
        if value_range is not None and all(is_number(v) for v in value_range):
            settings["value_range"] = tuple(float(v) for v in value_range)
        per_class = settings.get("copies_per_class")
        if isinstance(per_class, Mapping):
            settings["copies_per_class"] = {
                str(label): float(n) if is_number(n) else n for label, n in per_class.items()
            }
        return cls(**settings).validate()

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> AugmentConfig:
        return cls.from_dict(json.loads(text))


def _fail(field: str, rule: str, got: Any) -> ValueError:
    return ValueError(f"ImageAugment parameter {field!r} must be {rule}; got {got!r}.")


AugmentConfig = dataclasses.make_dataclass(
    "AugmentConfig",
    [(p.name, Any, dataclasses.field(default=p.default)) for p in PARAMS],
    bases=(_ConfigMethods,),
    frozen=True,
)
AugmentConfig.__module__ = __name__  # make_dataclass's module= needs Python 3.12
AugmentConfig.__doc__ = (
    "Everything the offline expansion needs, one field per `params.PARAMS` entry; "
    "`validate()` raises one clear ValueError."
)


def canonical_policy(source) -> str:
    """The policy as a built pipeline stores it: a preset's name, anything else canonical JSON.

    A policy file is read here, once, when the pipeline is built: TFX's cache then sees an
    edited file as a new policy, and workers never read a path that may not exist for them.
    """
    from tfx_image_augment.core.policy import PRESETS, load_policy

    if isinstance(source, str) and source.strip() in PRESETS:
        return source.strip()
    return load_policy(source).to_json()
