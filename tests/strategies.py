"""Hypothesis strategies: random valid policies over the whole op catalogue."""

from __future__ import annotations

from hypothesis import strategies as st

from components.image_augment.policy import CATALOGUE, GEOMETRIC, META


def _unit(low=0.0, high=1.0):
    return st.floats(low, high, allow_nan=False, allow_infinity=False).map(lambda v: round(v, 4))


def _pair(low, high):
    return st.tuples(_unit(low, high), _unit(low, high)).map(lambda t: sorted(t))


_PARAMS = {
    "rotate": st.fixed_dictionaries({"max_degrees": _unit(0, 180)}),
    "zoom": _pair(0.5, 2.0).map(lambda t: {"min_scale": t[0], "max_scale": t[1]}),
    "translate": st.fixed_dictionaries({"max_dx": _unit(0, 0.5), "max_dy": _unit(0, 0.5)}),
    "shear": st.fixed_dictionaries(
        {"max_degrees": _unit(0, 45), "axis": st.sampled_from(["x", "y", "both"])}
    ),
    "random_resized_crop": st.fixed_dictionaries(
        {"scale": _pair(0.1, 1.0), "ratio": _pair(0.5, 2.0)}
    ),
    "brightness": st.fixed_dictionaries({"max_delta": _unit(0, 0.5)}),
    "contrast": _pair(0.2, 2.0).map(lambda t: {"lower": t[0], "upper": t[1]}),
    "saturation": _pair(0.0, 2.0).map(lambda t: {"lower": t[0], "upper": t[1]}),
    "hue": st.fixed_dictionaries({"max_delta": _unit(0, 0.5)}),
    "gamma": _pair(0.3, 3.0).map(lambda t: {"min": t[0], "max": t[1]}),
    "gaussian_noise": st.fixed_dictionaries({"stddev": _unit(0, 0.2)}),
    "gaussian_blur": st.fixed_dictionaries({"sigma": _pair(0.1, 2.0)}),
    "jpeg_quality": st.tuples(st.integers(5, 100), st.integers(5, 100)).map(
        lambda t: {"min": min(t), "max": max(t)}
    ),
    "solarize": st.fixed_dictionaries({"threshold": _unit()}),
    "posterize": st.fixed_dictionaries({"bits": st.integers(1, 8)}),
    "sharpness": _pair(0.0, 2.0).map(lambda t: {"lower": t[0], "upper": t[1]}),
    "cutout": st.fixed_dictionaries(
        {"size": _unit(0.05, 0.5), "count": st.integers(1, 3), "fill": _unit()}
    ),
    "randaugment": st.fixed_dictionaries({"num_ops": st.integers(1, 3), "magnitude": _unit(0, 30)}),
}


@st.composite
def op_specs(draw, allow_meta=True, kinds=None):
    names = [
        n
        for n, (kind, _) in CATALOGUE.items()
        if (allow_meta or kind != META) and (kinds is None or kind in kinds)
    ]
    name = draw(st.sampled_from(names))
    spec = {"op": name, "p": draw(st.sampled_from([1.0, 0.5, draw(_unit())]))}
    if name == "one_of":
        children = draw(st.lists(op_specs(allow_meta=False), min_size=1, max_size=3))
        spec["ops"] = children
        spec["weights"] = draw(
            st.lists(_unit(0.1, 3), min_size=len(children), max_size=len(children))
        )
    elif name in _PARAMS:
        spec.update(draw(_PARAMS[name]))
    return spec


@st.composite
def policies(draw, max_ops=4, kinds=None, allow_meta=True):
    ops = draw(st.lists(op_specs(allow_meta=allow_meta, kinds=kinds), min_size=0, max_size=max_ops))
    return {
        "version": 1,
        "ops": ops,
        "fill_mode": draw(st.sampled_from(["constant", "reflect", "nearest", "wrap"])),
        "fill_value": draw(_unit()),
    }


def geometric_policies():
    return policies(kinds={GEOMETRIC}, allow_meta=False)
