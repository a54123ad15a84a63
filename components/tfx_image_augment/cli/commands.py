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
import dataclasses
import glob
import json
import os
import sys
import time
import traceback

from tfx_image_augment import __version__, environment
from tfx_image_augment.cli.interrupts import InterruptGuard
from tfx_image_augment.io import failures, inputs
from tfx_image_augment.io.completion import SUMMARY_FILE
from tfx_image_augment.io.folders import ID_FEATURE, LABELS_FILE, ImageFolder, scan_folder
from tfx_image_augment.offline.beam import runner_checks
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.params import PARAMS, RUN, Param

EXIT_USAGE, EXIT_FAILED = 2, 1
# The CLI's input is one split, written without a Split-<name> folder.
SPLIT = "data"
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


# How each kind of setting is read from the command line (the rest are plain text).
_PARSERS = {
    "int": int,
    "number": float,
    "shape": lambda text: _numbers(text, int, 3, "--image-shape"),
    "range": lambda text: _numbers(text, float, 2, "--value-range"),
    "permutation": _permutation,
    "class_map": _copies_per_class,
}


def _add_setting(sub: argparse.ArgumentParser, param: Param) -> None:
    """One option of the parameter table, with its default in the help."""
    if param.kind == "bool":  # every bool setting defaults to True: offered as --no-<...>
        sub.add_argument(
            param.flag, dest=param.name, action="store_false", help=f"do not {param.help}"
        )
        return
    options: dict = {"dest": param.name, "default": param.default, "metavar": param.metavar}
    if param.kind == "choice":
        options["choices"] = [c for c in param.choices if c is not None]
        options["metavar"] = None
    elif param.kind in _PARSERS:
        options["type"] = _PARSERS[param.kind]
    sub.add_argument(param.flag, help=f"{param.help} (default: {param.default_text()})", **options)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="image-augment",
        description="Seeded offline image augmentation of TFRecords.",
        epilog="Arguments after `--` go to the Beam runner (e.g. --runner=DataflowRunner).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="write the augmented dataset")
    preview = commands.add_parser("preview", help="draw a contact sheet, write no dataset")
    for sub in (run, preview):
        sub.add_argument(
            "--input",
            required=True,
            help="a glob of TFRecord files (gzipped or not), or a folder of images: "
            "FOLDER/<class>/<image> (labels from the sorted folder names) or FOLDER/<image>",
        )
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
    preview.add_argument("--output", required=True, help="image file to write: .png, .jpg")
    preview.add_argument("--overwrite", action="store_true", help="replace --output if it exists")
    for param in PARAMS:
        for name in param.commands:
            _add_setting(run if name == RUN else preview, param)
    run.add_argument(
        "--worker-start-timeout",
        type=_seconds,
        default=runner_checks.DEFAULT_WORKER_START_TIMEOUT,
        metavar="SECONDS",
        help="with an EXTERNAL Beam worker pool (--environment_type=EXTERNAL after `--`), fail "
        "unless it starts a worker within this time (0: do not check; default: %(default)s)",
    )
    preview.add_argument(
        "--rows", type=int, default=6, help="originals shown, one per row (default: 6)"
    )
    return parser


def _config(args, source=None):
    """The validated AugmentConfig of the parsed arguments: the CLI's input is one split. Images
    read from a folder are keyed by their relative path (`id`)."""
    settings = {
        param.name: getattr(args, param.name) for param in PARAMS if args.command in param.commands
    }
    if isinstance(source, ImageFolder) and settings.get("key_feature") is None:
        settings["key_feature"] = ID_FEATURE
    return AugmentConfig.from_user(splits_to_augment=(SPLIT,), **settings)


def _source(args):
    """The run's input: an `ImageFolder` when --input is a folder, else the TFRecord glob."""
    return scan_folder(args.input) if _is_folder(args.input) else args.input


def _refuse_reading_the_output(target, source, files: list[str]) -> None:
    if isinstance(source, ImageFolder):
        paths = [f"{source.root}/{name}" for name in files]
        for pattern in (f"{source.root}/*", f"{source.root}/*/*"):  # flat and class layouts
            target.check_input(pattern, paths)
    else:
        target.check_input(source, files)


