"""Bad input: every broken example is quarantined whole, with its reason, and counted."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment import codec
from tfx_image_augment.completion import IncompleteOutputError
from tfx_image_augment.config import AugmentConfig
from tfx_image_augment.expansion import (
    CorruptInputError,
    QuarantineLimitExceeded,
    first_quarantine_reasons,
)
from tfx_image_augment.reader import read_images
from tfx_image_augment.records import (
    QUARANTINE_REASON_FEATURE,
    QUARANTINE_RECORD_FEATURE,
    compression_of,
    quarantine_record,
)

from tests import images as real
from tests.executor_helpers import counts, examples_artifact, run_executor
from tests.pipeline_helpers import read_records, write_records


def _example(image_feature=None, label=1, **extra) -> tf.train.Example:
    example = tf.train.Example()
    features = example.features.feature
    if image_feature is not None:
        features["image"].CopyFrom(image_feature)
    features["label"].int64_list.value.append(label)
    for name, feature in extra.items():
        features[name].CopyFrom(feature)
    return example


def _bytes(value: bytes) -> tf.train.Feature:
    return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))


def _png(pixels: np.ndarray) -> bytes:
    return tf.io.encode_png(pixels).numpy()


def _good_records(count: int) -> list[bytes]:
    """Real photo crops as PNG examples (the images that scikit-learn ships)."""
    return [
        _example(_bytes(_png(crop)), label=i).SerializeToString()
        for i, crop in enumerate(real.photo_crops(24, count, seed=8))
    ]


def _catalogue() -> dict[str, bytes]:
    """One broken record per reason; synthetic, since real datasets hide no such damage."""
    photo = real.photo_crops(24, 1, seed=9)[0]
    png = _png(photo)
    jpeg = tf.io.encode_jpeg(photo, quality=90).numpy()
    gray_alpha = np.concatenate([photo[..., :1], photo[..., :1]], axis=-1)
    return {
        codec.IMAGE_EMPTY: _example(_bytes(b"")).SerializeToString(),
        codec.NOT_AN_IMAGE: _example(_bytes(b"this is not a picture")).SerializeToString(),
        codec.IMAGE_UNDECODABLE + "/png": _example(
            _bytes(png[: len(png) // 2])
        ).SerializeToString(),
        codec.IMAGE_UNDECODABLE + "/jpeg": _example(
            _bytes(jpeg[: len(jpeg) // 3])
        ).SerializeToString(),
        codec.IMAGE_WRONG_TYPE: _example(
            tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2, 3]))
        ).SerializeToString(),
        codec.IMAGE_MISSING: _example(None).SerializeToString(),
        codec.NOT_AN_EXAMPLE: b"\xff\xfe definitely not a protocol buffer",
        codec.IMAGE_BAD_SHAPE: _example(_bytes(_png(gray_alpha))).SerializeToString(),
    }


def _quarantined(augmented) -> list[tuple[str, bytes]]:
    out = []
    for record in read_records(f"{augmented.uri}/quarantine/Split-train/*"):
        features = tf.train.Example.FromString(record).features.feature
        out.append(
            (
                features[QUARANTINE_REASON_FEATURE].bytes_list.value[0].decode(),
                features[QUARANTINE_RECORD_FEATURE].bytes_list.value[0],
            )
        )
    return out


def test_catalogue_of_broken_inputs_is_quarantined_whole_and_counted(tmp_path):
    broken = _catalogue()
    good = _good_records(40)
    records = good[:20] + list(broken.values()) + good[20:]
    examples = examples_artifact(tmp_path / "in", {"train": records, "eval": good[:5]})
    augmented, _ = run_executor(
        examples, tmp_path, AugmentConfig(policy="light", num_copies=2, max_quarantine_fraction=0.5)
    )

    split = counts(augmented)["train"]
    expected_reasons = {}
    for name in broken:
        reason = name.split("/")[0]
        expected_reasons[reason] = expected_reasons.get(reason, 0) + 1
    assert split["quarantined"] == expected_reasons
    # Nothing lost: read = augmented (each original written once) + quarantined.
    assert split["examples_read"] == split["originals_written"] + sum(split["quarantined"].values())
    assert split["originals_written"] == 40 and split["copies_written"] == 80
    # Each bad record sits in the quarantine whole and unchanged, beside its reason.
    quarantined = _quarantined(augmented)
    assert sorted(r for r, _ in quarantined) == sorted(n.split("/")[0] for n in broken)
    assert sorted(rec for _, rec in quarantined) == sorted(broken.values())


def test_masks_missing_or_mismatched_are_quarantined(tmp_path):
    crops = real.photo_crops(24, 6, seed=2)
    mask = np.zeros((24, 24, 1), np.uint8)
    mask[5:15, 5:20] = 1
    good = [
        _example(_bytes(_png(c)), mask=_bytes(_png(mask))).SerializeToString() for c in crops[:4]
    ]
    wrong = _example(_bytes(_png(crops[4])), mask=_bytes(_png(mask[:20]))).SerializeToString()
    missing = _example(_bytes(_png(crops[5]))).SerializeToString()
    examples = examples_artifact(tmp_path / "in", {"train": good + [wrong, missing]})
    augmented, _ = run_executor(
        examples,
        tmp_path,
        AugmentConfig(
            policy="standard", num_copies=1, mask_feature="mask", max_quarantine_fraction=0.5
        ),
    )
    assert counts(augmented)["train"]["quarantined"] == {
        codec.MASK_SHAPE_MISMATCH: 1,
        codec.MASK_MISSING: 1,
    }
    for record in read_records(f"{augmented.uri}/Split-train/*"):
        features = tf.train.Example.FromString(record).features.feature
        out_mask = tf.io.decode_png(features["mask"].bytes_list.value[0]).numpy()
        assert set(np.unique(out_mask)) <= {0, 1}  # nearest sampling: labels stay labels


def test_above_the_quarantine_limit_the_run_fails_with_counts_and_first_reasons(tmp_path):
    broken = _catalogue()
    records = _good_records(10) + [broken[codec.NOT_AN_IMAGE], broken[codec.IMAGE_EMPTY]]
    examples = examples_artifact(tmp_path / "in", {"train": records})
    with pytest.raises(QuarantineLimitExceeded) as raised:
        run_executor(examples, tmp_path, AugmentConfig(policy="light", num_copies=1))
    message = str(raised.value)
    assert "2 of 12 examples (16.7%)" in message
    assert "max_quarantine_fraction=0.01" in message
    assert codec.NOT_AN_IMAGE in message and codec.IMAGE_EMPTY in message
    assert "\n" not in message
    # The artifact folder keeps the quarantine alone, without a completion marker: readers
    # refuse it, and nothing of the failed run's data or model is left to mistake for output.
    augmented = tmp_path / "augmented"
    assert message.endswith(f"The bad records are kept whole in {augmented / 'quarantine'}.")
    assert sorted(p.name for p in augmented.iterdir()) == ["quarantine"]
    assert list((tmp_path / "model").iterdir()) == []
    kept = [
        tf.train.Example.FromString(record).features.feature
        for record in read_records(f"{augmented}/quarantine/Split-train/*")
    ]
    assert sorted(
        (
            f[QUARANTINE_REASON_FEATURE].bytes_list.value[0].decode(),
            f[QUARANTINE_RECORD_FEATURE].bytes_list.value[0],
        )
        for f in kept
    ) == sorted(
        [
            (codec.NOT_AN_IMAGE, broken[codec.NOT_AN_IMAGE]),
            (codec.IMAGE_EMPTY, broken[codec.IMAGE_EMPTY]),
        ]
    )
    with pytest.raises(IncompleteOutputError, match="has no completion marker"):
        read_images(str(augmented), split="train")


def test_a_corrupt_tfrecord_file_fails_the_run_naming_the_file(tmp_path):
    records = _good_records(12)
    examples = examples_artifact(tmp_path / "in", {"train": records})
    path = next((tmp_path / "in/Split-train").glob("*"))
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip one byte: the record's CRC no longer matches
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptInputError) as raised:
        run_executor(examples, tmp_path, AugmentConfig(policy="light", num_copies=1))
    assert str(path) in str(raised.value)


def test_a_truncated_tfrecord_file_fails_the_run_naming_the_file(tmp_path):
    path = tmp_path / "in/Split-train/data.tfrecord"
    write_records(path, _good_records(12))
    path.write_bytes(path.read_bytes()[:-100])
    examples = examples_artifact(tmp_path / "other", {"train": []})
    examples.uri = str(tmp_path / "in")
    with pytest.raises(CorruptInputError, match="data.tfrecord"):
        run_executor(examples, tmp_path, AugmentConfig(policy="light", num_copies=1))


@pytest.mark.parametrize(
    "path, compression",
    [
        ("out/data_tfrecord-00000-of-00002.gz", "GZIP"),
        ("gs://bucket/train/data.tfrecord", ""),
        ("in/part.gz.tfrecord", ""),
    ],
)
def test_gzip_is_told_by_the_file_name(path, compression):
    assert compression_of(path) == compression


def test_first_quarantine_reasons_reads_gzipped_and_plain_files(tmp_path):
    write_records(
        tmp_path / "Split-a/quarantine_tfrecord-00000.gz",
        [quarantine_record(b"a", codec.IMAGE_EMPTY, "image: zero bytes")],
        gzip=True,
    )
    write_records(
        tmp_path / "Split-b/quarantine_tfrecord-00000",
        [quarantine_record(b"b", codec.NOT_AN_IMAGE, "image: 1 bytes with no signature")],
    )
    assert first_quarantine_reasons(str(tmp_path / "Split-*/quarantine_tfrecord*")) == [
        "image_empty (image: zero bytes)",
        "not_an_image (image: 1 bytes with no signature)",
    ]
