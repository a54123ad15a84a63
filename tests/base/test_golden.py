"""The seed contract, pinned: stored pixels that every door must reproduce bit for bit.

`tests/golden/pixels.npz` was written under TensorFlow 2.16 (the TFX 1.16 stack) by
`tests/golden/make_golden.py`: every op alone and every preset, on real images, with the offline
door's seeds. This test runs in both of `make test`'s environments (TF 2.16, and the newest
TensorFlow with Keras 3), so it is also the cross-version check: copies written offline under
one TensorFlow are what the layer and the SavedModel give under the other. A refactor or a
faster formulation that changes a pixel fails here; if that is intended, bump the seed rule's
version, regenerate, and say so in the README.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.golden import make_golden

GOLDEN = np.load(make_golden.GOLDEN_FILE)
POLICIES = json.loads(str(GOLDEN["policies"]))
CASES = sorted(k for k in GOLDEN.files if k not in ("policies", "seed_rule_version"))


def _inputs(kind: str) -> tuple[np.ndarray, dict]:
    inputs = make_golden.golden_inputs()
    if kind == "digits_float":
        return inputs["digits"].astype(np.float32) / 255.0 - 0.5, {"value_range": (-0.5, 0.5)}
    return inputs[kind], {}


def test_copy_seeds_follow_the_documented_rule():
    from tfx_image_augment.core.seeds import content_key, copy_seed

    assert copy_seed(7, b"golden-0", 1) == (-7295064678619532437, -3495830449428718408)
    assert copy_seed(0, b"digits_0001", 4) == (1963558468483962009, 6209323543965150534)
    assert content_key(b"abc") == (
        b"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    )


def test_the_golden_pixels_are_of_the_current_seed_rule():
    from tfx_image_augment.core.seeds import SEED_RULE_VERSION

    # A bumped rule needs its pixels written again (python -m tests.golden.make_golden).
    assert int(GOLDEN["seed_rule_version"]) == SEED_RULE_VERSION


def test_every_op_and_preset_has_golden_pixels():
    # A new op (or a changed example) needs its golden pixels: run make_golden.
    assert make_golden.golden_policies() == POLICIES


@pytest.mark.parametrize("case", CASES)
def test_the_core_reproduces_the_golden_pixels(case):
    name, kind = case.split("|")
    images, kwargs = _inputs(kind)
    seeds = make_golden.golden_seeds(len(images))
    out = make_golden.compute(POLICIES[name], images, seeds, **kwargs)
    assert out.dtype == GOLDEN[case].dtype
    np.testing.assert_array_equal(out, GOLDEN[case])


@pytest.mark.parametrize("case", [c for c in CASES if c.startswith("preset:")])
def test_the_keras_layer_reproduces_the_golden_pixels(case):
    from tfx_image_augment import ImageAugmentation

    name, kind = case.split("|")
    images, kwargs = _inputs(kind)
    layer = ImageAugmentation(POLICIES[name], seed=make_golden.PIPELINE_SEED, **kwargs)
    seeds = make_golden.golden_seeds(len(images))
    out = layer({"images": images, "seeds": seeds}, training=True)
    np.testing.assert_array_equal(np.asarray(out), GOLDEN[case])


@pytest.mark.parametrize("name", ["preset:standard", "preset:randaugment"])
def test_the_saved_model_reproduces_the_golden_pixels(name, tmp_path):
    import tensorflow as tf
    from tfx_image_augment import export_augmentation_model

    for kind in ("digits", "photos"):
        images, _ = _inputs(kind)
        model_dir = export_augmentation_model(
            POLICIES[name], 7, str(tmp_path / kind), channels=images.shape[-1]
        )
        augment = tf.saved_model.load(f"{model_dir}/saved_model").signatures["augment"]
        seeds = make_golden.golden_seeds(len(images))
        out = augment(images=tf.constant(images), seeds=tf.constant(seeds))["images"].numpy()
        np.testing.assert_array_equal(out, GOLDEN[f"{name}|{kind}"])
