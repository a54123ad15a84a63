"""Mixing partners of the offline door (seed rule 5 in `core/seeds.py`), without Beam.

Every copy of a mixing policy gets a slot (a hash of the seed, its example's key and its copy
index) and a bucket (the slot modulo a count that follows the split's size). The copies of a
bucket meet on one worker; sorted by slot, each takes as partner the next copy round the bucket
that belongs to another example with an image of the same shape and dtype. Nothing depends on
the runner, sharding, bundling or worker count, and a bucket holds about
`MIX_BUCKET_COPIES` copies, so memory does not grow with the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

from tfx_image_augment.core.seeds import mix_bucket, mix_buckets, mix_slot


class MixMember(NamedTuple):
    """One copy on its way to its bucket: the encoded record travels, not decoded pixels."""

    slot: bytes
    key: bytes
    copy_index: int
    record: bytes


def bucket_of(seed: int, key: bytes, copy_index: int, num_records: int, num_copies: int):
    """(bucket, slot) of copy `copy_index` of the example with key `key`."""
    slot = mix_slot(seed, key, copy_index)
    return mix_bucket(slot, mix_buckets(num_records, num_copies)), slot


T = TypeVar("T")


def partners(
    members: Sequence[MixMember], image_kind: Callable[[MixMember], T]
) -> list[tuple[MixMember, MixMember | None]]:
    """Each member of a bucket with its partner (or None), in slot order; `image_kind` gives
    what must match (the decoded image's shape and dtype)."""
    ordered = sorted(members, key=lambda m: (m.slot, m.key, m.copy_index))
    kinds = [image_kind(m) for m in ordered]
    count = len(ordered)
    paired = []
    for i, member in enumerate(ordered):
        partner = None
        for step in range(1, count):
            j = (i + step) % count
            if ordered[j].key != member.key and kinds[j] == kinds[i]:
                partner = ordered[j]
                break
        paired.append((member, partner))
    return paired