def _input_files(pattern: str) -> list[str]:
    """The files `pattern` matches, each a readable file; ValueError or FileNotFoundError with
    one sentence otherwise. A local glob is matched without TensorFlow where it can be (a
    usage error then answers before TensorFlow loads)."""
    files = _glob(pattern)
    if not files:
        raise FileNotFoundError(f"--input {pattern!r} matches no file.")
    for path in files:
        if _is_folder(path):
            raise ValueError(
                f"--input {pattern!r} matches the folder {path}: give a glob of its TFRecord "
                f"files, e.g. '{os.path.join(path, '*')}'."
            )
        if "://" not in path:
            inputs.refuse_special_file(path)  # a FIFO would block the open below
            try:
                open(path, "rb").close()
            except OSError as err:
                raise ValueError(f"cannot read --input file {path}: {err.strerror}.") from None
    return files


def _glob(pattern: str) -> list[str]:
    if "://" not in pattern:
        found = glob.glob(pattern)
        if found:
            return sorted(found)
        has_wildcard = any(c in pattern for c in inputs.GLOB_CHARACTERS)
        folder = inputs.glob_prefix(pattern) if has_wildcard else os.path.dirname(pattern)
        if not os.path.isdir(folder or os.curdir):
            return []  # its folder is missing: nothing to match, and no need for TensorFlow
    import tensorflow as tf  # remote globs, and what Python's glob skips (names with a dot)

    return sorted(tf.io.gfile.glob(pattern))


def _is_folder(path: str) -> bool:
    if "://" not in path:
        return os.path.isdir(path)
    import tensorflow as tf

    return tf.io.gfile.isdir(path)


def _first_records(pattern: str, files: list[str]) -> tuple[str, list[bytes]]:
    """(file, its first records) of the first input file that holds any. An input without a
    record is an error (ValueError), not a run of 0 examples."""
    import tensorflow as tf

    from tfx_image_augment.io.records import compression_of
    from tfx_image_augment.offline.errors import CorruptInputError

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

    from tfx_image_augment.offline.balance import depends_on_class

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
    from tfx_image_augment.io.records import image_feature_of

    image_feature = image_feature_of(names, config.image_feature) or config.image_feature
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


def _check_records(args, config, source, files: list[str]) -> None:
    """The first records of a TFRecord input exist and hold the features named."""
    if isinstance(source, ImageFolder):
        return  # its records are made from the files, with the features the config expects
    path, records = _first_records(args.input, files)
    _check_features(path, records, config)


