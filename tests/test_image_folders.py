"""From a folder of real JPEGs in class subfolders to augmented TFRecords, in one command."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tfx_image_augment.io.folders import scan_folder
from tfx_image_augment.io.reader import read_images

from pipelines.data import sample_photos
from tests.records import read_records

COPIES = 2


def _photo_folder(root, per_class: int = 3):
    """scikit-learn's two photos cut into tiles, one class folder per photo, as JPEG files."""
    for name, photo in zip(("china", "flower"), sample_photos(), strict=True):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            tile = photo[40 * i : 40 * i + 64, 60 * i : 60 * i + 96]
            (root / name / f"{i:02d}.jpg").write_bytes(tf.io.encode_jpeg(tile, quality=90).numpy())
    (root / "flower" / "notes.txt").write_text("not an image: skipped and counted")
    return root


def _cli(*args: str, cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tfx_image_augment.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


def test_a_folder_of_class_folders_becomes_augmented_tfrecords(tmp_path):
    _photo_folder(tmp_path / "photos")
    # From the folder holding the data, with a relative --output as the README writes it.
    args = ["run", "--input", "photos", "--output", "out/", "--copies", str(COPIES), "--seed", "3"]
    result = _cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "1 files without an image suffix skipped" in result.stdout
    out = tmp_path / "out"
    assert (out / "labels.txt").read_text() == "china\nflower\n"
    summary = json.loads((out / "augment_summary.json").read_text())
    assert summary["examples_in"] == 6 and summary["examples_out"] == 6 * (COPIES + 1)

    pairs = list(read_images(str(out), channels=3).as_numpy_iterator())
    assert sorted(int(label) for _, label in pairs) == [0] * 9 + [1] * 9
    # Records in the TFX layout that TensorFlow's own parsing reads: image, label, id.
    records = read_records(str(out / "data_tfrecord-*"))
    examples = [tf.train.Example.FromString(r).features.feature for r in records]
    keys = sorted({e["aug_source_key"].bytes_list.value[0].decode() for e in examples})
    assert keys == [f"{c}/{i:02d}.jpg" for c in ("china", "flower") for i in range(3)]
    parsed = tf.io.parse_single_example(
        records[0],
        {
            "image": tf.io.FixedLenFeature([], tf.string),
            "label": tf.io.FixedLenFeature([], tf.int64),
            "id": tf.io.FixedLenFeature([], tf.string),
        },
    )
    assert tf.io.decode_jpeg(parsed["image"]).shape == (64, 96, 3)

    # The key is the relative path: the same folder elsewhere gives the same records.
    _photo_folder(tmp_path / "elsewhere" / "photos")
    again = _cli(*args, cwd=tmp_path / "elsewhere")
    assert again.returncode == 0, again.stderr
    assert sorted(read_records(str(tmp_path / "elsewhere/out/data_tfrecord-*"))) == sorted(records)


def test_a_flat_folder_has_no_labels_and_a_mixed_one_is_refused(tmp_path):
    flat = tmp_path / "flat"
    flat.mkdir()
    photo = sample_photos()[0][:48, :48]
    for i in range(2):
        (flat / f"{i}.png").write_bytes(tf.io.encode_png(np.roll(photo, i, axis=0)).numpy())
    folder = scan_folder(str(flat))
    assert folder.files == ("0.png", "1.png") and folder.class_names == ()
    result = _cli("run", "--input", "flat", "--output", "out", "--copies", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert not (tmp_path / "out" / "labels.txt").exists()

    (flat / "cats").mkdir()
    (flat / "cats" / "a.png").write_bytes((flat / "0.png").read_bytes())
    mixed = _cli("run", "--input", "flat", "--output", "out2", cwd=tmp_path)
    assert mixed.returncode == 2
    assert mixed.stderr.strip().splitlines() == [
        f"image-augment: error: --input {tmp_path / 'flat'} holds images "
        "both directly (0.png) and in class folders (cats/): use one layout, "
        "root/<class>/<image> or root/<image>."
    ]


def test_a_folder_without_images_says_to_give_a_glob_of_tfrecords(tmp_path):
    (tmp_path / "records").mkdir()
    (tmp_path / "records" / "data.tfrecord").write_bytes(b"")
    with pytest.raises(ValueError, match="for TFRecord files give a glob"):
        scan_folder(str(tmp_path / "records"))


def test_a_folder_balanced_locally_counts_its_classes_from_the_paths(tmp_path):
    # The in-memory runner counts classes in a second read of the input (so that decoding
    # streams, issue 19); for a folder that read takes the labels from the paths, opening no
    # image file a second time.
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_image_augment.cli.commands import main
    from tfx_image_augment.offline.beam.transforms import AugmentSplit
    from tfx_image_augment.offline.config import AugmentConfig

    photos = _photo_folder(tmp_path / "photos")
    for i in (1, 2):
        (photos / "flower" / f"{i:02d}.jpg").unlink()  # 3 china photos, 1 flower
    out = tmp_path / "out"
    args = ["run", "--input", str(photos), "--output", str(out), "--copies", "2", "--seed", "3"]
    args += ["--label-feature", "label", "--balance", "equal", "--max-copies", "10"]
    assert main([*args, "--", "--direct_num_workers=1"]) == 0
    summary = json.loads((out / "augment_summary.json").read_text())
    assert summary["classes"] == {"in": {"0": 3, "1": 1}, "out": {"0": 9, "1": 9}}

    config = AugmentConfig(label_feature="label", balance="equal").validate()
    pipeline = beam.Pipeline(options=PipelineOptions(["--direct_num_workers=1"]))
    _ = pipeline | AugmentSplit("train", scan_folder(str(photos)), "o", "q", config)
    steps = [t.unique_name for t in pipeline.to_runner_api().components.transforms.values()]
    counting = [name for name in steps if "/ReadToCount[train]/" in name]
    assert any(name.endswith("/LabelsOnly") for name in counting)
    assert not any("ReadImages" in name for name in counting)
