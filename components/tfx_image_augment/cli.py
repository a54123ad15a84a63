"""`image-augment`: the offline expansion and its preview without TFX orchestration.

    image-augment run --input 'data/train-*.tfrecord' --output out/ --policy standard \\
        --copies 4 --seed 1 [-- --runner=DataflowRunner --project=... ...]
    image-augment preview --input 'data/train-*.tfrecord' --policy standard --output sheet.png

`run` writes into a staging folder beside --output and publishes it whole, with its completion
marker, only when everything is written and every check passed (see publish.py). Exit codes:
0 published; 1 the run failed (nothing published); 2 bad arguments, input or output (nothing
ran); 130 interrupted (Ctrl-C; nothing published unless the message says so); 143 the same
after SIGTERM.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tfx_image_augment import environment, failures, input_files, runner_checks
from tfx_image_augment.interrupts import InterruptGuard

EXIT_USAGE, EXIT_FAILED = 2, 1
# Records read from the input before the run, to fail at once on an empty input or on a feature
# name that no record has (instead of after a full pass over the data).
SAMPLE_RECORDS = 16


def _numbers(text: str, kind, count: int, name: str):
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise argparse.ArgumentTypeError(
            f"{name} takes {count} comma-separated numbers, "
            f"e.g. {','.join(['1'] * count)}; got {text!r}"
        )
    return values


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"takes a number of seconds >= 0; got {text!r}")
    return value


def _permutation(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes keypoint indices separated by commas, e.g. 1,0,2; got {text!r}"
        ) from None


def _copies_per_class(text: str) -> dict[str, float]:
    pairs = {}
    for item in text.split(","):
        label, _, copies = item.partition("=")
        try:
            pairs[label.strip()] = float(copies)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"takes LABEL=COPIES pairs separated by commas, e.g. 3=8,7=2.5; got {text!r}"
            ) from None
    return pairs


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image-augment",
        description="Seeded offline image augmentation of TFRecords.",
        epilog="Arguments after `--` go to the Beam runner (e.g. --runner=DataflowRunner).",
    )
    commands = parser.add_subparsers(dest="command", required=True)

    def common(sub):
        sub.add_argument("--input", required=True, help="glob of TFRecord files (gz or not)")
        sub.add_argument("--policy", default="standard", help="preset name or JSON file")
        sub.add_argument("--copies", type=int, default=4, help="augmented copies per example")
        sub.add_argument("--seed", type=int, default=0)
        sub.add_argument("--image-feature", default="image")
        sub.add_argument(
            "--key-feature",
            default=None,
            help="feature holding a stable example id (default: content hash)",
        )
        sub.add_argument(
            "--image-shape",
            default=None,
            type=lambda t: _numbers(t, int, 3, "--image-shape"),
            help="H,W,C of raw (non-encoded) pixel arrays",
        )
        sub.add_argument(
            "--value-range",
            default=None,
            type=lambda t: _numbers(t, float, 2, "--value-range"),
            help="LO,HI of raw float pixels",
        )
        sub.add_argument(
            "--label-feature",
            default=None,
            help="the class feature: per-class counts, --copies-per-class, --balance",
        )
        sub.add_argument(
            "--box-coordinates",
            default="normalized",
            choices=("normalized", "pixels"),
            help="units of image/object/bbox/* and keypoints (detection records)",
        )
        sub.add_argument(
            "--keypoint-flip-permutation",
            default=None,
            type=_permutation,
            metavar="J,J,...",
            help="keypoint slot j of a mirrored image takes keypoint J (left/right pairs swap)",
        )
        sub.add_argument(
            "--min-box-visibility",
            type=float,
            default=0.0,
            help="drop an object whose visible box fraction falls below this (default 0)",
        )
        sub.add_argument(
            "--max-image-pixels",
            type=int,
            default=50_000_000,
            help="quarantine larger images (width x height, read from the header) unread",
        )
        sub.add_argument(
            "--out-of-range",
            default="quarantine",
            choices=("quarantine", "clip"),
            help="raw float pixels outside --value-range: quarantine the example, or clip them",
        )

    run = commands.add_parser("run", help="write the augmented dataset")
    common(run)
    run.add_argument(
        "--output",
        required=True,
        help="output folder: absent or empty, or an earlier output with --overwrite",
    )
    run.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing output folder whole (only one that image-augment wrote)",
    )
    run.add_argument("--mask-feature", default=None)
    run.add_argument("--max-quarantine-fraction", type=float, default=0.01)
    run.add_argument("--output-format", default="same", choices=("same", "png", "jpeg"))
    run.add_argument("--jpeg-quality", type=int, default=95)
    run.add_argument(
        "--png-compression", type=int, default=1, help="zlib level 0-9 of copies written as PNG"
    )
    run.add_argument("--no-original", action="store_true", help="write copies only")
    run.add_argument(
        "--no-provenance",
        action="store_true",
        help="do not add aug_copy_index / aug_source_key / aug_seed",
    )
    run.add_argument("--batch-size", type=int, default=1024)
    run.add_argument(
        "--copies-per-class",
        default=None,
        type=_copies_per_class,
        metavar="LABEL=K,...",
        help="copies per example of each listed class (others get --copies); K may be fractional",
    )
    run.add_argument(
        "--balance",
        default=None,
        choices=("equal",),
        help="bring every class up to the largest class's count (per example at most --max-copies)",
    )
    run.add_argument("--max-copies", type=int, default=16)
    run.add_argument(
        "--num-shards", type=int, default=0, help="output files per split (0: Beam decides)"
    )
    run.add_argument(
        "--worker-start-timeout",
        type=_seconds,
        default=runner_checks.DEFAULT_WORKER_START_TIMEOUT,
        metavar="SECONDS",
        help="with an EXTERNAL Beam worker pool (--environment_type=EXTERNAL after `--`), fail "
        "unless it starts a worker within this time (0: do not check)",
    )

    preview = commands.add_parser("preview", help="draw a contact sheet, write no dataset")
    common(preview)
    preview.add_argument("--output", required=True, help="image file to write: .png, .jpg")
    preview.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    preview.add_argument("--rows", type=int, default=6)
    return parser


def _config(args, **extra):
    from tfx_image_augment.config import AugmentConfig, canonical_policy

    return AugmentConfig(
        policy=canonical_policy(args.policy),
        num_copies=args.copies,
        seed=args.seed,
        splits_to_augment=("data",),
        image_feature=args.image_feature,
        key_feature=args.key_feature,
        image_shape=args.image_shape,
        value_range=args.value_range,
        label_feature=args.label_feature,
        box_coordinates=args.box_coordinates,
        min_box_visibility=args.min_box_visibility,
        keypoint_flip_permutation=args.keypoint_flip_permutation,
        max_image_pixels=args.max_image_pixels,
        out_of_range=args.out_of_range,
        **extra,
    ).validate()


def _input_files(pattern: str) -> list[str]:
    """The files `pattern` matches, each a readable file; ValueError or FileNotFoundError with
    one sentence otherwise."""
    import tensorflow as tf

    files = sorted(tf.io.gfile.glob(pattern))
    if not files:
        raise FileNotFoundError(f"--input {pattern!r} matches no file.")
    for path in files:
        if tf.io.gfile.isdir(path):
            raise ValueError(
                f"--input {pattern!r} matches the folder {path}: give a glob of its TFRecord "
                f"files, e.g. '{os.path.join(path, '*')}'."
            )
        input_files.refuse_special_file(path)  # a FIFO would block the open below
        if "://" not in path:
            try:
                open(path, "rb").close()
            except OSError as err:
                raise ValueError(f"cannot read --input file {path}: {err.strerror}.") from None
    return files


def _first_records(pattern: str, files: list[str]) -> tuple[str, list[bytes]]:
    """(file, its first records) of the first input file that holds any. An input without a
    record is an error (ValueError), not a run of 0 examples."""
    import tensorflow as tf

    from tfx_image_augment.expansion import CorruptInputError
    from tfx_image_augment.records import compression_of

    for path in files:
        try:
            dataset = tf.data.TFRecordDataset(path, compression_of(path))
            records = [record.numpy() for record in dataset.take(SAMPLE_RECORDS)]
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
            raise CorruptInputError(
                f"Input TFRecord file(s) are damaged and cannot be read: {path} "
                f"({err.message.splitlines()[0]})"
            ) from None
        if records:
            return path, records
    raise ValueError(
        f"--input {pattern!r}: its {len(files)} file(s) hold no record; nothing to augment."
    )


def _check_features(path: str, records: list[bytes], config) -> None:
    """ValueError when a feature named on the command line is in none of `records` (the first
    of `path`): a misspelled name fails now, not after a full pass quarantined everything."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    from tfx_image_augment.balance import depends_on_class

    names: set[str] = set()
    parsed = 0
    for record in records:
        try:
            names.update(tf.train.Example.FromString(record).features.feature.keys())
        except DecodeError:  # not a tf.Example: the run quarantines it with its reason
            continue
        parsed += 1
    if not parsed:
        return
    from tfx_image_augment.records import image_feature_of

    image_feature = image_feature_of(names, config) or config.image_feature  # or image/encoded
    for flag, feature in (
        ("--image-feature", image_feature),
        ("--key-feature", config.key_feature),
        ("--mask-feature", config.mask_feature),
        ("--label-feature", config.label_feature if depends_on_class(config) else None),
    ):
        if feature and feature not in names:
            raise ValueError(
                f"{flag} {feature!r} is in none of the first {parsed} records of {path}; "
                f"their features are {', '.join(sorted(names))}."
            )


