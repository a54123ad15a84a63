"""The online door (Keras layer) and the portable SavedModel agree with the core."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment import (
    ImageAugmentation,
    augment,
    batch_seeds,
    export_augmentation_model,
    load_exported_policy,
    load_policy,
)

from tests import images as real
from tests.conftest import PROJECT_ROOT, run_python

HAS_TF_KERAS = importlib.util.find_spec("tf_keras") is not None


@pytest.mark.parametrize(
    "legacy",
    [
        "0",
        pytest.param(
            "1",
            marks=pytest.mark.skipif(
                not HAS_TF_KERAS, reason="tf_keras is not installed (a Keras 3-only environment)"
            ),
        ),
    ],
    ids=["keras3", "tf_keras"],
)
def test_layer_trains_saves_exports_and_serves_in_both_keras_flavours(legacy, tmp_path):
    images_path = tmp_path / "images.npy"
    np.save(images_path, real.photo_crops(32, 16))
    env = {**os.environ, "TF_USE_LEGACY_KERAS": legacy}
    result = subprocess.run(
        [
            sys.executable,
            str(PROJECT_ROOT / "tests/scripts/keras_flavour_check.py"),
            str(images_path),
        ],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("FINDINGS "))
    findings = json.loads(line.removeprefix("FINDINGS "))
    assert findings["flavour"] == ("keras" if legacy == "0" else "tf_keras")
    assert findings["steps_taken"] == 2  # one step counter tick per training batch
    assert findings["ours_saved_model"], findings["ours_error"]
    assert findings["served_matches_inference"]
    assert findings["ours_model_export"] is True
    assert findings["inference_identity"]
    assert findings["training_calls_differ"]
    assert findings["config_round_trip"]
    assert findings["explicit_seeds_match_clone"]
    assert findings["keras_file_round_trip"] is True, findings["keras_file_round_trip"]
    if legacy == "0":
        # The reason this layer exists: Keras 3's own random layers cannot do this.
        assert not findings["builtin_random_flip_saved_model"]
        assert "seed_gener" in findings["builtin_error"]


def test_training_call_n_uses_the_documented_seeds():
    images = real.photo_crops(24, 4)
    layer = ImageAugmentation("standard", seed=11)
    layer(images)  # call 0
    second = layer(images).numpy()  # call 1
    expected = augment(images, batch_seeds(11, 1, 4), load_policy("standard")).numpy()
    np.testing.assert_array_equal(second, expected)


def test_two_layers_with_the_same_seed_see_the_same_augmentations():
    images = real.photo_crops(24, 4)
    first, second = ImageAugmentation("light", seed=5), ImageAugmentation("light", seed=5)
    for _ in range(3):
        np.testing.assert_array_equal(first(images).numpy(), second(images).numpy())
    assert not np.array_equal(
        ImageAugmentation("light", seed=6)(images).numpy(),
        ImageAugmentation("light", seed=5)(images).numpy(),
    )


def test_dataset_map_is_reproducible_with_parallel_calls():
    images = real.photo_crops(32, 24)
    labels = np.arange(24)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)
    layer = ImageAugmentation("standard", seed=1)
    sequential = [x.numpy() for x, _ in layer.map_dataset(dataset, num_parallel_calls=None)]
    parallel = [x.numpy() for x, _ in layer.map_dataset(dataset, num_parallel_calls=4)]
    again = [x.numpy() for x, _ in layer.map_dataset(dataset, num_parallel_calls=8)]
    for a, b, c in zip(sequential, parallel, again, strict=True):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    # Element n gets the seeds of training call n: the two doors of the layer agree.
    expected = augment(images[4:8], batch_seeds(1, 1, 4), load_policy("standard")).numpy()
    np.testing.assert_array_equal(sequential[1], expected)
    # Plain dataset.map(layer) also works (a single-threaded counter; see the README).
    assert next(iter(dataset.map(lambda x, y: (layer(x), y))))[0].shape == (4, 32, 32, 3)


def test_float_layer_in_value_range():
    digits, _ = real.digits(32)
    images = digits[:8].astype(np.float32) / 255.0
    out = ImageAugmentation("no-flip", seed=2, value_range=(0.0, 1.0))(images).numpy()
    assert out.dtype == np.float32 and out.min() >= 0.0 and out.max() <= 1.0


def test_multi_replica_training_gives_each_replica_its_own_seeds(tmp_path):
    code = """
