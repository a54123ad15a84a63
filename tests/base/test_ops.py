"""The op registry: one entry per op, and every entry consistent with its implementation."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.core.ops import OPS, portable_math, randaugment_specs
from tfx_image_augment.core.ops.base import GEOMETRIC, MIXING, PHOTOMETRIC
from tfx_image_augment.core.ops.photometric import PixelContext
from tfx_image_augment.core.policy import catalogue_table, example_policies, load_policy

from tests import images as real
from tests.conftest import PROJECT_ROOT


def _op(name: str):
    return load_policy(example_policies()[name]).ops[0]


@pytest.mark.parametrize("name", list(OPS))
def test_each_entry_has_the_implementation_its_kind_needs_and_a_valid_example(name):
    definition = OPS[name]
    assert definition.kind in (GEOMETRIC, PHOTOMETRIC, MIXING)
    implementations = {
        GEOMETRIC: definition.matrix,
        PHOTOMETRIC: definition.pixels,
        MIXING: definition.mix,
    }
    assert implementations.pop(definition.kind) is not None
    assert all(other is None for other in implementations.values())
    _op(name)  # the example passes validation
    if definition.ordered:
        assert set(definition.ordered) <= set(definition.fields)


def _run(name: str, u: np.ndarray) -> np.ndarray:
    definition, op = OPS[name], _op(name)
    u = tf.constant(u, tf.float32)
    if definition.kind == GEOMETRIC:
        return definition.matrix(op, u, tf.constant(32.0), tf.constant(48.0)).numpy()
    x = tf.constant(real.photo_crops(32, len(u), seed=5), tf.float32) / 255.0
    if definition.kind == MIXING:
        count = definition.partners  # mosaic tiles in 3: [B, P, H, W, C]
        partner = real.photo_crops(32, len(u) * count, seed=6).astype(np.float32) / 255.0
        if count > 1:
            partner = partner.reshape([len(u), count, *partner.shape[1:]])
        mixed, share = definition.mix(op, x, tf.constant(partner), u)
        return np.concatenate([mixed.numpy().ravel(), share.numpy()])
    seeds = tf.constant([[1, i] for i in range(len(u))], tf.int64)
    return definition.pixels(op, x, u, PixelContext(seeds, 10_000)).numpy()


@pytest.mark.parametrize("name", [n for n, d in OPS.items() if d.num_draws(_op(n)) > 0])
def test_an_op_reads_exactly_the_draws_it_declares(name):
    # The draw table gives each op `num_draws` columns; an op that read fewer would waste
    # randomness, one that read more would take its neighbour's draws.
    count = OPS[name].num_draws(_op(name))
    base = np.full([2, count], 0.3, np.float32)
    reference = _run(name, base)
    columns = range(count)
    if name in ("mixup", "cutmix"):  # their draws start with a Beta draw
        # A Beta draw reads its later rejection tries only when the first try is rejected:
        # of each Gamma draw's columns, the first Box-Muller pair and the power's uniform
        # always matter; so does every column after the Beta draw's.
        gamma, pairs = portable_math._GAMMA_DRAWS, portable_math._GAMMA_PAIRS
        always = [start + c for start in (0, gamma) for c in (0, pairs, gamma - 1)]
        columns = [*always, *range(portable_math.BETA_DRAWS, count)]

    def changes(column: int, value: float) -> bool:
        moved = base.copy()
        moved[:, column] = value
        return not np.array_equal(_run(name, moved), reference)

    for column in columns:
        # Two values: an op that rounds its parameter (cutmix's whole-pixel rectangle) may
        # land on the same output for one of them.
        assert changes(column, 0.9) or changes(column, 0.05), f"{name} ignores draw {column}"


def test_randaugment_slots_are_a_complete_ordered_list():
    positions = sorted(slot.position for op in OPS.values() for slot in op.randaugment)
    assert positions == list(range(len(positions)))
    names = [spec["op"] for spec in randaugment_specs(0.5)]
    assert names[:3] == ["autocontrast", "equalize", "rotate"]  # torchvision's order
    assert names.count("shear") == 2 and names.count("translate") == 2


def test_readme_op_table_is_the_registrys():
    # The op table moved from the README to the docs' policies page.
    page = (PROJECT_ROOT / "docs" / "policies.md").read_text()
    assert catalogue_table() in page, "regenerate it: python -m tfx_image_augment.core.policy"