def _checked_input(args, config) -> list[str]:
    files = _input_files(args.input)
    path, records = _first_records(args.input, files)
    _check_features(path, records, config)
    return files


def _run(args, beam_args: list[str], log, guard: InterruptGuard) -> int:
    from tfx_image_augment.publish import StagedOutput
    from tfx_image_augment.records import DATA_PREFIX

    # The cheap checks first: a wrong --output fails before TensorFlow and Beam load.
    target = StagedOutput(args.output, args.overwrite, DATA_PREFIX)
    target.check()
    runner_checks.check_beam_args(beam_args)

    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_image_augment.completion import (
        MARKER_FILE,
        MODEL_DIR,
        QUARANTINE_DIR,
        SUMMARY_FILE,
        describe_output,
    )
    from tfx_image_augment.expansion import QuarantineLimitExceeded, run_expansion
    from tfx_image_augment.preview import write_augmentation_model
    from tfx_image_augment.publish import remove_beam_temp
    from tfx_image_augment.records import QUARANTINE_PREFIX

    config = _config(
        args,
        mask_feature=args.mask_feature,
        max_quarantine_fraction=args.max_quarantine_fraction,
        output_format=args.output_format,
        jpeg_quality=args.jpeg_quality,
        png_compression=args.png_compression,
        include_original=not args.no_original,
        provenance=not args.no_provenance,
        batch_size=args.batch_size,
        copies_per_class=args.copies_per_class,
        balance=args.balance,
        max_copies=args.max_copies,
        num_shards=args.num_shards,
    )
    files = _checked_input(args, config)
    target.check_input(args.input, files)  # the run must not read what it writes
    options = PipelineOptions(beam_args)
    policy = config.loaded_policy
    guard.message = lambda: (
        f"image-augment: interrupted after publishing {target.output}, which is complete"
        if target.published
        else f"image-augment: interrupted; {target.output} was left as it was"
    )
    target.prepare()
    guard.add_cleanup(target.discard)
    staging = target.staging
    quarantine_dir = os.path.join(staging, QUARANTINE_DIR)
    try:
        started = time.time()
        log.info(
            "reading %d file(s); %d copies each with policy %s (%s), seed %d",
            len(files),
            config.num_copies,
            policy.name or "custom",
            policy.fingerprint[:12],
            config.seed,
        )
        pipeline = beam.Pipeline(options=options)
        expansion_started = time.time()
        try:
            counts = run_expansion(
                pipeline,
                {"data": (args.input, staging)},
                quarantine_dir,
                config,
                worker_start_timeout=args.worker_start_timeout,
                quarantine_kept_in=target.kept_quarantine,
            )["data"]
        except QuarantineLimitExceeded:
            target.keep_quarantine()
            raise
        expansion_seconds = time.time() - expansion_started
        write_augmentation_model(os.path.join(staging, MODEL_DIR), args.input, config)
        summary = {
            "examples_in": counts["examples_read"],
            "examples_out": counts["examples_out"],
            "copies_written": counts["copies_written"],
            "originals_written": counts["originals_written"],
            "quarantined": counts["quarantined"],
            "policy": policy.name or "custom",
            "policy_fingerprint": policy.fingerprint,
            "seed": config.seed,
            "copies": config.num_copies,
            "elapsed_seconds": round(time.time() - started, 1),
            "expansion_seconds": round(expansion_seconds, 2),
        }
        if config.label_feature:
            # Records per class before (examples read) and after (original + copies written).
            summary["classes"] = {
                "in": counts.get("class_in", {}),
                "out": counts.get("class_out", {}),
            }
        with tf.io.gfile.GFile(os.path.join(staging, SUMMARY_FILE), "w") as handle:
            handle.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        remove_beam_temp(staging)
        marker = describe_output(
            staging,
            {"data": ""},
            {"data": counts["examples_out"]},
            DATA_PREFIX,
            [f"{QUARANTINE_DIR}/Split-data"],
            QUARANTINE_PREFIX,
            sum(counts["quarantined"].values()),
        )
        target.publish(marker)
    finally:
        target.discard()
    out = target.output
    bad = sum(counts["quarantined"].values())
    print(
        f"\nimage-augment: {summary['examples_in']} examples in -> "
        f"{summary['examples_out']} out ({summary['originals_written']} originals + "
        f"{summary['copies_written']} copies) in {summary['elapsed_seconds']} s\n"
        f"  quarantined : {bad} {counts['quarantined'] or ''}\n"
        f"  policy      : {summary['policy']} ({policy.fingerprint[:12]}), seed {config.seed}\n"
        + (f"  classes     : {_class_line(summary['classes'])}\n" if "classes" in summary else "")
        + f"  data        : {os.path.join(out, 'data_tfrecord-*.gz')}\n"
        f"  model       : {os.path.join(out, MODEL_DIR)} (policy.json, saved_model/, "
        "preview.png)\n"
        f"  summary     : {os.path.join(out, SUMMARY_FILE)}\n"
        f"  complete    : {os.path.join(out, MARKER_FILE)} (lists every shard; readers trust it)"
    )
    return 0


