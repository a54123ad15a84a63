"""Bad input: every broken example is quarantined whole, with its reason, and counted."""

from __future__ import annotations

import functools
import io
import json
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from tfx_image_augment import load_policy
from tfx_image_augment.core.augment import augment
from tfx_image_augment.io import codec, quarantine
from tfx_image_augment.io.completion import IncompleteOutputError
from tfx_image_augment.io.reader import read_images
from tfx_image_augment.io.records import (
    QUARANTINE_DETAIL_FEATURE,
    QUARANTINE_REASON_FEATURE,
    QUARANTINE_RECORD_FEATURE,
    compression_of,
    quarantine_record,
)
from tfx_image_augment.offline.beam.expansion import (
    CorruptInputError,
    QuarantineLimitExceeded,
    first_quarantine_reasons,
)
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.decode import decode_example, decode_examples

from tests import images as real
from tests.executor_helpers import counts, examples_artifact, run_executor
from tests.records import read_records, write_records


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


def _pil(frames, fmt: str, **options) -> bytes:
    """Images encoded by Pillow (TensorFlow writes no GIF, BMP or animated PNG); more than one
    frame makes an animation."""
    first, *rest = (Image.fromarray(np.asarray(f)) for f in frames)
    if rest:
        options.update(save_all=True, append_images=rest)
    buffer = io.BytesIO()
    first.save(buffer, fmt, **options)
    return buffer.getvalue()


def _png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


@functools.cache
def _png_bomb(width: int = 8000, height: int = 8000) -> bytes:
    """A valid 8-bit grey PNG of width x height (default 64 MP, above the default limit) that
    is a few hundred KB: a real photo in its top-left corner, black elsewhere. Compressed row by
    row, so it is never held decoded here."""
    photo = real.sample_photos()[0][: min(height, 427), : min(width, 640), 1]
    compressor = zlib.compressobj()
    blank = bytes(width + 1)  # filter byte 0, then the row
    rows = []
    for y in range(height):
        row = bytearray(blank)
        if y < photo.shape[0]:
            row[1 : 1 + photo.shape[1]] = photo[y].tobytes()
        rows.append(compressor.compress(bytes(row)))
    data = b"".join(rows) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _png_chunk(b"IHDR", header)
        + _png_chunk(b"IDAT", data)
        + _png_chunk(b"IEND", b"")
    )


