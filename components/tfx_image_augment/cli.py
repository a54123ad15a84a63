"""`image-augment`: the offline expansion and its preview without TFX orchestration.

    image-augment run --input 'data/train-*.tfrecord' --output out/ --policy standard \\
        --copies 4 --seed 1 [-- --runner=DataflowRunner --project=... ...]
    image-augment preview --input 'data/train-*.tfrecord' --policy standard --output sheet.png
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tfx_image_augment import environment, runner_checks

EXIT_USAGE, EXIT_FAILED = 2, 1


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
    run.add_argument("--output", required=True, help="output folder")
    run.add_argument("--mask-feature", default=None)
    run.add_argument("--max-quarantine-fraction", type=float, default=0.01)
    run.add_argument("--output-format", default="same", choices=("same", "png", "jpeg"))
    run.add_argument("--jpeg-quality", type=int, default=95)
    run.add_argument("--no-original", action="store_true", help="write copies only")
    run.add_argument(
        "--no-provenance",
        action="store_true",
        help="do not add aug_copy_index / aug_source_key / aug_seed",
    )
    run.add_argument("--batch-size", type=int, default=64)
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
    preview.add_argument("--output", required=True, help="PNG file to write")
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


def _run(args, beam_args: list[str], log) -> int:
    import apache_beam as beam
    import tensorflow as tf
    from apache_beam.options.pipeline_options import PipelineOptions

    from tfx_image_augment.expansion import run_expansion
    from tfx_image_augment.preview import write_augmentation_model

    config = _config(
        args,
        mask_feature=args.mask_feature,
        max_quarantine_fraction=args.max_quarantine_fraction,
        output_format=args.output_format,
        jpeg_quality=args.jpeg_quality,
        include_original=not args.no_original,
        provenance=not args.no_provenance,
        batch_size=args.batch_size,
        copies_per_class=args.copies_per_class,
        balance=args.balance,
        max_copies=args.max_copies,
        num_shards=args.num_shards,
    )
    files = tf.io.gfile.glob(args.input)
    if not files:
        raise FileNotFoundError(f"--input {args.input!r} matches no file.")
    policy = config.loaded_policy
    started = time.time()
    log.info(
        "reading %d file(s); %d copies each with policy %s (%s), seed %d",
        len(files),
        config.num_copies,
        policy.name or "custom",
        policy.fingerprint[:12],
        config.seed,
    )
    tf.io.gfile.makedirs(args.output)
    pipeline = beam.Pipeline(options=PipelineOptions(beam_args))
    expansion_started = time.time()
    counts = run_expansion(
        pipeline,
        {"data": (args.input, args.output)},
        os.path.join(args.output, "quarantine"),
        config,
        worker_start_timeout=args.worker_start_timeout,
    )["data"]
    expansion_seconds = time.time() - expansion_started
    model_dir = os.path.join(args.output, "augmentation_model")
    write_augmentation_model(model_dir, args.input, config)
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
        summary["classes"] = {"in": counts.get("class_in", {}), "out": counts.get("class_out", {})}
    with tf.io.gfile.GFile(os.path.join(args.output, "augment_summary.json"), "w") as handle:
        handle.write(json.dumps(summary, indent=2, sort_keys=True) + "\n")
    bad = sum(counts["quarantined"].values())
    print(
        f"\nimage-augment: {summary['examples_in']} examples in -> "
        f"{summary['examples_out']} out ({summary['originals_written']} originals + "
        f"{summary['copies_written']} copies) in {summary['elapsed_seconds']} s\n"
        f"  quarantined : {bad} {counts['quarantined'] or ''}\n"
        f"  policy      : {summary['policy']} ({policy.fingerprint[:12]}), seed {config.seed}\n"
        + (f"  classes     : {_class_line(summary['classes'])}\n" if "classes" in summary else "")
        + f"  data        : {os.path.join(args.output, 'data_tfrecord-*.gz')}\n"
        f"  model       : {model_dir} (policy.json, saved_model/, preview.png)\n"
        f"  summary     : {os.path.join(args.output, 'augment_summary.json')}"
    )
    return 0


def _class_line(classes: dict) -> str:
    """'3: 10 -> 50, 7: 100 -> 500' in label order (numeric labels by value)."""
    labels = sorted(classes["in"], key=lambda s: (not s.lstrip("-").isdigit(), len(s), s))
    return ", ".join(f"{c}: {classes['in'][c]} -> {classes['out'].get(c, 0)}" for c in labels)


def _preview(args, log) -> int:
    from tfx_image_augment.preview import preview_from_pattern, write_png

    config = _config(args)
    sheet, _ = preview_from_pattern(args.input, config, rows=args.rows)
    if sheet is None:
        raise FileNotFoundError(
            f"--input {args.input!r}: no decodable image in feature {args.image_feature!r}."
        )
    write_png(args.output, sheet)
    print(
        f"image-augment: wrote {args.output} ({sheet.shape[1]}x{sheet.shape[0]}): each "
        f"original beside {min(args.copies, 6)} copies"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    environment.configure()  # an entry point: quiet logs here and in Beam's workers
    argv = list(sys.argv[1:] if argv is None else argv)
    beam_args: list[str] = []
    if "--" in argv:
        cut = argv.index("--")
        argv, beam_args = argv[:cut], argv[cut + 1 :]
    args = _parser().parse_args(argv)
    log = environment.progress_logger("image-augment")
    from tfx_image_augment.expansion import CorruptInputError, QuarantineLimitExceeded

    try:
        if args.command == "run":
            return _run(args, beam_args, log)
        return _preview(args, log)
    except (ValueError, FileNotFoundError) as err:  # bad arguments or policy
        print(f"image-augment: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except (QuarantineLimitExceeded, CorruptInputError, runner_checks.WorkerPoolUnavailable) as err:
        print(f"image-augment: failed: {err}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
