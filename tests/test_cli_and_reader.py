"""The standalone `image-augment` CLI and the reader, on real images."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import tensorflow as tf
from tfx_image_augment.cli.commands import main
from tfx_image_augment.io.reader import read_images

from pipelines.data import image_example
from tests import images as real
from tests.conftest import PROJECT_ROOT
from tests.records import read_records, write_records


def _digit_records(tmp_path, count: int) -> str:
    """Real scikit-learn digits (32x32 PNG) as tf.Examples in two gzipped files."""
    digits, labels = real.digits(32)
    records = [
        image_example(tf.io.encode_png(image).numpy(), label, f"d{i}")
        for i, (image, label) in enumerate(zip(digits[:count], labels[:count], strict=True))
    ]
    write_records(tmp_path / "in/part-0.tfrecord.gz", records[::2], gzip=True)
    write_records(tmp_path / "in/part-1.tfrecord.gz", records[1::2], gzip=True)
    return str(tmp_path / "in/*.gz")


def test_cli_run_writes_data_quarantine_model_and_summary(tmp_path, capsys):
    pattern = _digit_records(tmp_path, 40)
    out = tmp_path / "out"
    code = main(
        [
            "run",
            "--input",
            pattern,
            "--output",
            str(out),
            "--policy",
            "no-flip",
            "--copies",
            "3",
            "--seed",
            "4",
            "--",
            "--direct_num_workers=1",
        ]
    )
    assert code == 0
    summary = json.loads((out / "augment_summary.json").read_text())
    assert summary["examples_in"] == 40 and summary["examples_out"] == 160
    assert summary["quarantined"] == {} and summary["copies"] == 3 and summary["seed"] == 4
    assert len(summary["policy_fingerprint"]) == 64 and summary["elapsed_seconds"] > 0
    assert list(out.glob("data_tfrecord-*.gz"))
    assert (out / "augmentation_model/saved_model/saved_model.pb").exists()
    assert (out / "augmentation_model/preview.png").exists()
    assert "40 examples in -> 160 out" in capsys.readouterr().out

    # The reader turns the folder into (image, label) pairs any training job can use.
    pairs = list(read_images(str(out), channels=1).as_numpy_iterator())
    assert len(pairs) == 160
    assert pairs[0][0].shape == (32, 32, 1) and pairs[0][0].dtype == np.uint8
    labels = sorted(int(label) for _, label in pairs)
    assert labels == sorted(list(real.digits(32)[1][:40]) * 4)
    batch = next(iter(read_images(str(out), channels=1, batch_size=16)))
    assert batch[0].shape == (16, 32, 32, 1)


def test_cli_preview_draws_a_sheet_without_writing_a_dataset(tmp_path):
    pattern = _digit_records(tmp_path, 10)
    sheet = tmp_path / "sheet.png"
    assert (
        main(
            [
                "preview",
                "--input",
                pattern,
                "--policy",
                "no-flip",
                "--output",
                str(sheet),
                "--copies",
                "4",
                "--rows",
                "3",
            ]
        )
        == 0
    )
    image = tf.io.decode_png(sheet.read_bytes()).numpy()
    assert image.shape[0] >= 3 * 96 and image.shape[1] >= 5 * 96
    assert not list(tmp_path.glob("**/*.gz.*"))


def test_cli_errors_are_one_line_with_exit_codes(tmp_path):
    pattern = _digit_records(tmp_path, 4)
    command = [
        sys.executable,
        "-m",
        "tfx_image_augment.cli",
        "run",
        "--input",
        pattern,
        "--output",
        str(tmp_path / "o"),
    ]
    result = subprocess.run(
        command + ["--policy", "heavy"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.strip().startswith("image-augment: error: Unknown policy 'heavy'")
    assert len(result.stderr.strip().splitlines()) == 1
    result = subprocess.run(
        command + ["--copies", "0"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 2 and "'num_copies' must be an integer >= 1" in result.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "tfx_image_augment.cli",
            "run",
            "--input",
            str(tmp_path / "nothing-*"),
            "--output",
            str(tmp_path / "o"),
        ],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert missing.returncode == 2 and "matches no file" in missing.stderr


def test_reader_reads_gzipped_and_plain_files_of_one_folder(tmp_path):
    digits, labels = real.digits(32)
    records = [
        image_example(tf.io.encode_png(digits[i]).numpy(), labels[i], f"d{i}") for i in range(6)
    ]
    write_records(tmp_path / "mixed/data_tfrecord-0.gz", records[:4], gzip=True)
    write_records(tmp_path / "mixed/data_tfrecord-1", records[4:])
    pairs = list(read_images(str(tmp_path / "mixed"), channels=1).as_numpy_iterator())
    assert sorted(int(label) for _, label in pairs) == sorted(int(v) for v in labels[:6])
    assert all(image.shape == (32, 32, 1) for image, _ in pairs)


def test_cli_reads_a_policy_file_once_and_keeps_its_content_not_its_path(tmp_path):
    from tfx_image_augment import load_policy
    from tfx_image_augment.cli import commands as cli

    path = tmp_path / "policy.json"
    policy = {"version": 1, "ops": [{"op": "brightness", "max_delta": 0.3}]}
    path.write_text(json.dumps(policy))
    args = cli._parser().parse_args(
        ["preview", "--input", "in/*", "--output", "sheet.png", "--policy", str(path)]
    )
    config = cli._config(args)
    assert config.policy == load_policy(policy).to_json()
    path.unlink()  # nothing reads the file again
    assert config.validate().loaded_policy.fingerprint == load_policy(policy).fingerprint


def test_cli_max_image_pixels_quarantines_larger_images_and_defaults_like_the_config(tmp_path):
    from tfx_image_augment.cli import commands as cli
    from tfx_image_augment.offline.config import AugmentConfig

    digits, labels = real.digits(32)  # 32 x 32 = 1,024 pixels: at the limit, kept
    photos = real.photo_crops(40, 2, seed=3)  # 40 x 40 = 1,600 pixels: above it
    records = [
        image_example(tf.io.encode_png(image).numpy(), label, f"d{i}")
        for i, (image, label) in enumerate(zip(digits[:6], labels[:6], strict=True))
    ] + [image_example(tf.io.encode_png(p).numpy(), 0, f"p{i}") for i, p in enumerate(photos)]
    write_records(tmp_path / "in/part-0.tfrecord", records)
    out = tmp_path / "out"
    argv = ["run", "--input", str(tmp_path / "in/*"), "--output", str(out), "--copies", "1"]
    limits = ["--max-image-pixels", "1024", "--max-quarantine-fraction", "0.5"]
    assert main(argv + limits + ["--", "--direct_num_workers=1"]) == 0
    summary = json.loads((out / "augment_summary.json").read_text())
    assert summary["examples_in"] == 8 and summary["quarantined"] == {"image_too_large": 2}
    assert summary["originals_written"] == 6 and summary["copies_written"] == 6

    defaults = cli._config(cli._parser().parse_args(argv))
    assert defaults.max_image_pixels == AugmentConfig().max_image_pixels == 50_000_000
    assert defaults.out_of_range == AugmentConfig().out_of_range == "quarantine"
    clipping = cli._config(cli._parser().parse_args(argv + ["--out-of-range", "clip"]))
    assert clipping.out_of_range == "clip"


def test_input_output_and_option_errors_are_one_line_naming_the_path(tmp_path, capsys):
    pattern = _digit_records(tmp_path, 4)
    first_file = sorted((tmp_path / "in").glob("*.gz"))[0]
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    write_records(tmp_path / "empty/part-0.tfrecord", [])
    out = tmp_path / "out"
    cases = [
        (
            ["--input", str(tmp_path / "in")],
            # A folder is read as a folder of images; one of TFRecords says to give a glob.
            f"--input {tmp_path / 'in'} is a folder without image files (.bmp, .gif, .jpeg, "
            f".jpg, .png); for TFRecord files give a glob, e.g. '{tmp_path / 'in'}/*'.",
        ),
        (["--output", str(a_file)], f"--output {a_file} is a file, not a folder."),
        (
            ["--output", str(a_file / "out")],  # no folder can be made there, even as root
            f"cannot write --output {a_file / 'out'}: {a_file} is a file, not a folder.",
        ),
        (
            ["--output", str(a_file / "sub/out")],
            f"cannot write --output {a_file / 'sub/out'}: Not a directory ({a_file / 'sub'}).",
        ),
        (["--output", ""], "--output is empty: name the folder to write, e.g. out/"),
        (
            ["--policy", str(tmp_path / "my-policy.json")],
            f"The policy file {tmp_path / 'my-policy.json'} does not exist (no such file).",
        ),
        (
            ["--key-feature", "photo_id"],
            f"--key-feature 'photo_id' is in none of the first 2 records of {first_file}; "
            "their features are id, image, label.",
        ),
        (
            ["--input", str(tmp_path / "empty/*")],
            f"--input {str(tmp_path / 'empty/*')!r}: its 1 file(s) hold no record; nothing to "
            "augment.",
        ),
        (
            ["--", "--direct_num_wrokers=2", "--bogus"],
            "unknown Beam option(s) after `--`: --direct_num_wrokers=2 --bogus (Beam would "
            "ignore them)",
        ),
        (
            ["--", "--direct_num_workers=x"],
            "Beam option after `--`: argument --direct_num_workers: invalid int value: 'x'",
        ),
    ]
    for args, message in cases:
        cut = args.index("--") if "--" in args else len(args)
        argv = ["run", "--input", pattern, "--output", str(out), *args[:cut], *args[cut:]]
        assert main(argv) == 2, message
        assert capsys.readouterr().err.strip().splitlines() == [f"image-augment: error: {message}"]
    assert not out.exists() and not list(tmp_path.glob(".*staging*"))
    assert main(["preview", "--input", pattern, "--output", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        f"image-augment: error: --output {tmp_path} is a folder: name the PNG file to write in it."
    ]


def test_an_unknown_beam_flag_is_the_only_line_on_stderr(tmp_path):
    pattern = _digit_records(tmp_path, 4)
    result = subprocess.run(
        [sys.executable, "-m", "tfx_image_augment.cli", "run", "--input", pattern]
        + ["--output", str(tmp_path / "o"), "--", "--runner=DirectRunner", "--frobnicate=3"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "image-augment: error: unknown Beam option(s) after `--`: --frobnicate=3 (Beam would "
        "ignore them)"
    ]


def _app_segments(jpeg: bytes) -> list[bytes]:
    """The payloads of a JPEG's APPn segments (up to the first scan)."""
    segments, offset = [], 2
    while jpeg[offset] == 0xFF and jpeg[offset + 1] != 0xDA:
        length = int.from_bytes(jpeg[offset + 2 : offset + 4], "big")
        if 0xE0 <= jpeg[offset + 1] <= 0xEF:
            segments.append(jpeg[offset + 4 : offset + 2 + length])
        offset += 2 + length
    return segments


