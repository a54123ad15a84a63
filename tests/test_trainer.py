"""The example Trainer on a mixing policy's output: soft targets from each copy's weight and its
partner's label, read through the raw feature spec Transform would use (a schema inferred by
TFDV from the real records, as SchemaGen does), and a model that trains on them."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_transform.tf_metadata import schema_utils
from tfx_image_augment.cli.commands import main

from pipelines import features, trainer
from pipelines.data import image_example
from tests import images as real
from tests.records import read_records, write_records

MIXUP = {"version": 1, "ops": [{"op": "mixup", "alpha": 0.4}]}


def _flat(values) -> tf.Tensor:
    """A parsed feature with one value per example as [B], whichever spec the schema gave."""
    if isinstance(values, tf.SparseTensor):
        values = tf.sparse.to_dense(values)
    return tf.reshape(values, [-1])


def test_mixed_copies_train_on_soft_targets_through_the_inferred_raw_spec(tmp_path):
    import tensorflow_data_validation as tfdv

    digits, labels = real.digits(16)
    records = [
        image_example(tf.io.encode_png(image).numpy(), label, f"d{i}")
        for i, (image, label) in enumerate(zip(digits[:40], labels[:40], strict=True))
    ]
    write_records(tmp_path / "in/data.tfrecord", records)
    out = tmp_path / "out"
    args = ["run", "--input", str(tmp_path / "in/*"), "--output", str(out), "--copies", "2"]
    args += ["--policy", json.dumps(MIXUP), "--key-feature", "id", "--label-feature", "label"]
    assert main([*args, "--", "--direct_num_workers=1"]) == 0
    written = read_records(str(out / "data_tfrecord-*"))
    schema = tfdv.infer_schema(tfdv.generate_statistics_from_tfrecord(str(out / "data_tfrecord-*")))
    spec = schema_utils.schema_as_feature_spec(schema).feature_spec
    assert features.MIX_WEIGHT_KEY in spec  # what run_fn checks to train on soft targets
    # The originals have no weight: the spec is sparse, and soft_targets fills in 1.
    assert isinstance(spec[features.MIX_WEIGHT_KEY], tf.io.VarLenFeature)

    raw = tf.io.parse_example(tf.constant(written), spec)
    label = tf.cast(_flat(raw["label"]), tf.int64)
    targets = trainer.soft_targets(raw, label).numpy()
    for record, target in zip(written, targets, strict=True):
        feature = tf.train.Example.FromString(record).features.feature
        expected = np.zeros(features.NUM_CLASSES, np.float32)
        own = feature["label"].int64_list.value[0]
        if features.MIX_WEIGHT_KEY in feature:  # a copy: own label at w, the partner's at 1 - w
            weight = feature[features.MIX_WEIGHT_KEY].float_list.value[0]
            expected[own] += weight
            expected[feature[features.MIX_PARTNER_LABEL_KEY].int64_list.value[0]] += 1 - weight
        else:  # an original: one-hot
            expected[own] = 1.0
        np.testing.assert_allclose(target, expected, rtol=0, atol=1e-6)
    assert sum(0.05 < t.max() < 0.95 for t in targets) > 20  # mixed copies really are soft

    config = trainer.settings({"soft_targets": True, "image_size": 16, "channels": 1})
    model = trainer.build_model(config)
    images = tf.image.convert_image_dtype(
        tf.stack([tf.io.decode_png(r) for r in _flat(raw["image"])]), tf.float32
    )
    history = model.fit(images, targets, batch_size=40, epochs=2, verbose=0)
    assert np.all(np.isfinite(history.history["loss"]))
    assert "categorical_accuracy" in history.history


def test_the_online_modes_refuse_a_mixing_policy_in_one_sentence():
    config = trainer.settings({"mode": "both", "policy": MIXUP})
    with pytest.raises(ValueError, match="this trainer mixes offline only"):
        trainer.augmentation_layer(config)


def test_soft_targets_refuse_examples_without_their_partners_labels():
    raw = {features.MIX_WEIGHT_KEY: tf.constant([[0.5]])}
    with pytest.raises(ValueError, match="run ImageAugment with label_feature set"):
        trainer.soft_targets(raw, tf.constant([3], tf.int64))
