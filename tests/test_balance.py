"""Imbalanced data: rare classes get more copies, counted from the data inside the pipeline;
fractional copies resolved by each example's key, so runs agree byte for byte."""

from __future__ import annotations

import json

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.cli.commands import main
from tfx_image_augment.offline.balance import copies_for
from tfx_image_augment.offline.config import AugmentConfig

from pipelines.data import image_example
from tests import images as real
from tests.records import read_records, write_records

RARE = {3: 3, 7: 4}  # classes cut to a few examples; every other class keeps 12


def _imbalanced_digits(tmp_path) -> tuple[str, dict[str, int]]:
    digits, labels = real.digits(32)
    kept, counts = [], {}
    for i, (image, label) in enumerate(zip(digits, labels, strict=True)):
        limit = RARE.get(int(label), 12)
        if counts.get(str(label), 0) < limit:
            counts[str(label)] = counts.get(str(label), 0) + 1
            kept.append(image_example(tf.io.encode_png(image).numpy(), label, f"d{i}"))
    write_records(tmp_path / "in/data.tfrecord", kept)
    return str(tmp_path / "in/*"), counts


def _run(tmp_path, pattern, name, *extra, beam=("--direct_num_workers=1",)):
    out = tmp_path / name
    args = ["run", "--input", pattern, "--output", str(out), "--policy", "light"]
    args += ["--copies", "2", "--seed", "3", "--key-feature", "id", "--label-feature", "label"]
    assert main([*args, *extra, "--", *beam]) == 0
    summary = json.loads((out / "augment_summary.json").read_text())
    return summary, sorted(read_records(str(out / "data_tfrecord-*")))


def _labels_written(records) -> dict[str, int]:
    written: dict[str, int] = {}
    for record in records:
        label = str(
            tf.train.Example.FromString(record).features.feature["label"].int64_list.value[0]
        )
        written[label] = written.get(label, 0) + 1
    return written


def test_balance_brings_every_class_up_to_the_largest(tmp_path):
    pattern, counts = _imbalanced_digits(tmp_path)
    summary, records = _run(
        tmp_path, pattern, "balanced", "--balance", "equal", "--max-copies", "40"
    )
    assert summary["classes"]["in"] == counts
    written = _labels_written(records)
    assert summary["classes"]["out"] == written
    # The largest class keeps K=2 copies: 12 * 3 records. Class 3 (3 examples) needs exactly
    # 11 copies each; class 7 (4 examples) 8 on average (36 / 4 - 1).
    assert written["0"] == 36 and written["3"] == 36 and written["7"] == 36
    assert all(n == 36 for n in written.values())
    assert summary["examples_in"] == sum(counts.values())
    assert summary["examples_out"] == len(records) == 36 * len(counts)


def test_fractional_copies_follow_each_examples_key_and_runs_agree_byte_for_byte(tmp_path):
    pattern, counts = _imbalanced_digits(tmp_path)
    summary, records = _run(
        tmp_path, pattern, "inmemory", "--copies-per-class", "3=8,7=2.5", "--num-shards", "3"
    )
    config = AugmentConfig(
        num_copies=2, seed=3, label_feature="label", copies_per_class={"3": 8, "7": 2.5}
    )
    expected = {}
    digits, labels = real.digits(32)
    for record in read_records(pattern):
        example = tf.train.Example.FromString(record)
        label = str(example.features.feature["label"].int64_list.value[0])
        key = example.features.feature["id"].bytes_list.value[0]
        expected[label] = expected.get(label, 0) + 1 + copies_for(config, label, key, {})
    assert _labels_written(records) == expected == summary["classes"]["out"]
    assert expected["3"] == 3 * 9 and expected["0"] == 12 * 3
    assert 4 * 3 <= expected["7"] <= 4 * 4
    assert len(list((tmp_path / "inmemory").glob("data_tfrecord-*"))) == 3

    _, again = _run(
        tmp_path,
        pattern,
        "multiprocess",
        "--copies-per-class",
        "3=8,7=2.5",
        beam=("--direct_running_mode=multi_processing", "--direct_num_workers=2"),
    )
    assert again == records


def test_conflicting_or_malformed_balancing_is_one_line(tmp_path, capsys):
    pattern, _ = _imbalanced_digits(tmp_path)
    base = ["run", "--input", pattern, "--output", str(tmp_path / "o"), "--label-feature", "label"]
    assert main([*base, "--balance", "equal", "--copies-per-class", "3=2"]) == 2
    assert "'balance' must be left unset when copies_per_class is given" in capsys.readouterr().err
    with pytest.raises(SystemExit) as raised:
        main([*base, "--copies-per-class", "3=x"])
    assert raised.value.code == 2
    assert "LABEL=COPIES" in capsys.readouterr().err


