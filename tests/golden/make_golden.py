"""Regenerates tests/golden/pixels.npz: the pixels the seed contract promises.

Run only when the seed rule's version is bumped on purpose (README, "Determinism"):
    python -m tests.golden.make_golden
Every op alone and every preset, on real images (scikit-learn's digits and photo crops), with
the offline seeds of copies 1..K of keys "golden-<i>" under pipeline seed 7. The test
`tests/base/test_golden.py` recomputes them through the core, the Keras layer and the SavedModel,
under whatever TensorFlow it runs on, and compares bit for bit.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np

GOLDEN_FILE = pathlib.Path(__file__).with_name("pixels.npz")
PIPELINE_SEED = 7
PRESETS = ("light", "standard", "no-flip", "randaugment", "trivialaugment")


def golden_inputs() -> dict[str, np.ndarray]:
    """Real images: 4 digits (1 channel) and 4 photo crops (3 channels), 32x32 uint8."""
    from pipelines.data import digits_images, photo_crops

    digits, _ = digits_images(32)
    return {"digits": digits[:4], "photos": photo_crops(32, 4, seed=11)}


def golden_seeds(count: int) -> np.ndarray:
    """Copy k = i + 1 of the example with key b"golden-<i>", as the offline door seeds it."""
    from tfx_image_augment.core.seeds import copy_seed

    return np.array(
        [copy_seed(PIPELINE_SEED, f"golden-{i}".encode(), i + 1) for i in range(count)], np.int64
    )


def golden_policies() -> dict[str, dict]:
    from tfx_image_augment.core.policy import PRESETS as ALL_PRESETS
    from tfx_image_augment.core.policy import example_policies

    cases = {f"op:{name}": policy for name, policy in example_policies().items()}
    cases.update({f"preset:{name}": ALL_PRESETS[name] for name in PRESETS})
    return cases


def compute(policy: dict, images: np.ndarray, seeds: np.ndarray, **kwargs) -> np.ndarray:
    """The core's output; a mixing policy mixes each image with the one before it (mosaic:
    with the 3 before it, the nearest first)."""
    from tfx_image_augment import augment, load_policy
    from tfx_image_augment.core.plan import compile_policy

    policy = load_policy(policy)
    count = compile_policy(policy).partner_count
    if count == 1:
        kwargs["partners"] = np.roll(images, 1, axis=0)
    elif count:
        kwargs["partners"] = np.stack(
            [np.roll(images, k, axis=0) for k in range(1, count + 1)], axis=1
        )
    return augment(images, seeds, policy, **kwargs).numpy()


def main() -> None:
    from tfx_image_augment import environment
    from tfx_image_augment.core.seeds import SEED_RULE_VERSION

    environment.configure()
    inputs = golden_inputs()
    arrays: dict[str, np.ndarray] = {}
    policies = golden_policies()
    for case, policy in policies.items():
        for kind, images in inputs.items():
            arrays[f"{case}|{kind}"] = compute(policy, images, golden_seeds(len(images)))
    # Floating-point pixels in a declared range (MNIST style), through a warp and colour ops.
    floats = inputs["digits"].astype(np.float32) / 255.0 - 0.5
    arrays["preset:standard|digits_float"] = compute(
        policies["preset:standard"], floats, golden_seeds(len(floats)), value_range=(-0.5, 0.5)
    )
    arrays["policies"] = np.array(json.dumps(policies, sort_keys=True))
    arrays["seed_rule_version"] = np.array(SEED_RULE_VERSION)
    np.savez_compressed(GOLDEN_FILE, **arrays)
    print(f"wrote {len(arrays) - 2} golden arrays to {GOLDEN_FILE}")


if __name__ == "__main__":
    main()