def _class_line(classes: dict) -> str:
    """'3: 10 -> 50, 7: 100 -> 500' in label order (numeric labels by value)."""
    labels = sorted(classes["in"], key=lambda s: (not s.lstrip("-").isdigit(), len(s), s))
    return ", ".join(f"{c}: {classes['in'][c]} -> {classes['out'].get(c, 0)}" for c in labels)


def _preview(args, log, guard: InterruptGuard) -> int:
    import tensorflow as tf

    from tfx_image_augment.preview import preview_from_pattern
    from tfx_image_augment.publish import check_sheet_output, write_sheet

    output = args.output.strip()
    if not output:
        raise ValueError("--output is empty: name the PNG file to write, e.g. sheet.png")
    if tf.io.gfile.isdir(output):
        raise ValueError(f"--output {output} is a folder: name the PNG file to write in it.")
    config = _config(args)
    image_format = check_sheet_output(output, args.overwrite, _checked_input(args, config))
    guard.message = "image-augment: interrupted; no preview was written"
    sheet, _ = preview_from_pattern(args.input, config, rows=args.rows)
    if sheet is None:
        raise FileNotFoundError(
            f"--input {args.input!r}: no decodable image in feature {args.image_feature!r}."
        )
    try:
        write_sheet(output, sheet, image_format)
    except (OSError, tf.errors.OpError) as err:
        reason = err.strerror if isinstance(err, OSError) else err.message.splitlines()[0]
        raise ValueError(f"cannot write --output {output}: {reason}.") from None
    print(
        f"image-augment: wrote {output} ({sheet.shape[1]}x{sheet.shape[0]}): each "
        f"original beside {min(args.copies, 6)} copies"
    )
    return 0


