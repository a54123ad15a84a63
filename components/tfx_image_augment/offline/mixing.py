"""Mixing partners of the offline door (seed rule 5 in `core/seeds.py`), without Beam.

Every copy of a mixing policy gets a slot (a hash of the seed, its example's key and its copy
index) and a bucket (the slot modulo a count that follows the split's size). The copies of a
bucket meet on one worker; sorted by slot, each takes as partners the next copies round the bucket
that belong to other examples (one for MixUp and CutMix, three distinct ones for Mosaic) with an
image of the same shape and dtype and the same per-object features. Nothing depends on
the runner, sharding, bundling or worker count, and a bucket holds about
`MIX_BUCKET_COPIES` copies, so memory does not grow with the dataset.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import NamedTuple, TypeVar

from tfx_image_augment.core.seeds import mix_bucket, mix_buckets, mix_slot
from tfx_image_augment.io.quarantine import OBJECTS_WITH_MIXING, Quarantined


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
    members: Sequence[MixMember], image_kind: Callable[[MixMember], T], count: int = 1
) -> list[tuple[MixMember, tuple[MixMember, ...]]]:
    """Each member of a bucket with its `count` partners, in slot order: the next members round
    the bucket of other examples (one copy of each) whose `image_kind` (what must match: the
    decoded image's shape and dtype, the per-object features) is the member's; () when the
    bucket has fewer than `count` such examples (the copy is not mixed)."""
    ordered = sorted(members, key=lambda m: (m.slot, m.key, m.copy_index))
    kinds = [image_kind(m) for m in ordered]
    size = len(ordered)
    paired = []
    for i, member in enumerate(ordered):
        found: list[MixMember] = []
        keys = {member.key}
        for step in range(1, size):
            j = (i + step) % size
            if ordered[j].key not in keys and kinds[j] == kinds[i]:
                found.append(ordered[j])
                keys.add(ordered[j].key)
                if len(found) == count:
                    break
        paired.append((member, tuple(found) if len(found) == count else ()))
    return paired


def check_mixable(objects, plan) -> None:
    """Raises Quarantined when the record's objects (`offline.objects.Objects`, or None) are
    ones the policy's mixing ops do not move: boxes under a blending op (mixup, cutmix);
    keypoints or instance masks under a tiling op (mosaic moves boxes only)."""
    if objects is None or not plan.mixing_ops:
        return
    blending = [name for name in plan.mixing_ops if name not in plan.tiling_ops]
    if blending:
        raise Quarantined(
            OBJECTS_WITH_MIXING, f"{objects.count} boxes; {', '.join(blending)} moves no boxes"
        )
    if len(plan.tiling_ops) > 1:
        raise Quarantined(
            OBJECTS_WITH_MIXING,
            f"{objects.count} boxes; the policy tiles {len(plan.tiling_ops)} times, boxes once",
        )
    if objects.keypoints is not None or objects.masks is not None:
        what = "keypoints" if objects.keypoints is not None else "instance masks"
        raise Quarantined(
            OBJECTS_WITH_MIXING, f"{what}; {', '.join(plan.tiling_ops)} moves boxes only"
        )