from tfx_image_augment import environment; environment.configure()
import numpy as np, tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tfx_image_augment import ImageAugmentation
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = ImageAugmentation("standard", seed=4)
image = tf.constant(np.load(IMAGES)[:1])
@tf.function
def step():
    return strategy.run(lambda: layer(image))
per_replica = strategy.experimental_local_results(step())
print("REPLICAS", len(per_replica), int(np.array_equal(per_replica[0], per_replica[1])),
      int(layer._step.numpy()))
""".replace("IMAGES", repr(str(tmp_path / "images.npy")))
    np.save(tmp_path / "images.npy", real.photo_crops(32, 2))
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    line = next(x for x in result.stdout.splitlines() if x.startswith("REPLICAS"))
    replicas, identical, steps = map(int, line.split()[1:])
    assert replicas == 2
    assert identical == 0  # the same image on two replicas is augmented differently
    assert steps == 1  # replicas share one step counter


def test_exported_model_matches_the_core_and_loads_without_this_project(tmp_path):
    output = export_augmentation_model("randaugment", 9, str(tmp_path / "aug"))
    policy, seed = load_exported_policy(output)
    assert policy == load_policy("randaugment") and seed == 9
    record = json.loads((tmp_path / "aug/policy.json").read_text())
    assert record["fingerprint"] == policy.fingerprint

    images = real.photo_crops(40, 5)
    seeds = np.array([[9, i] for i in range(5)], np.int64)
    masks = np.zeros((5, 40, 40, 1), np.uint8)
    masks[:, 10:30, 5:20] = 3
    np.save(tmp_path / "images.npy", images)
    np.save(tmp_path / "seeds.npy", seeds)
    np.save(tmp_path / "masks.npy", masks)
    # `components` is made unimportable: only TensorFlow may be needed to use the export.
    code = f"""