def _with_exif_orientation(jpeg: bytes, orientation: int) -> bytes:
    """`jpeg` with an APP1 Exif segment (after its APP0) holding only an Orientation tag."""
    tiff = b"MM\x00\x2a\x00\x00\x00\x08\x00\x01"  # big-endian header, one IFD entry
    tiff += (0x0112).to_bytes(2, "big") + (3).to_bytes(2, "big") + (1).to_bytes(4, "big")
    tiff += orientation.to_bytes(2, "big") + b"\x00\x00" + b"\x00\x00\x00\x00"
    payload = b"Exif\x00\x00" + tiff
    app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
    after_app0 = 4 + int.from_bytes(jpeg[4:6], "big")
    return jpeg[:after_app0] + app1 + jpeg[after_app0:]


def test_pixels_are_augmented_as_stored_and_copies_carry_no_exif(tmp_path):
    # The README ("Determinism"): EXIF orientation is ignored, as TensorFlow's decoders ignore
    # it in training; copy 0 is the original record (its EXIF kept), copies have none.
    from tfx_image_augment import augment, load_policy

    photo = real.photo_crops(48, 1)[0][:, :40]  # 48 rows x 40 columns as stored
    tagged = _with_exif_orientation(tf.io.encode_jpeg(photo, quality=95).numpy(), 6)
    assert any(s.startswith(b"Exif\x00\x00") for s in _app_segments(tagged))
    write_records(tmp_path / "in/data.tfrecord", [image_example(tagged, 0, "turned")])
    out = tmp_path / "out"
    args = ["run", "--input", str(tmp_path / "in/*"), "--output", str(out), "--policy"]
    args += ["standard", "--copies", "2", "--seed", "4", "--key-feature", "id"]
    assert main([*args, "--", "--direct_num_workers=1"]) == 0
    stored = tf.io.decode_jpeg(tagged).numpy()  # TensorFlow does not turn it
    copies = 0
    for record in read_records(str(out / "data_tfrecord-*")):
        features = tf.train.Example.FromString(record).features.feature
        data = features["image"].bytes_list.value[0]
        if features["aug_copy_index"].int64_list.value[0] == 0:
            assert data == tagged  # the original, untouched
            continue
        copies += 1
        assert not any(s.startswith(b"Exif") for s in _app_segments(data))
        seeds = np.array([features["aug_seed"].int64_list.value], np.int64)
        expected = augment(stored[None], seeds, load_policy("standard"))[0]
        assert expected.shape == (48, 40, 3)
        assert data == tf.io.encode_jpeg(expected, quality=95).numpy()
    assert copies == 2


