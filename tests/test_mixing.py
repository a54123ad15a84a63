"""MixUp, CutMix and Mosaic offline: every copy's partner is a deterministic function of the
seed and the split's keys, so runs agree byte for byte whatever the runner, worker count or
input files; each mixed copy records its partners and weight, and the SavedModel replays it
exactly from its original, its partners and its seed (a mosaic's boxes and per-object values
too). Real photo crops and digits (scikit-learn's)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.cli.commands import main
from tfx_image_augment.io.reader import read_images
from tfx_image_augment.io.records import (
    BOX_SIDES,
    MIX_PARTNER_KEY_FEATURE,
    MIX_PARTNER_LABEL_FEATURE,
    MIX_WEIGHT_FEATURE,
)

from pipelines.data import image_example
from tests import images as real
from tests.detection_data import detection_example, scene
from tests.records import read_records, write_records

MIXING = {
    "version": 1,
    "ops": [
        {"op": "flip_left_right", "p": 0.5},
        {"op": "one_of", "ops": [{"op": "mixup", "alpha": 0.4}, {"op": "cutmix"}], "p": 0.9},
        {"op": "brightness", "max_delta": 0.1},
    ],
}
MULTI = ("--direct_running_mode=multi_processing", "--direct_num_workers=2")


def _photo_records(count: int = 60) -> list[bytes]:
    crops = real.photo_crops(32, count)
    return [
        image_example(tf.io.encode_png(crop).numpy(), i % 5, f"p{i}")
        for i, crop in enumerate(crops)
    ]


def _run(tmp_path, name, pattern, *extra, policy=MIXING, beam=("--direct_num_workers=1",)):
    out = tmp_path / name
    args = ["run", "--input", pattern, "--output", str(out), "--policy", json.dumps(policy)]
    args += ["--copies", "3", "--seed", "7", "--key-feature", "id", "--label-feature", "label"]
    assert main([*args, *extra, "--", *beam]) == 0
    summary = json.loads((out / "augment_summary.json").read_text())
    return out, summary, sorted(read_records(str(out / "data_tfrecord-*")))


def _features(record: bytes):
    return tf.train.Example.FromString(record).features.feature


def _check_every_copy_replays(out, records) -> list[float]:
    """Every copy equals the SavedModel's `augment_with_partners` of its original, its
    recorded partner and its seed, weight included; returns the weights."""
    originals, copies = {}, []
    for record in records:
        features = _features(record)
        key = features["aug_source_key"].bytes_list.value[0]
        if features["aug_copy_index"].int64_list.value[0] == 0:
            originals[key] = features
        else:
            copies.append(features)
    model = tf.saved_model.load(str(out / "augmentation_model/saved_model"))
    replay = model.signatures["augment_with_partners"]

    def pixels(features):
        return tf.io.decode_png(features["image"].bytes_list.value[0]).numpy()

    images, partners, seeds, written, weights = [], [], [], [], []
    for copy in copies:
        own = originals[copy["aug_source_key"].bytes_list.value[0]]
        partner = originals[copy[MIX_PARTNER_KEY_FEATURE].bytes_list.value[0]]
        # The partner's label rides along for the soft target.
        assert copy[MIX_PARTNER_LABEL_FEATURE] == partner["label"]
        images.append(pixels(own))
        partners.append(pixels(partner))
        seeds.append(list(copy["aug_seed"].int64_list.value))
        written.append(pixels(copy))
        weights.append(copy[MIX_WEIGHT_FEATURE].float_list.value[0])
    out_ = replay(
        images=tf.constant(np.stack(images)),
        partners=tf.constant(np.stack(partners)),
        seeds=tf.constant(seeds, tf.int64),
    )
    np.testing.assert_array_equal(out_["images"].numpy(), np.stack(written))
    np.testing.assert_array_equal(out_["mix_weights"].numpy(), np.array(weights, np.float32))
    # The reader's soft targets: each copy's own class at w, its partner's at 1 - w.
    expected = {}
    for copy, weight in zip(copies, weights, strict=True):
        target = np.zeros(10, np.float32)
        target[copy["label"].int64_list.value[0]] += weight
        target[copy[MIX_PARTNER_LABEL_FEATURE].int64_list.value[0]] += 1 - weight
        expected.setdefault(pixels(copy).tobytes(), []).append(target)
    read = 0
    for image, target in read_images(
        str(out / "data_tfrecord-copies-*"), num_classes=10
    ).as_numpy_iterator():
        assert any(np.allclose(target, t, rtol=0, atol=1e-6) for t in expected[image.tobytes()])
        read += 1
    assert read == len(copies)
    for _, target in read_images(str(out / "data_tfrecord-originals-*"), num_classes=10):
        assert sorted(target.numpy().tolist())[-2:] == [0.0, 1.0]  # originals: one-hot
    return weights


def test_mixed_copies_replay_exactly_and_agree_across_runners_and_input_files(tmp_path):
    records = _photo_records()
    write_records(tmp_path / "one/data.tfrecord", records)
    out, summary, written = _run(tmp_path, "inmemory", str(tmp_path / "one/*"))
    assert summary["copies_written"] == 3 * len(records)

    weights = _check_every_copy_replays(out, written)
    # one_of at p 0.9 mixes about 90% of copies; MixUp at alpha 0.4 and CutMix's clipped boxes
    # leave every mixed weight strictly inside (0, 1) but for a few CutMix boxes clipped away.
    mixed = [w for w in weights if w < 1.0]
    assert 0.75 * len(weights) < len(mixed) < len(weights)
    assert all(0.0 <= w <= 1.0 for w in weights)
    partners_of = {}
    for record in written:
        features = _features(record)
        if features["aug_copy_index"].int64_list.value[0]:
            own = features["aug_source_key"].bytes_list.value[0]
            partner = features[MIX_PARTNER_KEY_FEATURE].bytes_list.value[0]
            assert partner != own
            partners_of.setdefault(own, set()).add(partner)
    # Partners spread over the split (180 copies in 2 buckets), not a fixed neighbour.
    assert len({p for ps in partners_of.values() for p in ps}) > len(records) // 2

    for index in range(3):
        write_records(tmp_path / f"three/data-{index}.tfrecord", records[index::3])
    _, _, again = _run(tmp_path, "multiprocess", str(tmp_path / "three/*"), beam=MULTI)
    assert again == written


def test_balanced_classes_mix_with_partners_from_the_whole_balanced_split(tmp_path):
    digits, labels = real.digits(32)
    kept, counts = [], {}
    for i, (image, label) in enumerate(zip(digits, labels, strict=True)):
        limit = 4 if label == 3 else 10
        if counts.get(int(label), 0) < limit:
            counts[int(label)] = counts.get(int(label), 0) + 1
            kept.append(image_example(tf.io.encode_png(image).numpy(), label, f"d{i}"))
    write_records(tmp_path / "in/data.tfrecord", kept)
    out, summary, written = _run(tmp_path, "balanced", str(tmp_path / "in/*"), "--balance", "equal")
    # Balancing decides the copies first (class 3: 4 examples -> 40 records), then mixing pairs
    # each copy with another copy's example: a rare class's copies mostly mix with others.
    assert set(summary["classes"]["out"].values()) == {40}
    _check_every_copy_replays(out, written)
    rare = [
        _features(r)
        for r in written
        if _features(r)["label"].int64_list.value[0] == 3
        and _features(r)["aug_copy_index"].int64_list.value[0]
    ]
    partner_labels = [f[MIX_PARTNER_LABEL_FEATURE].int64_list.value[0] for f in rare]
    assert len(rare) == 36 and sum(label != 3 for label in partner_labels) > len(rare) // 2


def test_a_mixing_policy_refuses_masks_at_once_and_quarantines_records_with_boxes(tmp_path, capsys):
    base = ["run", "--input", str(tmp_path / "in/*"), "--output", str(tmp_path / "o")]
    assert main([*base, "--policy", json.dumps(MIXING), "--mask-feature", "mask"]) == 2
    assert "'mask_feature' must be left unset with a policy that mixes images (mixup, cutmix)" in (
        capsys.readouterr().err
    )
    images, boxes, _, labels = scene(4)
    records = [
        detection_example(images[i], boxes[i], labels[i], f"s{i}") for i in range(len(images))
    ]
    write_records(tmp_path / "in/data.tfrecord", records)
    assert main([*base, "--policy", json.dumps(MIXING), "--", "--direct_num_workers=1"]) == 1
    err = capsys.readouterr().err
    assert "4 of 4 examples (100.0%) were quarantined" in err
    assert "objects_with_mixing" in err


def test_the_component_writes_the_mix_features_even_without_provenance(tmp_path):
    from tfx_image_augment.offline.config import AugmentConfig

    from tests.executor_helpers import counts, examples_artifact, run_executor

    records = _photo_records(20)
    examples = examples_artifact(tmp_path / "in", {"train": records, "eval": records[:5]}, 2)
    config = AugmentConfig.from_user(
        policy=MIXING, num_copies=2, key_feature="id", label_feature="label", provenance=False
    )
    augmented, _ = run_executor(examples, tmp_path, config)
    assert counts(augmented)["train"]["copies_written"] == 40
    keys = {_features(r)["id"].bytes_list.value[0] for r in records}
    train = read_records(f"{augmented.uri}/Split-train/*")
    copies = [_features(r) for r in train if r not in records]
    assert len(copies) == 40
    for copy in copies:
        assert "aug_seed" not in copy and 0.0 <= copy[MIX_WEIGHT_FEATURE].float_list.value[0] <= 1
        assert copy[MIX_PARTNER_KEY_FEATURE].bytes_list.value[0] in keys
    assert sorted(read_records(f"{augmented.uri}/Split-eval/*")) == sorted(records[:5])


MOSAIC = {
    "version": 1,
    "ops": [{"op": "mosaic", "p": 0.9}, {"op": "flip_left_right", "p": 0.5}],
}


def test_mosaic_copies_carry_their_partners_objects_and_replay_exactly(tmp_path, capsys):
    images, boxes, _, labels = scene(12, seed=3)
    records = [
        detection_example(images[i], boxes[i], labels[i], f"s{i}") for i in range(len(images))
    ]
    # One record with keypoints: mosaic moves boxes only, so it is quarantined with the reason.
    points = np.full((2, 1, 2), 0.5, np.float32)
    odd = detection_example(images[0], boxes[0], labels[0], "kp", keypoints=points)
    write_records(tmp_path / "one/data.tfrecord", [*records, odd])
    out = tmp_path / "mosaic"
    args = ["run", "--input", str(tmp_path / "one/*"), "--output", str(out)]
    args += ["--policy", json.dumps(MOSAIC), "--copies", "3", "--seed", "5"]
    args += ["--key-feature", "image/source_id", "--max-quarantine-fraction", "0.1"]
    assert main([*args, "--", "--direct_num_workers=1"]) == 0
    assert "objects_with_mixing" in capsys.readouterr().out  # the run's summary
    written = read_records(str(out / "data_tfrecord-*"))
    originals, copies = {}, []
    for record in written:
        features = _features(record)
        key = features["image/source_id"].bytes_list.value[0]
        if features["aug_copy_index"].int64_list.value[0]:
            copies.append((key, features))
        else:
            originals[key] = features
    assert len(originals) == 12 and len(copies) == 36

    def pixels(features):
        return tf.io.decode_png(features["image/encoded"].bytes_list.value[0]).numpy()

    def objects(features):
        sides = [features[f"image/object/bbox/{s}"].float_list.value for s in BOX_SIDES]
        return np.array(sides, np.float32).T.reshape(-1, 4)

    def per_object(features, name="image/object/class/label"):
        return list(features[name].int64_list.value)

    own, around, seeds = [], [], []
    for key, copy in copies:
        keys = list(copy[MIX_PARTNER_KEY_FEATURE].bytes_list.value)
        # Three partners of three other examples (a bucket of 36 copies has enough).
        assert len(keys) == len(set(keys)) == 3 and key not in keys
        own.append(originals[key])
        around.append([originals[k] for k in keys])
        seeds.append(list(copy["aug_seed"].int64_list.value))
    model = tf.saved_model.load(str(out / "augmentation_model/saved_model"))
    replayed = model.signatures["augment_with_partner_boxes"](
        images=tf.constant(np.stack([pixels(f) for f in own])),
        partners=tf.constant(np.stack([[pixels(f) for f in group] for group in around])),
        seeds=tf.constant(seeds, tf.int64),
        boxes=tf.constant(np.stack([objects(f) for f in own])),
        box_valid=tf.ones([len(own), 2], tf.bool),
        partner_boxes=tf.constant(np.stack([[objects(f) for f in group] for group in around])),
        partner_box_valid=tf.ones([len(own), 3, 2], tf.bool),
    )
    replayed = {name: value.numpy() for name, value in replayed.items()}
    np.testing.assert_array_equal(replayed["images"], np.stack([pixels(c) for _, c in copies]))
    weights = [c[MIX_WEIGHT_FEATURE].float_list.value[0] for _, c in copies]
    np.testing.assert_array_equal(replayed["mix_weights"], np.array(weights, np.float32))
    assert 20 < sum(w < 1 for w in weights) < 36  # p 0.9
    for i, (_, copy) in enumerate(copies):
        valid = replayed["box_valid"][i]
        np.testing.assert_array_equal(objects(copy), replayed["boxes"][i][valid])
        # Every per-object list follows its boxes: own objects first, then each partner's.
        members = [own[i], *around[i]]
        labels_ = [v for m in members for v in per_object(m)]
        texts = [v for m in members for v in m["image/object/class/text"].bytes_list.value]
        assert per_object(copy) == [v for v, kept in zip(labels_, valid, strict=True) if kept]
        assert list(copy["image/object/class/text"].bytes_list.value) == [
            v for v, kept in zip(texts, valid, strict=True) if kept
        ]
        assert len(copy["image/object/area"].float_list.value) == valid.sum()
    # Copies where mosaic applied hold objects of their partners.
    assert sum(replayed["box_valid"][:, 2:].any(axis=1)) > 20

    for index in range(3):
        write_records(tmp_path / f"three/data-{index}.tfrecord", [*records, odd][index::3])
    args[2], args[4] = str(tmp_path / "three/*"), str(tmp_path / "again")
    assert main([*args, "--", *MULTI]) == 0
    assert sorted(read_records(str(tmp_path / "again/data_tfrecord-*"))) == sorted(written)


def test_which_objects_each_mixing_policy_quarantines():
    from tfx_image_augment.core.plan import compile_policy
    from tfx_image_augment.core.policy import load_policy
    from tfx_image_augment.io.quarantine import Quarantined
    from tfx_image_augment.offline.mixing import check_mixable
    from tfx_image_augment.offline.objects import Objects

    boxes = Objects(np.array([[0.1, 0.1, 0.5, 0.5]], np.float32))
    with_points = Objects(boxes.boxes, np.zeros((1, 1, 2), np.float32), np.ones((1, 1), np.int64))

    def plan(*ops):
        return compile_policy(load_policy({"version": 1, "ops": [{"op": op} for op in ops]}))

    check_mixable(boxes, plan("mosaic"))  # mosaic moves boxes
    check_mixable(None, plan("mixup"))  # a record without objects mixes
    for objects, ops, detail in (
        (boxes, ("mixup",), "1 boxes; mixup moves no boxes"),
        (with_points, ("mosaic",), "keypoints; mosaic moves boxes only"),
        (boxes, ("mosaic", "mosaic"), "1 boxes; the policy tiles 2 times, boxes once"),
    ):
        with pytest.raises(Quarantined) as caught:
            check_mixable(objects, plan(*ops))
        assert caught.value.reason == "objects_with_mixing" and caught.value.detail == detail