def _gif_on_a_larger_screen(photo: np.ndarray) -> bytes:
    """A still GIF whose logical screen is 8 pixels larger than its one frame: TensorFlow
    decodes the frame alone, at a size other than the header's."""
    data = bytearray(_pil([photo], "GIF"))
    data[6:10] = struct.pack("<HH", photo.shape[1] + 8, photo.shape[0] + 8)
    return bytes(data)


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
    frames = real.photo_crops(24, 3, seed=4)
    return {
        quarantine.IMAGE_TOO_LARGE: _example(_bytes(_png_bomb())).SerializeToString(),
        quarantine.IMAGE_ANIMATED + "/gif": _example(
            _bytes(_pil(frames, "GIF"))
        ).SerializeToString(),
        quarantine.IMAGE_ANIMATED + "/apng": _example(
            _bytes(_pil(frames, "PNG"))
        ).SerializeToString(),
        quarantine.IMAGE_UNDECODABLE + "/gif": _example(
            _bytes(_gif_on_a_larger_screen(photo))
        ).SerializeToString(),
        quarantine.IMAGE_EMPTY: _example(_bytes(b"")).SerializeToString(),
        quarantine.NOT_AN_IMAGE: _example(_bytes(b"this is not a picture")).SerializeToString(),
        quarantine.IMAGE_UNDECODABLE + "/png": _example(
            _bytes(png[: len(png) // 2])
        ).SerializeToString(),
        quarantine.IMAGE_UNDECODABLE + "/jpeg": _example(
            _bytes(jpeg[: len(jpeg) // 3])
        ).SerializeToString(),
        quarantine.IMAGE_WRONG_TYPE: _example(
            tf.train.Feature(int64_list=tf.train.Int64List(value=[1, 2, 3]))
        ).SerializeToString(),
        quarantine.IMAGE_MISSING: _example(None).SerializeToString(),
        quarantine.NOT_AN_EXAMPLE: b"\xff\xfe definitely not a protocol buffer",
        quarantine.IMAGE_BAD_SHAPE: _example(_bytes(_png(gray_alpha))).SerializeToString(),
    }


def _quarantined(augmented) -> list[tuple[str, bytes, str]]:
    """(reason, the input record, detail) of every quarantined record."""
    out = []
    for record in read_records(f"{augmented.uri}/quarantine/Split-train/*"):
        features = tf.train.Example.FromString(record).features.feature
        out.append(
            (
                features[QUARANTINE_REASON_FEATURE].bytes_list.value[0].decode(),
                features[QUARANTINE_RECORD_FEATURE].bytes_list.value[0],
                features[QUARANTINE_DETAIL_FEATURE].bytes_list.value[0].decode(),
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
    assert sorted(r for r, _, _ in quarantined) == sorted(n.split("/")[0] for n in broken)
    assert sorted(rec for _, rec, _ in quarantined) == sorted(broken.values())
    details = {rec: detail for _, rec, detail in quarantined}
    assert details[broken[quarantine.IMAGE_TOO_LARGE]] == (
        "image: png of 8000x8000 = 64,000,000 pixels, above max_image_pixels=50,000,000"
    )
    for name in (quarantine.IMAGE_ANIMATED + "/gif", quarantine.IMAGE_ANIMATED + "/apng"):
        assert "of 3 frames" in details[broken[name]]
    assert details[broken[quarantine.IMAGE_UNDECODABLE + "/gif"]] == (
        "image: gif decodes to 24x24, its header says 32x32"
    )


def test_masks_missing_or_mismatched_are_quarantined(tmp_path):
    crops = real.photo_crops(24, 6, seed=2)
    mask = np.zeros((24, 24, 1), np.uint8)
    mask[5:15, 5:20] = 1
    good = [
        _example(_bytes(_png(c)), mask=_bytes(_png(mask))).SerializeToString() for c in crops[:4]
    ]
    wrong = _example(_bytes(_png(crops[4])), mask=_bytes(_png(mask[:20]))).SerializeToString()
    missing = _example(_bytes(_png(crops[5]))).SerializeToString()
    # 16-bit labels cannot be kept in an 8-bit mask: set aside, not reduced.
    deep = _example(
        _bytes(_png(crops[3])), mask=_bytes(_png(mask.astype(np.uint16) * 300))
    ).SerializeToString()
    examples = examples_artifact(tmp_path / "in", {"train": good + [wrong, missing, deep]})
    augmented, _ = run_executor(
        examples,
        tmp_path,
        AugmentConfig(
            policy="standard", num_copies=1, mask_feature="mask", max_quarantine_fraction=0.5
        ),
    )
    assert counts(augmented)["train"]["quarantined"] == {
        quarantine.MASK_SHAPE_MISMATCH: 1,
        quarantine.MASK_MISSING: 1,
        quarantine.MASK_INVALID: 1,
    }
    assert [(r, d) for r, rec, d in _quarantined(augmented) if rec == deep] == [
        (quarantine.MASK_INVALID, "mask: 16-bit PNG; a mask holds 8-bit labels")
    ]
    for record in read_records(f"{augmented.uri}/Split-train/*"):
        features = tf.train.Example.FromString(record).features.feature
        out_mask = tf.io.decode_png(features["mask"].bytes_list.value[0]).numpy()
        assert set(np.unique(out_mask)) <= {0, 1}  # nearest sampling: labels stay labels


def test_above_the_quarantine_limit_the_run_fails_with_counts_and_first_reasons(tmp_path):
    broken = _catalogue()
    records = _good_records(10) + [broken[quarantine.NOT_AN_IMAGE], broken[quarantine.IMAGE_EMPTY]]
    examples = examples_artifact(tmp_path / "in", {"train": records})
    with pytest.raises(QuarantineLimitExceeded) as raised:
        run_executor(examples, tmp_path, AugmentConfig(policy="light", num_copies=1))
    message = str(raised.value)
    assert "2 of 12 examples (16.7%)" in message
    assert "max_quarantine_fraction=0.01" in message
    assert quarantine.NOT_AN_IMAGE in message and quarantine.IMAGE_EMPTY in message
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
            (quarantine.NOT_AN_IMAGE, broken[quarantine.NOT_AN_IMAGE]),
            (quarantine.IMAGE_EMPTY, broken[quarantine.IMAGE_EMPTY]),
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


def test_gzip_is_told_by_the_first_bytes_not_the_name(tmp_path):
    records = _good_records(3)
    write_records(tmp_path / "plain.gz", records)  # a plain file with a .gz name
    write_records(tmp_path / "gzipped.tfrecord", records, gzip=True)  # and the reverse
    write_records(tmp_path / "named-right.gz", records, gzip=True)
    write_records(tmp_path / "empty.gz", [])
    # A plain file whose first record is 35,615 bytes long starts with 1f 8b, as gzip does:
    # its record header (length and CRC) tells it plain.
    write_records(tmp_path / "looks-gzipped", [b"x" * 0x8B1F])
    assert (tmp_path / "looks-gzipped").read_bytes()[:2] == b"\x1f\x8b"
    assert {p.name: compression_of(str(p)) for p in sorted(tmp_path.iterdir())} == {
        "empty.gz": "",
        "gzipped.tfrecord": "GZIP",
        "looks-gzipped": "",
        "named-right.gz": "GZIP",
        "plain.gz": "",
    }
    # What cannot be read is judged by its name (reading it then fails with its reason).
    assert compression_of(str(tmp_path / "missing/data_tfrecord-00000-of-00002.gz")) == "GZIP"
    assert compression_of(str(tmp_path / "missing/part.gz.tfrecord")) == ""
    assert len(read_records(str(tmp_path / "*"))) == 3 * 3 + 1


def test_misnamed_gzip_and_plain_files_are_read_not_called_damaged(tmp_path, capsys):
    from tfx_image_augment.cli import main

    records = _good_records(8)
    write_records(tmp_path / "in/plain.gz", records[:4])
    write_records(tmp_path / "in/gzipped.tfrecord", records[4:], gzip=True)
    out = tmp_path / "out"
    argv = ["run", "--input", str(tmp_path / "in/*"), "--output", str(out), "--copies", "1"]
    assert main(argv + ["--policy", "light", "--", "--direct_num_workers=1"]) == 0
    assert json.loads((out / "augment_summary.json").read_text())["examples_in"] == 8
    assert len(read_records(str(out / "data_tfrecord-*"))) == 16
    # Each kind alone is read through one Beam read with that compression.
    only_plain = tmp_path / "out-plain"
    argv = ["run", "--input", str(tmp_path / "in/*.gz"), "--output", str(only_plain)]
    assert main(argv + ["--policy", "light", "--", "--direct_num_workers=1"]) == 0
    assert json.loads((only_plain / "augment_summary.json").read_text())["examples_in"] == 4


def test_a_fifo_matched_by_the_input_is_refused_at_once(tmp_path):
    import os
    import subprocess
    import sys

    from tests.conftest import PROJECT_ROOT

    write_records(tmp_path / "in/part-0.tfrecord", _good_records(2))
    os.mkfifo(tmp_path / "in/part-1.tfrecord")  # opening it would wait for a writer
    for command in ("run", "preview"):
        out = tmp_path / ("out" if command == "run" else "sheet.png")
        result = subprocess.run(
            [sys.executable, "-m", "tfx_image_augment.cli", command]
            + ["--input", str(tmp_path / "in/*"), "--output", str(out)],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 2, result.stderr[-3000:]
        assert result.stderr.splitlines() == [
            f"image-augment: error: --input matches {tmp_path / 'in/part-1.tfrecord'}, which is "
            "a FIFO (named pipe): only regular files can be read as TFRecord files."
        ]
        assert not out.exists()


def test_first_quarantine_reasons_reads_gzipped_and_plain_files(tmp_path):
    write_records(
        tmp_path / "Split-a/quarantine_tfrecord-00000.gz",
        [quarantine_record(b"a", quarantine.IMAGE_EMPTY, "image: zero bytes")],
        gzip=True,
    )
    write_records(
        tmp_path / "Split-b/quarantine_tfrecord-00000",
        [quarantine_record(b"b", quarantine.NOT_AN_IMAGE, "image: 1 bytes with no signature")],
    )
    assert first_quarantine_reasons(str(tmp_path / "Split-*/quarantine_tfrecord*")) == [
        "image_empty (image: zero bytes)",
        "not_an_image (image: 1 bytes with no signature)",
    ]


def _photo_30x20() -> np.ndarray:
    return real.sample_photos()[1][100:120, 200:230]  # not square: width and height differ


@pytest.mark.parametrize(
    "name, encode, header",
    [
        ("png", lambda p: _png(p), codec.ImageHeader(30, 20)),
        ("png 16-bit", lambda p: _png(p.astype(np.uint16) * 257), codec.ImageHeader(30, 20, 1, 16)),
        ("apng", lambda p: _pil([p, p[::-1], p[:, ::-1]], "PNG"), codec.ImageHeader(30, 20, 3)),
        ("jpeg", lambda p: tf.io.encode_jpeg(p).numpy(), codec.ImageHeader(30, 20)),
        ("jpeg progressive", lambda p: _pil([p], "JPEG", progressive=True), None),
        ("jpeg with exif", lambda p: _pil([p], "JPEG", exif=Image.Exif()), None),
        ("gif", lambda p: _pil([p], "GIF"), codec.ImageHeader(30, 20)),
        ("gif animated", lambda p: _pil([p, p[::-1]], "GIF"), codec.ImageHeader(30, 20, 2)),
        ("bmp", lambda p: _pil([p], "BMP"), codec.ImageHeader(30, 20)),
    ],
)
def test_image_headers_are_read_without_decoding(name, encode, header):
    photo = _photo_30x20()
    data = encode(photo)
    fmt = codec.sniff_format(data)
    assert codec.read_header(data, fmt) == (header or codec.ImageHeader(30, 20))
    # What TensorFlow decodes agrees with the header (its first frame, for animations).
    assert tf.io.decode_image(data, expand_animations=False).shape[:2] == (20, 30)
    # Cut short inside the header (or before a JPEG's frame header): no header.
    assert codec.read_header(data[:20], fmt) is None


def test_the_png_bomb_is_small_valid_and_declares_64_megapixels():
    bomb = _png_bomb()
    assert len(bomb) < 500_000
    assert codec.read_header(bomb, "png") == codec.ImageHeader(8000, 8000)
    small = _png_bomb(700, 500)  # the same construction, small enough to decode here
    decoded = tf.io.decode_png(small).numpy()
    assert decoded.shape == (500, 700, 1)
    np.testing.assert_array_equal(decoded[:427, :640, 0], real.sample_photos()[0][:, :, 1])


def _raw_float_record(pixels: np.ndarray, label: int) -> bytes:
    feature = tf.train.Feature(float_list=tf.train.FloatList(value=pixels.ravel().tolist()))
    return _example(feature, label=label).SerializeToString()


def _copies_by_label(augmented) -> dict[int, list[tf.train.Example]]:
    out: dict[int, list] = {}
    for record in read_records(f"{augmented.uri}/Split-train/*"):
        example = tf.train.Example.FromString(record)
        out.setdefault(example.features.feature["label"].int64_list.value[0], []).append(example)
    return out


def test_raw_float_pixels_not_finite_or_out_of_range_are_caught(tmp_path):
    photos = real.photo_crops(16, 8, seed=5).astype(np.float32) / 255.0  # real pixels in [0, 1]
    with_nan, with_inf = photos[5].copy(), photos[6].copy()
    with_nan[3, 4, 1] = np.nan
    with_inf[0, 0, 0] = np.inf
    overexposed = photos[7] / photos[7].max() * np.float32(1.2)  # peaks at 1.2
    records = [_raw_float_record(p, label=i) for i, p in enumerate(photos[:5])]
    bad = {
        quarantine.IMAGE_NOT_FINITE + "/nan": _raw_float_record(with_nan, 5),
        quarantine.IMAGE_NOT_FINITE + "/inf": _raw_float_record(with_inf, 6),
        quarantine.IMAGE_OUT_OF_RANGE: _raw_float_record(overexposed, 7),
    }
    examples = examples_artifact(tmp_path / "in", {"train": records + list(bad.values())})
    config = AugmentConfig(
        policy="light", num_copies=2, image_shape=(16, 16, 3), max_quarantine_fraction=0.5
    )

    # Default: out_of_range="quarantine".
    augmented, _ = run_executor(examples, tmp_path / "quarantine", config)
    split = counts(augmented)["train"]
    assert split["quarantined"] == {
        quarantine.IMAGE_NOT_FINITE: 2,
        quarantine.IMAGE_OUT_OF_RANGE: 1,
    }
    assert split["examples_read"] == split["originals_written"] + 3 == 8
    assert split["copies_written"] == 10
    quarantined = _quarantined(augmented)
    assert sorted(rec for _, rec, _ in quarantined) == sorted(bad.values())
    details = {rec: detail for _, rec, detail in quarantined}
    assert details[bad[quarantine.IMAGE_NOT_FINITE + "/nan"]] == (
        "image: 1 of 768 values are NaN or infinite"
    )
    assert details[bad[quarantine.IMAGE_OUT_OF_RANGE]].startswith("image: values span [")
    assert "1.2], outside value_range [0, 1]" in details[bad[quarantine.IMAGE_OUT_OF_RANGE]]
    for examples_of_label in _copies_by_label(augmented).values():
        for example in examples_of_label:
            values = np.asarray(example.features.feature["image"].float_list.value)
            assert np.isfinite(values).all() and values.min() >= 0 and values.max() <= 1

    # out_of_range="clip": the overexposed image is clipped to [0, 1], then augmented; its
    # original is written unchanged. Non-finite values are quarantined all the same.
    clipping = AugmentConfig(**{**config.to_dict(), "out_of_range": "clip"}).validate()
    augmented, _ = run_executor(examples, tmp_path / "clip", clipping)
    split = counts(augmented)["train"]
    assert split["quarantined"] == {quarantine.IMAGE_NOT_FINITE: 2}
    assert split["originals_written"] == 6 and split["copies_written"] == 12
    written = _copies_by_label(augmented)[7]
    assert len(written) == 3
    policy = load_policy("light")
    for example in written:
        features = example.features.feature
        stored = np.asarray(features["image"].float_list.value, np.float32).reshape(16, 16, 3)
        if features["aug_copy_index"].int64_list.value[0] == 0:
            np.testing.assert_array_equal(stored, overexposed)
            continue
        seed = np.array([list(features["aug_seed"].int64_list.value)], np.int64)
        expected = augment(np.clip(overexposed, 0, 1)[None], seed, policy).numpy()[0]
        np.testing.assert_array_equal(stored, expected)


def _photos_16_bit(count: int) -> list[np.ndarray]:
    """Real photo crops enlarged 2x at 16-bit precision (bilinear in float): the low byte
    carries detail that an 8-bit copy would lose."""
    crops = real.photo_crops(20, count, seed=6).astype(np.float32) * 257.0
    return [np.round(tf.image.resize(crop, [40, 40]).numpy()).astype(np.uint16) for crop in crops]


@pytest.mark.parametrize("output_format", ["same", "jpeg"])
def test_16_bit_pngs_stay_16_bit_through_the_core(tmp_path, output_format):
    photos = _photos_16_bit(6)
    assert all(np.any(photo % 257 != 0) for photo in photos)
    records = [_example(_bytes(_png(p)), label=i).SerializeToString() for i, p in enumerate(photos)]
    examples = examples_artifact(tmp_path / "in", {"train": records})
    config = AugmentConfig(policy="standard", num_copies=2, output_format=output_format)
    augmented, model = run_executor(examples, tmp_path, config)

    split = counts(augmented)["train"]
    assert split["quarantined"] == {} and split["copies_written"] == 12
    policy = load_policy("standard")
    copies = []
    for label, written in _copies_by_label(augmented).items():
        for example in written:
            features = example.features.feature
            data = features["image"].bytes_list.value[0]
            # A 16-bit PNG (IHDR bit depth 16), also where JPEG was asked for (8-bit only).
            assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[24] == 16
            stored = tf.io.decode_png(data, dtype=tf.uint16).numpy()
            if features["aug_copy_index"].int64_list.value[0] == 0:
                np.testing.assert_array_equal(stored, photos[label])
                continue
            seed = np.array([list(features["aug_seed"].int64_list.value)], np.int64)
            expected = augment(
                photos[label].astype(np.float32)[None], seed, policy, value_range=(0, 65535)
            ).numpy()[0]
            np.testing.assert_array_equal(stored, np.round(expected).astype(np.uint16))
            copies.append(stored)
    assert len(copies) == 12
    # 16-bit detail survives: the values are not 8-bit values scaled up (x * 257).
    assert np.any(np.stack(copies) % 257 != 0)
    assert (tmp_path / "model" / "preview.png").exists()


def test_png_compression_changes_the_bytes_never_the_pixels():
    photos = real.photo_crops(64, 4)
    written = {
        level: codec.encode_batch(photos, "png", AugmentConfig(png_compression=level).encode_rules)
        for level in (0, 1, 9)
    }
    sizes = {level: sum(len(v[0]) for v in values) for level, values in written.items()}
    assert sizes[0] > sizes[1] > sizes[9]  # the level reaches the encoder
    for values in written.values():
        decoded = np.stack([tf.io.decode_png(v[0]).numpy() for v in values])
        np.testing.assert_array_equal(decoded, photos)


def test_records_decoded_together_match_one_at_a_time(monkeypatch):
    # The expansion decodes checked records in groups (one TensorFlow call per image size and
    # depth); every record must come out as decode_example alone gives it: the same pixels and
    # dtype, or the same reason and detail, whatever else shares its group.
    good = _good_records(6)
    jpegs = [
        _example(_bytes(tf.io.encode_jpeg(crop, quality=90).numpy()), label=i).SerializeToString()
        for i, crop in enumerate(real.photo_crops(40, 3, seed=3))
    ]
    grey = [
        _example(_bytes(_png(digit)), label=i).SerializeToString()
        for i, digit in enumerate(real.digits(24)[0][:3])  # 24x24 like `good`, one channel
    ]
    deep = [_example(_bytes(_png(photo))).SerializeToString() for photo in _photos_16_bit(2)]
    records = good[:3] + list(_catalogue().values()) + grey + good[3:] + jpegs + deep
    config = AugmentConfig()

    together = decode_examples(records, config)

    assert len(together) == len(records)
    for record, outcome in zip(records, together, strict=True):
        try:
            alone = decode_example(record, config)
        except quarantine.Quarantined as bad:
            assert isinstance(outcome, quarantine.Quarantined)
            assert (outcome.reason, outcome.detail) == (bad.reason, bad.detail)
            continue
        assert not isinstance(outcome, quarantine.Quarantined), outcome
        assert outcome.pixels.dtype == alone.pixels.dtype
        np.testing.assert_array_equal(outcome.pixels, alone.pixels)
        assert (outcome.key, outcome.image_format) == (alone.key, alone.image_format)
    assert sum(not isinstance(o, quarantine.Quarantined) for o in together) == 14
    # Undamaged images of one size are decoded in one call (what saves the time), never one at
    # a time after a failed call.
    alone = []
    decode_one = codec._decode_one
    monkeypatch.setattr(
        codec, "_decode_one", lambda image: alone.append(image) or decode_one(image)
    )
    clean = decode_examples(good + jpegs, config)
    assert not any(isinstance(o, quarantine.Quarantined) for o in clean) and alone == []
    assert len(decode_examples(good[:1] + jpegs[:1], config)) == 2 and len(alone) == 2
