"""The ImageAugment executor on real TFRecords: outputs, provenance, parity, determinism."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.core.seeds import copy_seed
from tfx_image_augment.io.quarantine import KEY_MISSING
from tfx_image_augment.io.records import stable_key
from tfx_image_augment.offline.config import AugmentConfig

from tests.executor_helpers import counts, examples_artifact, run_executor
from tests.records import read_records


def _cifar_records(cifar_dir: pathlib.Path, split: str, count: int) -> list[bytes]:
    return read_records(str(next((cifar_dir / split).glob("*.tfrecord"))))[:count]


@pytest.fixture(scope="module")
def cifar_run(cifar_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("cifar_run")
    records = {
        "train": _cifar_records(cifar_dir, "train", 48),
        "eval": _cifar_records(cifar_dir, "test" if (cifar_dir / "test").exists() else "eval", 16),
    }
    examples = examples_artifact(root / "in", records)
    config = AugmentConfig(policy="standard", num_copies=3, seed=5, key_feature="id")
    augmented, model = run_executor(examples, root, config)
    return records, augmented, model, config


def _parse(record: bytes) -> tf.train.Example:
    return tf.train.Example.FromString(record)


def _feature(example, name):
    feature = example.features.feature[name]
    return getattr(feature, feature.WhichOneof("kind")).value


def test_outputs_are_standard_examples_with_all_splits_and_properties(cifar_run):
    records, augmented, model, config = cifar_run
    from tfx.components.util import examples_utils
    from tfx.types import artifact_utils

    assert artifact_utils.decode_split_names(augmented.split_names) == ["train", "eval"]
    assert augmented.span == 3 and augmented.version == 1
    assert examples_utils.get_file_format(augmented) == "tfrecords_gzip"
    assert examples_utils.get_payload_format(augmented) == 6
    for split in ("train", "eval"):
        files = tf.io.gfile.glob(f"{augmented.uri}/Split-{split}/*")
        assert files and all(f.endswith(".gz") for f in files)
    split_counts = counts(augmented)
    assert split_counts["train"]["examples_read"] == 48
    assert split_counts["train"]["examples_out"] == 48 * 4  # originals + 3 copies
    assert split_counts["eval"]["examples_out"] == 16
    assert len(read_records(f"{augmented.uri}/Split-train/*")) == 48 * 4
    fingerprint = config.loaded_policy.fingerprint
    assert augmented.get_string_custom_property("policy_fingerprint") == fingerprint
    assert model.get_int_custom_property("num_copies") == 3
    assert (
        json.loads(pathlib.Path(model.uri, "policy.json").read_text())["fingerprint"] == fingerprint
    )
    sheet = tf.io.decode_png(pathlib.Path(model.uri, "preview.png").read_bytes())
    assert sheet.shape[0] > 96 and sheet.shape[1] >= 4 * 96  # rows of original + 3 copies


def test_every_record_keeps_its_features_and_gains_provenance(cifar_run):
    records, augmented, _, config = cifar_run
    by_id = {_feature(_parse(r), "id")[0]: _parse(r) for r in records["train"]}
    copies_seen = {}
    for record in read_records(f"{augmented.uri}/Split-train/*"):
        example = _parse(record)
        source = by_id[_feature(example, "aug_source_key")[0]]
        copy_index = _feature(example, "aug_copy_index")[0]
        assert _feature(example, "label") == _feature(source, "label")
        assert _feature(example, "id") == _feature(source, "id")
        image = _feature(example, "image")[0]
        assert image.startswith(b"\x89PNG")  # PNG stays PNG
        if copy_index == 0:
            assert image == _feature(source, "image")[0]  # the original, byte for byte
            assert list(_feature(example, "aug_seed")) == [0, 0]
        else:
            assert list(_feature(example, "aug_seed")) == list(
                copy_seed(config.seed, _feature(source, "id")[0], copy_index)
            )
        copies_seen.setdefault(_feature(source, "id")[0], set()).add(copy_index)
    assert all(seen == {0, 1, 2, 3} for seen in copies_seen.values())
    assert len(copies_seen) == 48


def test_eval_split_is_passed_through_with_images_and_labels_exact(cifar_run):
    records, augmented, _, _ = cifar_run
    source = sorted(
        (
            _feature(_parse(r), "id")[0],
            _feature(_parse(r), "image")[0],
            list(_feature(_parse(r), "label")),
        )
        for r in records["eval"]
    )
    out = sorted(
        (
            _feature(_parse(r), "id")[0],
            _feature(_parse(r), "image")[0],
            list(_feature(_parse(r), "label")),
        )
        for r in read_records(f"{augmented.uri}/Split-eval/*")
    )
    assert out == source


def _augmented_copies(augmented):
    """(copy example, its aug_source_key, its aug_seed as int64 [1, 2]) for copies 1..K."""
    for record in read_records(f"{augmented.uri}/Split-train/*"):
        example = _parse(record)
        if _feature(example, "aug_copy_index")[0] == 0:
            continue
        seed = np.array([list(_feature(example, "aug_seed"))], np.int64)
        yield example, _feature(example, "aug_source_key")[0], seed


def test_exported_signature_reproduces_every_stored_copy_pixel_for_pixel(cifar_run):
    records, augmented, model, _ = cifar_run
    signature = tf.saved_model.load(f"{model.uri}/saved_model").signatures["augment"]
    originals = {
        _feature(_parse(r), "id")[0]: tf.io.decode_png(_feature(_parse(r), "image")[0])
        for r in records["train"]
    }
    checked = 0
    for example, key, seed in _augmented_copies(augmented):
        expected = signature(images=originals[key][None], seeds=seed)["images"][0]
        stored = tf.io.decode_png(_feature(example, "image")[0])
        np.testing.assert_array_equal(stored.numpy(), expected.numpy())
        checked += 1
    assert checked == 48 * 3


def _run_set(cifar_dir, root: pathlib.Path, files: int, gzip: bool, beam_args) -> set[bytes]:
    records = {"train": _cifar_records(cifar_dir, "train", 24)}
    examples = examples_artifact(root / "in", records, files_per_split=files, gzip=gzip)
    config = AugmentConfig(policy="randaugment", num_copies=2, seed=9)  # content-derived keys
    augmented, _ = run_executor(examples, root, config, beam_args)
    return set(read_records(f"{augmented.uri}/Split-train/*"))


def test_output_is_byte_identical_across_runs_modes_workers_and_sharding(cifar_dir, tmp_path):
    baseline = _run_set(cifar_dir, tmp_path / "a", 1, False, ["--direct_num_workers=1"])
    assert len(baseline) == 24 * 3
    assert _run_set(cifar_dir, tmp_path / "b", 1, False, ["--direct_num_workers=1"]) == baseline
    assert _run_set(cifar_dir, tmp_path / "c", 3, True, ["--direct_num_workers=1"]) == baseline
    multi = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]
    assert _run_set(cifar_dir, tmp_path / "d", 2, False, multi) == baseline


def test_unknown_split_to_augment_is_a_clear_error(cifar_dir, tmp_path):
    examples = examples_artifact(tmp_path / "in", {"train": _cifar_records(cifar_dir, "train", 4)})
    with pytest.raises(ValueError, match=r"splits_to_augment names \['validation'\]"):
        run_executor(examples, tmp_path, AugmentConfig(splits_to_augment=("validation",)))


def test_key_feature_missing_is_quarantined_not_dropped(cifar_dir, tmp_path):
    records = _cifar_records(cifar_dir, "train", 10)
    examples = examples_artifact(tmp_path / "in", {"train": records})
    augmented, _ = run_executor(
        examples,
        tmp_path,
        AugmentConfig(key_feature="photo_id", num_copies=1, max_quarantine_fraction=1.0),
    )
    assert counts(augmented)["train"]["quarantined"] == {KEY_MISSING: 10}


def _digit_examples(count: int, raw: str | None = None) -> list[bytes]:
    """Real scikit-learn digits as PNG examples, or as raw pixels ("bytes" or "float")."""
    from pipelines.data import image_example
    from tests.images import digits

    images, labels = digits(32)
    records = []
    for i in range(count):
        if raw is None:
            records.append(image_example(tf.io.encode_png(images[i]).numpy(), labels[i], f"d{i}"))
            continue
        example = tf.train.Example()
        features = example.features.feature
        if raw == "bytes":
            features["image"].bytes_list.value.append(images[i].tobytes())
        else:
            features["image"].float_list.value.extend(
                (images[i].astype(np.float32) / 255.0 - 0.5).ravel().tolist()
            )
        features["label"].int64_list.value.append(int(labels[i]))
        records.append(example.SerializeToString())
    return records


def test_provenance_off_writes_originals_byte_for_byte(tmp_path):
    records = _digit_examples(12)
    examples = examples_artifact(tmp_path / "in", {"train": records})
    augmented, _ = run_executor(
        examples, tmp_path, AugmentConfig(policy="no-flip", num_copies=1, provenance=False)
    )
    out = read_records(f"{augmented.uri}/Split-train/*")
    assert len(out) == 24
    assert set(records) <= set(out)  # the originals, untouched
    for record in out:
        assert not [k for k in _parse(record).features.feature if k.startswith("aug_")]


def test_output_format_jpeg_reencodes_copies_as_jpeg_at_the_given_quality(tmp_path):
    examples = examples_artifact(tmp_path / "in", {"train": _digit_examples(6)})
    augmented, _ = run_executor(
        examples,
        tmp_path,
        AugmentConfig(policy="no-flip", num_copies=2, output_format="jpeg", jpeg_quality=80),
    )
    kinds = {}
    for record in read_records(f"{augmented.uri}/Split-train/*"):
        example = _parse(record)
        data = _feature(example, "image")[0]
        kinds.setdefault(_feature(example, "aug_copy_index")[0] > 0, set()).add(data[:2])
    assert kinds[True] == {b"\xff\xd8"}  # copies are JPEG
    assert kinds[False] == {b"\x89P"}  # originals stay as they came


@pytest.mark.parametrize("raw", ["bytes", "float"])
def test_raw_pixels_stay_raw_and_match_the_core(tmp_path, raw):
    from tfx_image_augment import augment, load_policy

    records = _digit_examples(8, raw=raw)
    examples = examples_artifact(tmp_path / "in", {"train": records})
    value_range = (-0.5, 0.5) if raw == "float" else None
    config = AugmentConfig(
        policy="no-flip", num_copies=1, image_shape=(32, 32, 1), value_range=value_range, seed=3
    )
    augmented, _ = run_executor(examples, tmp_path, config)
    sources = {}
    for record in records:
        example = _parse(record)
        sources[stable_key(example, config.key_feature)] = example
    checked = 0
    for example, key, seed in _augmented_copies(augmented):
        source = sources[key]
        if raw == "bytes":
            stored = np.frombuffer(_feature(example, "image")[0], np.uint8).reshape(32, 32, 1)
            original = np.frombuffer(_feature(source, "image")[0], np.uint8).reshape(32, 32, 1)
        else:
            stored = np.asarray(_feature(example, "image"), np.float32).reshape(32, 32, 1)
            original = np.asarray(_feature(source, "image"), np.float32).reshape(32, 32, 1)
            assert stored.min() >= -0.5 and stored.max() <= 0.5
        expected = augment(
            original[None], seed, load_policy("no-flip"), value_range=value_range
        ).numpy()[0]
        np.testing.assert_array_equal(stored, expected)
        checked += 1
    assert checked == 8


def _pixels_of(kind: str, index: int) -> np.ndarray:
    from tests.images import digits, sample_photos

    if kind == "small":
        return digits(32)[0][index]  # 1,024 pixels
    if kind == "medium":
        return sample_photos()[index % 2][:400, :600]  # 240,000 pixels
    return np.tile(sample_photos()[0][..., :1], (10, 7, 1))  # 4270 x 4480 = 19.1 M pixels


def test_batches_are_bounded_by_pixels_and_a_huge_image_goes_alone():
    import apache_beam as beam
    from apache_beam.testing.util import assert_that
    from tfx_image_augment.io.codec import MAX_BATCH_PIXELS
    from tfx_image_augment.offline.beam.transforms import batch_examples
    from tfx_image_augment.offline.decode import DecodedExample

    huge_pixels = 4270 * 4480
    assert huge_pixels > MAX_BATCH_PIXELS
    # Images are made where they are batched: only their names travel through Create.
    kinds = (
        [("small", i) for i in range(70)]
        + [("medium", i) for i in range(20)]
        + [("huge", 0)]
        + [("medium", i) for i in range(20, 40)]
        + [("small", i) for i in range(70, 150)]
    )

    def decoded(kind_and_index) -> DecodedExample:
        pixels = _pixels_of(*kind_and_index)
        return DecodedExample(b"key", b"", pixels, "png", None, None, copies=1)

    def summary(batch) -> tuple[int, int]:
        return len(batch), sum(d.pixels.shape[0] * d.pixels.shape[1] for d in batch)

    def check(batches):
        # Beam 2.59 emits an empty batch when the first element of a batch is over its target.
        batches = [b for b in batches if b[0]]
        assert sum(n for n, _ in batches) == len(kinds)
        assert max(n for n, _ in batches) <= 64  # the image count bound (batch_size)
        for count, pixels in batches:
            assert count == 1 or pixels <= MAX_BATCH_PIXELS, (count, pixels)
        assert (1, huge_pixels) in batches  # alone
        # Small images still share batches (the pixel bound does not starve them).
        assert max(n for n, pixels in batches if pixels <= 64 * 1024) >= 32

    with beam.Pipeline(argv=["--direct_num_workers=1"]) as pipeline:
        sizes = (
            pipeline
            | beam.Create(kinds, reshuffle=False)
            | beam.Map(decoded)
            | batch_examples(64)
            | beam.Map(summary)
        )
        assert_that(sizes, check)


def test_work_ahead_holds_two_calls_or_one_image_at_the_pixel_limit_and_cancels_on_failure():
    # Calls (and decode groups) are bounded by pixels, so that memory is; working one call
    # ahead let two 49 MP photos' copies run side by side (4.2 -> 6.7 GB peak). In flight:
    # two full calls, or as many pixels as one image at max_image_pixels, whichever is more.
    from concurrent.futures import Future

    import pytest
    from tfx_image_augment.offline.beam.transforms import MAX_BATCH_PIXELS as FULL
    from tfx_image_augment.offline.beam.transforms import _WorkAhead

    def done(result):
        future = Future()
        future.set_result(result)
        return future

    ahead = _WorkAhead(ahead=1, max_image_pixels=3 * FULL)
    ahead.submitted("a", [done(1)], FULL)
    assert list(ahead.taken(room_for=FULL)) == []  # two full calls overlap
    ahead.submitted("b", [done(2)], FULL)
    assert list(ahead.taken()) == [("a", [1])]  # one ahead
    assert list(ahead.taken(room_for=2 * FULL + 1)) == [("b", [2])]  # no room: b first
    ahead.submitted("photo", [done(3)], 3 * FULL // 2)  # two of these fit the image limit
    assert list(ahead.taken(room_for=3 * FULL // 2)) == []
    ahead.submitted("photo 2", [done(4)], 3 * FULL // 2)
    assert list(ahead.taken()) == [("photo", [3])]
    ahead.submitted("huge", [done(5)], 4 * FULL)  # above the limit: runs alone
    assert list(ahead.taken()) == [("photo 2", [4]), ("huge", [5])]

    failed, pending_part, queued = Future(), Future(), Future()
    failed.set_exception(MemoryError("out of memory"))
    ahead.submitted("failed", [failed, pending_part], FULL)
    ahead.submitted("queued", [queued], FULL)
    with pytest.raises(MemoryError):
        list(ahead.taken())
    assert pending_part.cancelled() and queued.cancelled()  # the pool stops for a failed bundle


def test_copies_split_over_calls_and_computed_ahead_keep_their_pixels_and_windows(monkeypatch):
    # Each example brings more copies than a call holds (5 copies, 2 per call), and
    # AugmentBatchFn makes one call's records while the pool computes the next: records leave
    # during a later element or from finish_bundle, and must still be in their own example's
    # window. DecodeFn holds records back the same way, in groups (of 3 here, across windows),
    # and its last group, with a truncated PNG to quarantine, leaves from its finish_bundle.
    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to
    from apache_beam.transforms.window import FixedWindows, TimestampedValue
    from tfx_image_augment import augment, load_policy
    from tfx_image_augment.offline.beam import transforms
    from tfx_image_augment.offline.beam.transforms import (
        QUARANTINE_TAG,
        AugmentBatchFn,
        DecodeFn,
        batch_examples,
    )

    monkeypatch.setattr(transforms, "DECODE_BATCH", 3)  # the in-memory runner: this process

    from pipelines.data import image_example

    records = _digit_examples(6)
    config = AugmentConfig(policy="standard", num_copies=5, batch_size=2, seed=3, key_feature="id")
    images = {
        f"d{i}": tf.io.decode_png(_parse(r).features.feature["image"].bytes_list.value[0]).numpy()
        for i, r in enumerate(records)
    }
    png = _parse(records[0]).features.feature["image"].bytes_list.value[0]
    records.append(image_example(png[: len(png) // 2], 0, "d6"))  # timestamp 30

    def window_start(element, window=beam.DoFn.WindowParam):
        return element, int(window.start)

    def window_of(source_id: str) -> int:  # example i has timestamp 5 i: two per window of 10 s
        return int(source_id[1:]) * 5 // 10 * 10

    def original_window(record: bytes, window=beam.DoFn.WindowParam):
        key = _parse(record).features.feature["aug_source_key"].bytes_list.value[0].decode()
        return key, int(window.start)

    def check(outputs):
        assert len(outputs) == 6 * 5
        by_id: dict[str, list] = {}
        for record, start in outputs:
            copy = tf.train.Example.FromString(record)
            key = copy.features.feature["aug_source_key"].bytes_list.value[0].decode()
            by_id.setdefault(key, []).append((copy, start))
        assert sorted(by_id) == sorted(images)
        for source_id, copies in by_id.items():
            assert {start for _, start in copies} == {window_of(source_id)}
            indexes = [c.features.feature["aug_copy_index"].int64_list.value[0] for c, _ in copies]
            assert sorted(indexes) == [1, 2, 3, 4, 5]
            # Each copy as the core computes it for its seed, whatever call it went through.
            seeds = np.array(
                [c.features.feature["aug_seed"].int64_list.value for c, _ in copies], np.int64
            )
            expected = augment(
                np.stack([images[source_id]] * 5), seeds, load_policy("standard")
            ).numpy()
            written = [
                tf.io.decode_png(c.features.feature["image"].bytes_list.value[0]).numpy()
                for c, _ in copies
            ]
            np.testing.assert_array_equal(np.stack(written), expected)

    with beam.Pipeline(argv=["--direct_num_workers=1"]) as pipeline:
        decoded = (
            pipeline
            | beam.Create(list(enumerate(records)), reshuffle=False)
            | beam.MapTuple(lambda i, record: TimestampedValue(record, i * 5))
            | beam.WindowInto(FixedWindows(10))
            | beam.ParDo(DecodeFn(config.to_json(), "train")).with_outputs(
                QUARANTINE_TAG, main="ok"
            )
        )
        written = (
            decoded.ok
            | batch_examples(config.batch_size)
            | beam.ParDo(AugmentBatchFn(config.to_json(), "train")).with_outputs(
                AugmentBatchFn.ORIGINALS, main="copies"
            )
        )
        assert_that(written.copies | "CopyWindows" >> beam.Map(window_start), check)
        assert_that(
            written[AugmentBatchFn.ORIGINALS] | beam.Map(original_window),
            equal_to([(source_id, window_of(source_id)) for source_id in images]),
            label="Originals",
        )
        assert_that(
            decoded[QUARANTINE_TAG]
            | "QuarantineWindows" >> beam.Map(lambda record, w=beam.DoFn.WindowParam: int(w.start)),
            equal_to([30]),
            label="Quarantined",
        )


def test_an_augmented_split_without_examples_fails_and_publishes_nothing(tmp_path):
    from tfx_image_augment.offline.beam.expansion import EmptyInputError

    examples = examples_artifact(tmp_path / "in", {"train": [], "eval": _digit_examples(4)})
    with pytest.raises(EmptyInputError, match="read no example of split 'train'"):
        run_executor(examples, tmp_path, AugmentConfig(policy="no-flip", num_copies=1))
    assert not (tmp_path / "augmented/_SUCCESS").exists()  # 0 examples in is no success


def test_a_fifo_in_an_input_split_is_refused_before_anything_is_written(tmp_path):
    import os

    examples = examples_artifact(tmp_path / "in", {"train": _digit_examples(4)})
    os.mkfifo(tmp_path / "in/Split-train/pipe")  # Beam would wait on it forever
    with pytest.raises(ValueError, match="which is a FIFO"):
        run_executor(examples, tmp_path, AugmentConfig(policy="no-flip", num_copies=1))
    assert not (tmp_path / "augmented").exists()


def test_only_the_in_memory_direct_runner_with_one_worker_runs_without_the_reshuffle():
    # There the Reshuffle held every encoded record while the next stage ran (issue 19);
    # every other runner keeps it, to spread the work over its workers.
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_image_augment.offline.beam.transforms import streams_unshuffled

    for args in ([], ["--runner=DirectRunner"], ["--direct_num_workers=1"]):
        assert streams_unshuffled(PipelineOptions(args)), args
    for args in (
        ["--direct_running_mode=multi_processing", "--direct_num_workers=2"],
        ["--direct_running_mode=multi_threading"],
        ["--direct_num_workers=2"],
        ["--runner=DataflowRunner"],
        ["--runner=PortableRunner"],
        ["--streaming"],
    ):
        assert not streams_unshuffled(PipelineOptions(args)), args
