"""Hypothesis strategies: random valid policies over the whole op catalogue, derived from the
op registry's field definitions (a new op is covered without touching this file). Mixing ops
need partner images, so only strategies asked for them (`mixing=True`) draw them, and only those
that take at most `partners` partners per image (mosaic takes 3)."""

from __future__ import annotations

from hypothesis import strategies as st
from tfx_image_augment.core.ops import OPS
from tfx_image_augment.core.ops.base import MIXING
from tfx_image_augment.core.policy import CATALOGUE, GEOMETRIC, META, ONE_OF


def _unit(low=0.0, high=1.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 4))


def _field_values(field):
    low, high = field.typical or (field.low, field.high)
    if field.kind == "string":
        return st.sampled_from(field.choices)
    if field.kind == "int":
        return st.integers(int(low), int(high))
    if field.kind == "range":
        return st.tuples(_unit(low, high), _unit(low, high)).map(sorted)
    return _unit(low, high)


def _fields(name: str):
    _, fields = CATALOGUE[name]
    strategy = st.fixed_dictionaries(
        {k: _field_values(f) for k, f in fields.items() if f.kind not in ("ops", "weights")}
    )
    ordered = OPS[name].ordered if name in OPS else None
    if ordered is None:
        return strategy

    def order(values):
        low, high = ordered
        values[low], values[high] = sorted((values[low], values[high]))
        return values

    return strategy.map(order)


@st.composite
def op_specs(draw, allow_meta=True, kinds=None, mixing=False, partners=1):
    names = [
        n
        for n, (kind, _) in CATALOGUE.items()
        if (allow_meta or kind != META)
        and (kinds is None or kind in kinds)
        and (mixing or kind != MIXING)
        and (kind != MIXING or OPS[n].partners <= partners)
    ]
    name = draw(st.sampled_from(names))
    spec = {"op": name, "p": draw(st.sampled_from([1.0, 0.5, draw(_unit())]))}
    if name == ONE_OF:
        children = draw(st.lists(op_specs(False, None, mixing, partners), min_size=1, max_size=3))
        spec["ops"] = children
        spec["weights"] = draw(
            st.lists(_unit(0.1, 3), min_size=len(children), max_size=len(children))
        )
    else:
        spec.update(draw(_fields(name)))
    return spec


@st.composite
def policies(draw, max_ops=4, kinds=None, allow_meta=True, mixing=False, partners=1):
    ops = draw(
        st.lists(op_specs(allow_meta, kinds, mixing, partners), min_size=0, max_size=max_ops)
    )
    return {
        "version": 1,
        "ops": ops,
        "fill_mode": draw(st.sampled_from(["constant", "reflect", "nearest", "wrap"])),
        "fill_value": draw(_unit()),
    }


def geometric_policies():
    return policies(kinds={GEOMETRIC}, allow_meta=False)