def test_a_relative_glob_without_a_folder_reads_from_the_working_folder(
    tmp_path, monkeypatch, capsys
):
    _digit_records(tmp_path, 6)
    monkeypatch.chdir(tmp_path / "in")
    argv = ["run", "--input", "part-*.tfrecord.gz", "--output", "../out", "--copies", "1"]
    assert main(argv + ["--policy", "no-flip", "--", "--direct_num_workers=1"]) == 0
    summary = json.loads((tmp_path / "out/augment_summary.json").read_text())
    assert summary["examples_in"] == 6 and summary["examples_out"] == 12
    assert sum(1 for _ in read_images(str(tmp_path / "out"), channels=1)) == 12


def test_preview_refuses_an_existing_file_and_writes_the_format_its_suffix_names(tmp_path, capsys):
    _digit_records(tmp_path, 6)
    pattern = str(tmp_path / "in/*")
    input_file = sorted((tmp_path / "in").glob("*.gz"))[0]
    before = input_file.read_bytes()

    def preview(output, *extra):
        argv = ["preview", "--input", pattern, "--output", str(output), "--rows", "2", *extra]
        code = main(argv + ["--policy", "no-flip"])
        return code, capsys.readouterr().err.strip().splitlines()

    jpeg = tmp_path / "sheet.JPG"
    assert preview(jpeg)[0] == 0
    assert jpeg.read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG, as the suffix says
    written = jpeg.read_bytes()
    assert preview(jpeg) == (
        2,
        [
            f"image-augment: error: --output {jpeg} already exists; pass --overwrite to "
            "replace it, or choose another file."
        ],
    )
    assert jpeg.read_bytes() == written
    png = tmp_path / "sheet.png"
    png.write_bytes(b"old")
    assert preview(png, "--overwrite")[0] == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert preview(input_file, "--overwrite") == (
        2,
        [
            f"image-augment: error: --output "
            f"{input_file}: name a .png, .jpg or .jpeg file (its suffix decides the format)."
        ],
    )
    own_input = tmp_path / "in/records.png"  # an input file, whatever its name
    own_input.write_bytes(before)
    assert preview(own_input, "--overwrite") == (
        2,
        [f"image-augment: error: --output {own_input} is an input file of this preview."],
    )
    assert input_file.read_bytes() == before and own_input.read_bytes() == before
    assert preview(tmp_path / "sheet.gif")[1] == [
        f"image-augment: error: --output {tmp_path / 'sheet.gif'}: name a .png, .jpg or .jpeg "
        "file (its suffix decides the format)."
    ]
    assert not (tmp_path / "sheet.gif").exists()
