"""How many copies each example gets: the same K for all, K per class, or classes balanced.

A class is the text of the label feature's first value (int64 as its decimal, bytes as UTF-8):
an int64 1 and a bytes b"1" are the same class "1".

- Default: `num_copies` for every example.
- `copies_per_class`: label -> copies (a class not listed gets `num_copies`).
- `balance="equal"`: every class ends with as many records as the largest class: the largest
  gets `num_copies` copies per example, a class of n examples gets
  largest * (num_copies + 1) / n - 1 per example (without originals: largest * num_copies / n),
  capped by `max_copies`.

A fractional number of copies (say 2.4) is resolved per example from its stable key: 2 copies,
plus a third when sha256(b"image-augment/v1|copies|<seed>|" + key) read as a uniform in [0, 1)
falls below 0.4. Reruns, runners and sharding agree, and a class gets 2.4 copies per example on
average. The class counts come from the data, inside the same Beam pipeline: the labels of the
readable records, counted before decoding (a record quarantined later for its image still
counts), so that no decoded pixels wait for the counts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from tfx_image_augment.core.seeds import class_fraction_draw
from tfx_image_augment.io.quarantine import LABEL_MISSING, Quarantined
from tfx_image_augment.offline.config import AugmentConfig

# The class of an example without a label when labels are only counted (e.g. a detection
# image with no objects): it keeps `num_copies`.
UNLABELLED = "(none)"


def label_of(example, config: AugmentConfig) -> str | None:
    """The example's class as text (int64 labels as their decimal), or None when not asked for.
    An example without one is UNLABELLED, or quarantined (raises Quarantined) when its number
    of copies depends on its class."""
    if not config.label_feature:
        return None
    feature = example.features.feature.get(config.label_feature)
    kind = feature.WhichOneof("kind") if feature is not None else None
    values = getattr(feature, kind).value if kind else []
    if not values:
        if depends_on_class(config):
            raise Quarantined(LABEL_MISSING, f"{config.label_feature}: absent or empty")
        return UNLABELLED
    value = values[0]
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)


def depends_on_class(config: AugmentConfig) -> bool:
    return config.balance is not None or config.copies_per_class is not None


def uses_class_counts(config: AugmentConfig) -> bool:
    return config.balance is not None


def label_of_record(record: bytes, config: AugmentConfig) -> list[str]:
    """[label] of a serialized example, or [] when it has none or does not parse (the decode
    step quarantines those): what the class counts are made of."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        return [label_of(tf.train.Example.FromString(record), config)]
    except (DecodeError, Quarantined):
        return []


def copies_wanted(config: AugmentConfig, label: str | None, counts: Mapping[str, int]) -> float:
    """The (possibly fractional) number of copies per example of class `label`."""
    if config.copies_per_class is not None:
        return float(config.copies_per_class.get(label, config.num_copies))
    if config.balance == "equal":
        largest = max(counts.values())
        per_class_total = largest * (config.num_copies + int(config.include_original))
        wanted = per_class_total / counts[label] - int(config.include_original)
        return min(float(config.max_copies), wanted)  # validate(): max_copies >= num_copies
    return float(config.num_copies)


def copies_for(config: AugmentConfig, label: str | None, key: bytes, counts) -> int:
    """This example's number of copies: `copies_wanted` with its fraction resolved by `key`."""
    wanted = copies_wanted(config, label, counts)
    whole = math.floor(wanted)
    fraction = wanted - whole
    if fraction <= 0:
        return whole
    return whole + (1 if class_fraction_draw(config.seed, key) < fraction else 0)