def _run(args, beam_args: list[str], log, guard: InterruptGuard, phase: _Phase) -> int:
    from tfx_image_augment.io.publish import StagedOutput
    from tfx_image_augment.io.records import DATA_PREFIX

    # Arguments, output and input first: problems there are usage errors (exit 2), the cheap
    # ones (settings, policy, paths) before TensorFlow or Beam loads.
    source = _source(args)
    config = _config(args, source)
    target = StagedOutput(args.output, args.overwrite, DATA_PREFIX)
    target.check()
    files = _input_files(args.input) if isinstance(source, str) else list(source.files)
    _refuse_reading_the_output(target, source, files)  # the run must not read what it writes
    if beam_args:
        runner_checks.check_beam_args(beam_args)
    _check_records(args, config, source, files)

    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_image_augment.io.completion import MARKER_FILE, MODEL_DIR, QUARANTINE_DIR
    from tfx_image_augment.offline.beam.run import Destination, OfflineResult, run_offline

    options = PipelineOptions(beam_args)
    policy = config.loaded_policy
    guard.message = lambda: (
        f"image-augment: interrupted after publishing {target.output}, which is complete"
        if target.published
        else f"image-augment: interrupted; {target.output} was left as it was"
    )
    target.prepare()  # the output's last check: its staging folder can be made
    guard.add_cleanup(target.discard)
    phase.started = True  # from here on, a failure is the run's (exit 1), not a usage error
    started = time.time()
    summary: dict = {}

    def write_summary(result: OfflineResult) -> None:
        counts = result.counts[SPLIT]
        summary.update(
            examples_in=counts["examples_read"],
            examples_out=counts["examples_out"],
            copies_written=counts["copies_written"],
            originals_written=counts["originals_written"],
            quarantined=counts["quarantined"],
            policy=policy.name or "custom",
            policy_fingerprint=policy.fingerprint,
            seed=config.seed,
            copies=config.num_copies,
            elapsed_seconds=round(time.time() - started, 1),
            expansion_seconds=round(result.expansion_seconds, 2),
        )
        if config.label_feature:
            # Records per class before (examples read) and after (original + copies written).
            summary["classes"] = {
                "in": counts.get("class_in", {}),
                "out": counts.get("class_out", {}),
            }
        with tf.io.gfile.GFile(os.path.join(target.staging, SUMMARY_FILE), "w") as handle:
            handle.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
        if isinstance(source, ImageFolder) and source.class_names:
            with tf.io.gfile.GFile(os.path.join(target.staging, LABELS_FILE), "w") as handle:
                handle.write("".join(f"{name}\n" for name in source.class_names))

    try:
        log.info(
            "reading %d %s; %d copies each with policy %s (%s), seed %d",
            len(files),
            "image(s)" if isinstance(source, ImageFolder) else "file(s)",
            config.num_copies,
            policy.name or "custom",
            policy.fingerprint[:12],
            config.seed,
        )
        import apache_beam as beam

        counts = run_offline(
            beam.Pipeline(options=options),
            {SPLIT: source},
            config,
            Destination(
                staging=target.staging,
                split_dirs={SPLIT: ""},
                model_dir=os.path.join(target.staging, MODEL_DIR),
                quarantine_kept_in=target.kept_quarantine,
                keep_quarantine=target.keep_quarantine,
                publish=target.publish,
                write_extras=write_summary,
            ),
            worker_start_timeout=args.worker_start_timeout,
            progress_log=log,
        ).counts[SPLIT]
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
        + _folder_lines(source, out)
        + f"  data        : {os.path.join(out, 'data_tfrecord-*.gz')}\n"
        f"  quarantine  : {os.path.join(out, QUARANTINE_DIR)}\n"
        f"  model       : {os.path.join(out, MODEL_DIR)} (policy.json, saved_model/, "
        "preview.png)\n"
        f"  summary     : {os.path.join(out, SUMMARY_FILE)}\n"
        f"  complete    : {os.path.join(out, MARKER_FILE)} (lists every shard; readers trust it)"
    )
    return 0


def _folder_lines(source, out: str) -> str:
    if not isinstance(source, ImageFolder):
        return ""
    skipped = f" ({source.skipped} files without an image suffix skipped)" if source.skipped else ""
    lines = f"  images      : {len(source.files)} read from {source.root}{skipped}\n"
    if source.class_names:
        lines += f"  labels      : {os.path.join(out, LABELS_FILE)} (label = line number - 1)\n"
    return lines


def _class_line(classes: dict) -> str:
    """'3: 10 -> 50, 7: 100 -> 500' in label order (numeric labels by value)."""
    labels = sorted(classes["in"], key=lambda s: (not s.lstrip("-").isdigit(), len(s), s))
    return ", ".join(f"{c}: {classes['in'][c]} -> {classes['out'].get(c, 0)}" for c in labels)