def _one_line(err: BaseException) -> str:
    """An OS or TensorFlow error as one line naming its path."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    message = getattr(err, "message", None) or str(err)
    return message.strip().splitlines()[0] if message.strip() else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    environment.configure()  # an entry point: quiet logs here and in Beam's workers
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    args.input = input_files.absolute_pattern(args.input)  # once, before anything reads it
    environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
    log = environment.progress_logger("image-augment")
    # Before TensorFlow and Beam start threads: every thread must inherit the guard's mask.
    with InterruptGuard() as guard:
        guard.message = "image-augment: interrupted; nothing was written"
        try:
            if args.command == "run":
                code = _run(args, beam_args, log, guard)
            else:
                code = _preview(args, log, guard)
        except BaseException as err:
            # Whatever an interrupt turned into on its way (Beam wraps, workers die), it is an
            # interrupt; and one that was swallowed still ends the run below.
            if guard.interrupted or isinstance(err, KeyboardInterrupt):
                guard.exit_interrupted()
            code = _failure(err)
        if guard.interrupted:
            guard.exit_interrupted()
        return code


def _failure(err: BaseException) -> int:
    """Prints `err` as one line and returns the exit code; re-raises what is not ours to judge
    (a bug should show its traceback)."""
    from tfx_image_augment.expansion import CorruptInputError, QuarantineLimitExceeded

    full = failures.disk_full(err)  # however Beam wrapped it
    if full is not None:
        print(f"image-augment: failed: disk full writing {full}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(err, (ValueError, FileNotFoundError)):  # arguments, input, output, policy
        print(f"image-augment: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    if isinstance(
        err, (QuarantineLimitExceeded, CorruptInputError, runner_checks.WorkerPoolUnavailable)
    ):
        print(f"image-augment: failed: {err}", file=sys.stderr)
        return EXIT_FAILED
    if isinstance(err, OSError) or type(err).__module__.startswith("tensorflow"):
        print(f"image-augment: failed: {_one_line(err)}", file=sys.stderr)
        return EXIT_FAILED
    raise err


if __name__ == "__main__":
    sys.exit(main())
