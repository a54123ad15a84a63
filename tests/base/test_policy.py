"""Policies: presets, loaders, fingerprints, and one clear sentence for every invalid policy."""

from __future__ import annotations

import json

import pytest
from tfx_image_augment import PRESETS, PolicyError, load_policy
from tfx_image_augment.core.policy import CATALOGUE


def test_every_preset_loads_by_name_and_required_presets_exist():
    assert {"light", "standard", "no-flip", "randaugment"} <= set(PRESETS)
    for name in PRESETS:
        assert load_policy(name).name == name


def test_no_flip_preset_never_flips():
    ops = {op.name for op in load_policy("no-flip").ops}
    assert not ops & {"flip_left_right", "flip_up_down"}


def test_loader_accepts_name_json_dict_path_and_gives_one_fingerprint(tmp_path):
    config = PRESETS["standard"]
    path = tmp_path / "policy.json"
    path.write_text(json.dumps(config))
    loaded = [
        load_policy("standard"),
        load_policy(json.dumps(config)),
        load_policy(config),
        load_policy(path),
        load_policy(str(path)),
    ]
    assert len({policy.fingerprint for policy in loaded}) == 1
    assert all(policy == loaded[0] for policy in loaded)


def test_fingerprint_ignores_spelling_but_not_meaning():
    short = load_policy({"version": 1, "ops": [{"op": "flip_left_right"}]})
    explicit = load_policy(
        {
            "version": 1,
            "fill_mode": "reflect",
            "fill_value": 0,
            "ops": [{"p": 1.0, "op": "flip_left_right"}],
        }
    )
    other = load_policy({"version": 1, "ops": [{"op": "flip_left_right", "p": 0.5}]})
    assert short.fingerprint == explicit.fingerprint
    assert short.fingerprint != other.fingerprint
    assert load_policy(short.to_json()) == short  # round trip


def test_the_issue_example_policy_is_valid():
    policy = load_policy(
        {
            "version": 1,
            "ops": [
                {"op": "flip_left_right", "p": 0.5},
                {"op": "rotate", "max_degrees": 20, "p": 0.8},
                {"op": "brightness", "max_delta": 0.2},
                {"op": "contrast", "lower": 0.8, "upper": 1.2},
            ],
        }
    )
    assert [op.name for op in policy.ops] == ["flip_left_right", "rotate", "brightness", "contrast"]


def _ops(*ops):
    return {"version": 1, "ops": list(ops)}


INVALID = [
    # (policy, words the one sentence must contain)
    (
        _ops({"op": "rotate", "max_degrees": 20}, {"op": "twirl"}),
        ["ops[1]", "'twirl'", "unknown", "rotate", "flip_left_right"],
    ),
    (
        _ops({"op": "rotate", "max_degrees": 200}),
        ["ops[0]", "rotate", "'max_degrees'", "[0, 180]", "200"],
    ),
    (_ops({"op": "flip_left_right", "p": 1.5}), ["ops[0]", "'p'", "[0, 1]", "1.5"]),
    (_ops({"op": "rotate", "max_degrees": "20"}), ["ops[0]", "'max_degrees'", "a number", "'20'"]),
    (_ops({"op": "posterize", "bits": 2.5}), ["ops[0]", "'bits'", "an integer in [1, 8]"]),
    (_ops({"op": "brightness"}), ["ops[0]", "brightness", "'max_delta'", "missing", "[0, 1]"]),
    ({"version": 2, "ops": []}, ["version 2", "supported version is 1"]),
    ({"ops": []}, ["'version'", "missing"]),
    ({"version": 1}, ["'ops'", "missing"]),
    (_ops({"op": "contrast", "lower": 1.5, "upper": 0.5}), ["ops[0]", "'lower'", "'upper'"]),
    (
        _ops({"op": "rotate", "max_degrees": 5, "angle": 3}),
        ["ops[0]", "'angle'", "unknown", "'max_degrees'"],
    ),
    (_ops({"op": "gaussian_blur", "sigma": [2, 1]}), ["ops[0]", "'sigma'", "lower <= upper"]),
    (
        _ops({"op": "one_of", "ops": [{"op": "grayscale"}], "weights": [1, 2]}),
        ["ops[0]", "'weights'", "one weight per op"],
    ),
    (_ops({"op": "one_of", "ops": [{"op": "randaugment"}]}), ["ops[0].ops[0]", "nested"]),
    (_ops({"op": "shear", "max_degrees": 10, "axis": "z"}), ["'axis'", "'x'", "'both'"]),
    ({"version": 1, "ops": [], "fill_mode": "mirror"}, ["'fill_mode'", "'reflect'", "'mirror'"]),
    (_ops("rotate"), ["ops[0]", "must be an object"]),
]


@pytest.mark.parametrize("config,words", INVALID, ids=[w[0] for _, w in INVALID])
def test_invalid_policy_fails_with_one_sentence_naming_op_field_and_allowed_values(config, words):
    with pytest.raises(PolicyError) as raised:
        load_policy(config)
    message = str(raised.value)
    for word in words:
        assert word in message, message
    assert message.count("\n") == 0 and message.endswith(".")


def test_unknown_preset_and_bad_json_say_what_is_accepted():
    with pytest.raises(PolicyError, match="preset .*light"):
        load_policy("heavy")
    with pytest.raises(PolicyError, match="not valid JSON"):
        load_policy("{not json")


def test_every_catalogue_op_named_in_the_issue_exists():
    wanted = {
        "flip_left_right",
        "flip_up_down",
        "rotate",
        "zoom",
        "translate",
        "shear",
        "random_resized_crop",
        "brightness",
        "contrast",
        "saturation",
        "hue",
        "gamma",
        "gaussian_noise",
        "gaussian_blur",
        "jpeg_quality",
        "grayscale",
        "solarize",
        "posterize",
        "equalize",
        "autocontrast",
        "sharpness",
        "cutout",
        "mixup",  # and the mixing ops of the mixing issue
        "cutmix",
        "mosaic",
        "randaugment",
        "trivialaugment",
        "one_of",
    }
    assert wanted == set(CATALOGUE)