def test_balancing_needs_a_label_on_every_example(tmp_path):
    pattern, counts = _imbalanced_digits(tmp_path)
    records = read_records(pattern)
    unlabelled = tf.train.Example.FromString(records[0])
    del unlabelled.features.feature["label"]
    records[0] = unlabelled.SerializeToString()
    write_records(tmp_path / "in/data.tfrecord", records)
    summary, _ = _run(
        tmp_path, pattern, "out", "--balance", "equal", "--max-quarantine-fraction", "0.1"
    )
    assert summary["quarantined"] == {"label_missing": 1}
    assert sum(summary["classes"]["in"].values()) == sum(counts.values()) - 1
    assert np.sum(list(summary["classes"]["in"].values())) + 1 == summary["examples_in"]


def test_a_fraction_of_copies_is_that_fraction_on_average():
    config = AugmentConfig(seed=3, label_feature="label", copies_per_class={"a": 2.3})
    copies = [copies_for(config, "a", f"key-{i}".encode(), {}) for i in range(4000)]
    assert set(copies) == {2, 3}
    assert abs(np.mean(copies) - 2.3) < 0.03
    # The same key always gets the same number; another seed reshuffles which keys get 3.
    assert copies == [copies_for(config, "a", f"key-{i}".encode(), {}) for i in range(4000)]
    other = AugmentConfig(seed=4, label_feature="label", copies_per_class={"a": 2.3})
    assert copies != [copies_for(other, "a", f"key-{i}".encode(), {}) for i in range(4000)]


def test_balancing_never_gives_the_largest_class_fewer_than_num_copies():
    with pytest.raises(ValueError, match="'max_copies' must be at least num_copies"):
        AugmentConfig(num_copies=20, label_feature="label", balance="equal").validate()


def test_a_class_is_its_label_text_so_int64_1_and_bytes_1_are_one_class():
    # The documented rule (README, "Imbalanced data"): an example's class is the text of its
    # label's first value; int64 labels as their decimal, bytes as UTF-8.
    from tfx_image_augment.offline.balance import copies_wanted, label_of_record

    config = AugmentConfig(label_feature="label", balance="equal", num_copies=2).validate()

    def record(value) -> bytes:
        example = tf.train.Example()
        label = example.features.feature["label"]
        if isinstance(value, bytes):
            label.bytes_list.value.append(value)
        else:
            label.int64_list.value.append(value)
        return example.SerializeToString()

    labels = [label_of_record(record(v), config) for v in (1, b"1", 1, b"01", b"7")]
    assert labels == [["1"], ["1"], ["1"], ["01"], ["7"]]
    counts = {"1": 3, "01": 1, "7": 1}  # what the pipeline counts: int64 1 and b"1" together
    assert copies_wanted(config, "1", counts) == 2.0
    assert copies_wanted(config, "01", counts) == 3 * 3 / 1 - 1


@pytest.mark.parametrize(
    "counting, config",
    [
        ("Labels", {"label_feature": "label", "balance": "equal"}),
        ("CountRecords", {"policy": '{"version": 1, "ops": [{"op": "mixup"}]}'}),
    ],
    ids=["balancing", "mixing"],
)
def test_in_memory_the_counts_read_the_input_again_so_the_decoding_streams(
    tmp_path, counting, config
):
    # Issue 19: the in-memory DirectRunner holds a PCollection read by two stages until both
    # have run, and the decode stage waits for the counts, so a balanced run held every record
    # (959 -> 1,262 MiB from 1,000 to 6,000 inputs). Elsewhere the input is read once.
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_image_augment.offline.beam.transforms import AugmentSplit

    pattern, _ = _imbalanced_digits(tmp_path)
    config = AugmentConfig(num_copies=2, key_feature="id", **config).validate()

    def wiring(beam_args):
        """(the producer of what `counting` reads, of what Decode reads, the reads)"""
        pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
        _ = pipeline | AugmentSplit(
            "train", pattern, str(tmp_path / "o"), str(tmp_path / "q"), config
        )
        transforms = pipeline.to_runner_api().components.transforms.values()
        producers = {pcoll: t.unique_name for t in transforms for pcoll in t.outputs.values()}

        def producer_of(name):
            (consumer,) = [t for t in transforms if t.unique_name.endswith(f"/{name}[train]")]
            (pcoll,) = consumer.inputs.values()
            return producers[pcoll].split("/")[1]  # the top transform under AugmentSplit

        reads = {t.unique_name.split("/")[1] for t in transforms if "Read" in t.unique_name}
        return producer_of(counting), producer_of("Decode"), reads

    assert wiring(["--direct_num_workers=1"]) == (
        "ReadToCount[train]",
        "Read[train]",
        {"Read[train]", "ReadToCount[train]"},
    )
    assert wiring(["--direct_running_mode=multi_processing", "--direct_num_workers=2"]) == (
        "Read[train]",
        "BreakFusion[train]",
        {"Read[train]"},
    )