import sys; sys.modules["tfx_image_augment"] = None
import numpy as np, tensorflow as tf
model = tf.saved_model.load({str(tmp_path / "aug/saved_model")!r})
folder = {str(tmp_path)!r}
images, seeds, masks = (np.load(f"{{folder}}/{{n}}.npy") for n in ("images", "seeds", "masks"))
augmented = model.signatures["augment"](images=images, seeds=seeds)["images"]
np.save(f"{{folder}}/out.npy", augmented.numpy())
both = model.signatures["augment_with_masks"](images=images, masks=masks, seeds=seeds)
np.save({str(tmp_path / "out_masks.npy")!r}, both["masks"].numpy())
np.save({str(tmp_path / "out_both.npy")!r}, both["images"].numpy())
"""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    expected, expected_masks = augment(images, seeds, policy, masks=masks)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected.numpy())
    np.testing.assert_array_equal(np.load(tmp_path / "out_both.npy"), expected.numpy())
    np.testing.assert_array_equal(np.load(tmp_path / "out_masks.npy"), expected_masks.numpy())


def test_exported_model_matches_the_keras_layer_given_the_same_seeds(tmp_path):
    export_augmentation_model("standard", 3, str(tmp_path / "aug"))
    model = tf.saved_model.load(str(tmp_path / "aug/saved_model"))
    images = real.photo_crops(32, 6)
    seeds = batch_seeds(3, 7, 6)
    layer = ImageAugmentation("standard", seed=3)
    np.testing.assert_array_equal(
        model.signatures["augment"](images=tf.constant(images), seeds=seeds)["images"].numpy(),
        layer({"images": images, "seeds": seeds}).numpy(),
    )


def test_a_float_image_of_uint8_data_is_not_wiped_by_the_default_range():
    # The README's Sequential behind a default float keras.Input: images in [0, 255] as float32.
    photos = real.photo_crops(32, 16)
    layer = ImageAugmentation("standard", seed=42)
    seeds = batch_seeds(42, 0, len(photos))
    as_float = layer({"images": photos.astype(np.float32), "seeds": seeds}).numpy()
    as_uint8 = layer({"images": photos, "seeds": seeds}).numpy().astype(np.float32)
    assert as_float.max() > 200 and as_float.min() >= 0.0  # kept in [0, 255], not clipped to 1
    assert np.abs(as_float - as_uint8).mean() < 2.0  # the same augmentation, up to rounding
    model = tf.keras.Sequential([tf.keras.Input((32, 32, 3)), ImageAugmentation("standard", 42)])
    out = model(photos.astype(np.float32), training=True).numpy()
    assert (out >= 254.5).mean() < 0.2  # 0.3's (0, 1) default made every pixel white


def test_map_dataset_moves_boxes_keypoints_and_masks_like_the_layer():
    images, boxes, labels, keypoints = _detection_batch()
    masks = (images[..., :1] > 100).astype(np.uint8)
    element = {
        "images": images,
        "bounding_boxes": {"boxes": boxes, "labels": labels},
        "keypoints": keypoints,
        "segmentation_masks": masks,
    }
    dataset = tf.data.Dataset.from_tensors(element).repeat(3)
    layer = ImageAugmentation("standard", seed=3)
    mapped = list(layer.map_dataset(dataset).as_numpy_iterator())
    for n, out in enumerate(mapped):
        expected = layer({**element, "seeds": batch_seeds(3, n, len(images))})
        np.testing.assert_array_equal(out["images"], expected["images"].numpy())
        np.testing.assert_array_equal(
            out["bounding_boxes"]["boxes"], expected["bounding_boxes"]["boxes"].numpy()
        )
        np.testing.assert_array_equal(out["keypoints"], expected["keypoints"].numpy())
        np.testing.assert_array_equal(
            out["segmentation_masks"], expected["segmentation_masks"].numpy()
        )
        assert out["keypoint_visibility"].shape == keypoints.shape[:-1]  # given out when absent
    assert not np.array_equal(mapped[0]["bounding_boxes"]["boxes"], boxes)
    with pytest.raises(KeyError, match="needs an 'images' key"):
        layer.map_dataset(tf.data.Dataset.from_tensors({"pixels": images}))
    with pytest.raises(KeyError, match="feature 'photo' is not in"):
        layer.map_dataset(tf.data.Dataset.from_tensors({"pixels": images}), feature="photo")


def test_map_dataset_makes_new_copies_each_epoch_and_the_same_first_epoch():
    images = real.photo_crops(32, 8)
    dataset = tf.data.Dataset.from_tensor_slices(images).batch(4)
    layer = ImageAugmentation("standard", seed=7)
    mapped = layer.map_dataset(dataset)
    first, second = ([b for b in mapped.as_numpy_iterator()] for _ in range(2))
    assert not np.array_equal(first[0], second[0])
    again = list(ImageAugmentation("standard", seed=7).map_dataset(dataset).as_numpy_iterator())
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    fixed = layer.map_dataset(dataset, new_copies_each_epoch=False)
    np.testing.assert_array_equal(next(iter(fixed)).numpy(), next(iter(fixed)).numpy())


def test_one_image_takes_seeds_of_shape_2():
    image = real.photo_crops(32, 1)[0]
    layer = ImageAugmentation("standard", seed=1)
    seeds = tf.constant([5, 9], tf.int64)
    alone = layer({"images": image, "seeds": seeds, "keypoints": tf.zeros([1, 1, 2])})
    batch = layer(
        {"images": image[None], "seeds": seeds[None], "keypoints": tf.zeros([1, 1, 1, 2])}
    )
    np.testing.assert_array_equal(alone["images"].numpy(), batch["images"].numpy()[0])


def _detection_batch():
    photos = real.photo_crops(48, 4, seed=2)
    boxes = np.tile(np.array([[[0.1, 0.2, 0.5, 0.6], [0.3, 0.3, 0.9, 0.8]]], np.float32), (4, 1, 1))
    labels = np.tile(np.array([[1, 2]], np.int64), (4, 1))
    keypoints = boxes.reshape(4, 2, 2, 2)  # each box's corners as two keypoints
    return photos, boxes, labels, keypoints


def test_a_keras_file_loads_after_import_tfx_image_augment(tmp_path):
    path = str(tmp_path / "m.keras")
    save = (
        "import keras\n"
        "from tfx_image_augment import ImageAugmentation\n"
        "layer = ImageAugmentation('standard', seed=1)\n"
        "model = keras.Sequential([keras.Input((8, 8, 3)), layer])\n"
        f"model.save({path!r})\n"
    )
    load = (
        "import keras\n"
        "import tfx_image_augment  # registers the layer with the Keras already loaded\n"
        f"model = keras.saving.load_model({path!r})\n"
        "print('LOADED', type(model.layers[0]).__module__)\n"
    )
    for code in (save, load):
        result = run_python(code, TF_USE_LEGACY_KERAS="0")
        assert result.returncode == 0, result.stderr[-2000:]
    assert "LOADED tfx_image_augment.online.layer" in result.stdout