def _preview(args, log, guard: InterruptGuard, phase: _Phase) -> int:
    from tfx_image_augment.io.publish import OutputFolderError, check_sheet_output, write_sheet

    output = args.output.strip()
    if not output:
        raise ValueError("--output is empty: name the PNG file to write, e.g. sheet.png")
    if _is_folder(output):
        raise ValueError(f"--output {output} is a folder: name the PNG file to write in it.")
    source = _source(args)
    config = _config(args, source)
    # The output before the records: a usage error answers before TensorFlow loads.
    files = _input_files(args.input) if isinstance(source, str) else list(source.files)
    image_format = check_sheet_output(output, args.overwrite, files)
    _check_records(args, config, source, files)

    import tensorflow as tf

    from tfx_image_augment.offline.preview import preview_from_pattern

    guard.message = "image-augment: interrupted; no preview was written"
    # Drawing reads the input: what goes wrong there is the input's (exit 2), as below.
    sheet, _ = preview_from_pattern(source, config, rows=args.rows)
    if sheet is None:
        raise FileNotFoundError(
            f"--input {args.input!r}: no decodable image in feature {args.image_feature!r}."
        )
    phase.started = True
    try:
        write_sheet(output, sheet, image_format)
    except (OSError, tf.errors.OpError) as err:
        reason = err.strerror if isinstance(err, OSError) else err.message.splitlines()[0]
        raise OutputFolderError(f"cannot write --output {output}: {reason}.") from None
    print(
        f"image-augment: wrote {output} ({sheet.shape[1]}x{sheet.shape[0]}): each "
        f"original beside {min(args.num_copies, 6)} copies"
    )
    return 0


def _one_line(err: BaseException) -> str:
    """An OS or TensorFlow error as one line naming its path."""
    if isinstance(err, OSError) and err.strerror:
        return f"{err.strerror}: {err.filename}" if err.filename else err.strerror
    message = getattr(err, "message", None) or str(err)
    return message.strip().splitlines()[0] if message.strip() else type(err).__name__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    args.input = inputs.absolute_pattern(args.input)  # once, before anything reads it
    environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
    log = environment.progress_logger("image-augment")
    phase = _Phase()
    # Before TensorFlow and Beam start threads: every thread must inherit the guard's mask.
    with InterruptGuard() as guard:
        guard.message = "image-augment: interrupted; nothing was written"
        try:
            if args.command == "run":
                code = _run(args, beam_args, log, guard, phase)
            else:
                code = _preview(args, log, guard, phase)
        except BaseException as err:
            # Whatever an interrupt turned into on its way (Beam wraps, workers die), it is an
            # interrupt; and one that was swallowed still ends the run below.
            if guard.interrupted or isinstance(err, KeyboardInterrupt):
                guard.exit_interrupted()
            code = _failure(err, phase)
        if guard.interrupted:
            guard.exit_interrupted()
        return code


@dataclasses.dataclass
class _Phase:
    """Whether the run has started: before, a bad argument, input or output is a usage error
    (exit 2, nothing ran); after, a failure is the run's (exit 1)."""

    started: bool = False


def _failure(err: BaseException, phase: _Phase) -> int:
    """Prints `err` as one line and returns the exit code; re-raises what is not ours to judge
    (a bug shows its traceback). IMAGE_AUGMENT_LOG_LEVEL=DEBUG prints the traceback too."""
    from tfx_image_augment.io.publish import OutputFolderError
    from tfx_image_augment.offline.errors import (
        CorruptInputError,
        EmptyInputError,
        QuarantineLimitExceeded,
    )

    is_tf_error = type(err).__module__.startswith("tensorflow")
    full = failures.disk_full(err)  # however Beam wrapped it
    if full is not None:
        line, code = f"image-augment: failed: disk full writing {full}", EXIT_FAILED
    elif isinstance(err, (OutputFolderError, EmptyInputError)):  # the output's or input's fault
        line, code = f"image-augment: error: {_one_line(err)}", EXIT_USAGE
    elif isinstance(
        err, (QuarantineLimitExceeded, CorruptInputError, runner_checks.WorkerPoolUnavailable)
    ):
        line, code = f"image-augment: failed: {err}", EXIT_FAILED
    elif not phase.started and (isinstance(err, (ValueError, OSError)) or is_tf_error):
        line, code = f"image-augment: error: {_one_line(err)}", EXIT_USAGE
    elif isinstance(err, OSError) or is_tf_error:
        line, code = f"image-augment: failed: {_one_line(err)}", EXIT_FAILED
    else:
        raise err
    if environment.third_party_log_level() == "DEBUG":
        traceback.print_exception(type(err), err, err.__traceback__, file=sys.stderr)
    print(line, file=sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
