"""Run the example pipeline locally: LocalDagRunner, Beam DirectRunner, SQLite metadata.

python local_runner.py                       # scikit-learn digits, offline augmentation
python local_runner.py --mode both --copies 2 --workers 2
python local_runner.py --data-root DIR       # DIR/train/* and DIR/eval/* TFRecords
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow
# The example project (`pipelines/`) is not installed: Beam's worker processes (--workers N)
# import its modules by name, so they inherit this folder on their path.
_HERE = os.path.dirname(os.path.abspath(__file__))
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (_HERE, os.environ.get("PYTHONPATH")) if p)

# Names the local Beam runs' SDK image, so TFX does not build an sdist of itself before each
# Beam component (the DirectRunner does not use the image; Dataflow runs set their own).
LOCAL_BEAM_ARGS = ["--sdk_container_image=apache/beam_python3.10_sdk:2.59.0"]


def parse_args(argv=None) -> argparse.Namespace:
    from pipelines import configs

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--output-dir",
        default="tfx_output",
        help="pipeline root, metadata and pushed model (default ./tfx_output)",
    )
    parser.add_argument(
        "--data-root",
        default=None,
        help="DIR with train/* and eval/* TFRecord files (default: digits)",
    )
    parser.add_argument("--policy", default=configs.POLICY, help="preset name or JSON file")
    parser.add_argument("--copies", type=int, default=configs.NUM_COPIES)
    parser.add_argument("--seed", type=int, default=configs.SEED)
    parser.add_argument("--mode", default=configs.MODE, choices=("offline", "online", "both"))
    parser.add_argument("--train-steps", type=int, default=configs.TRAIN_STEPS)
    parser.add_argument("--eval-steps", type=int, default=configs.EVAL_STEPS)
    parser.add_argument(
        "--key-feature",
        default=configs.KEY_FEATURE,
        help="stable id feature for seeds ('' to hash the content)",
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="Beam DirectRunner workers; >1 runs them as processes",
    )
    parser.add_argument("--no-cache", action="store_true", help="rerun every component")
    return parser.parse_args(argv)


def detect_channels(data_root: str) -> int:
    """Channels of the first training image (PNG/JPEG), so any dataset works unchanged."""
    import tensorflow as tf
    from tfx_image_augment.io.records import compression_of

    files = sorted(tf.io.gfile.glob(os.path.join(data_root, "train", "*")))
    if not files:
        raise SystemExit(f"local_runner: no files in {data_root}/train/: expected TFRecords.")
    for record in tf.data.TFRecordDataset(files[0], compression_of(files[0])).take(1):
        example = tf.train.Example.FromString(record.numpy())
        image = example.features.feature["image"].bytes_list.value[0]
        return int(tf.io.decode_image(image, expand_animations=False).shape[-1])
    raise SystemExit(f"local_runner: {files[0]} holds no record.")


def main(argv=None) -> int:
    from tfx import v1 as tfx

    from pipelines import configs, data
    from pipelines.pipeline import create_pipeline

    args = parse_args(argv)
    log = environment.progress_logger("local_runner")
    output_dir = os.path.abspath(args.output_dir)
    data_root = args.data_root or data.write_digits(os.path.join(output_dir, "data", "digits"))
    metadata_path = os.path.join(output_dir, "metadata.sqlite")
    serving_dir = os.path.join(output_dir, "serving_model")
    beam_args = LOCAL_BEAM_ARGS + (
        [f"--direct_num_workers={args.workers}", "--direct_running_mode=multi_processing"]
        if args.workers > 1
        else ["--direct_num_workers=1"]
    )
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=os.path.join(output_dir, "pipeline_root"),
        data_root=data_root,
        serving_model_dir=serving_dir,
        policy=args.policy,
        num_copies=args.copies,
        seed=args.seed,
        key_feature=args.key_feature or None,
        mode=args.mode,
        train_steps=args.train_steps,
        eval_steps=args.eval_steps,
        channels=detect_channels(data_root),
        beam_pipeline_args=beam_args,
        metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
            metadata_path
        ),
        enable_cache=not args.no_cache,
    )
    log.info(
        "running %s on %s (policy %s, K=%d, mode %s); outputs in %s",
        configs.PIPELINE_NAME,
        data_root,
        args.policy,
        args.copies,
        args.mode,
        output_dir,
    )
    started = time.time()
    tfx.orchestration.LocalDagRunner().run(pipeline)
    print(summary(metadata_path, serving_dir, time.time() - started))
    return 0


def cache_reuse(store) -> tuple[int, int]:
    """(steps that TFX reused from its cache, all steps) of the latest run in `store`: the
    executions of its newest pipeline_run context, and how many of them are CACHED."""
    from ml_metadata.proto import metadata_store_pb2

    runs = store.get_contexts_by_type("pipeline_run")
    if not runs:
        return 0, 0
    latest = max(runs, key=lambda context: (context.create_time_since_epoch, context.id))
    executions = store.get_executions_by_context(latest.id)
    cached = sum(e.last_known_state == metadata_store_pb2.Execution.CACHED for e in executions)
    return cached, len(executions)


def summary(metadata_path: str, serving_dir: str, seconds: float) -> str:
    """The run's results, read back from ML Metadata."""
    from ml_metadata.metadata_store import metadata_store
    from ml_metadata.proto import metadata_store_pb2
    from tfx_image_augment import AugmentationModel

    config = metadata_store_pb2.ConnectionConfig()
    config.sqlite.filename_uri = metadata_path
    store = metadata_store.MetadataStore(config)

    def latest(type_name):
        artifacts = store.get_artifacts_by_type(type_name)
        return max(artifacts, key=lambda a: a.id) if artifacts else None

    cached, steps = cache_reuse(store)
    if steps and cached == steps:
        lines = [
            f"\nPipeline finished in {seconds:.0f} s: all {steps} steps were reused from TFX's "
            "cache (same inputs, code and parameters), none ran again; --no-cache reruns them."
        ]
    else:
        lines = [f"\nPipeline finished in {seconds:.0f} s."]
        if cached:
            lines.append(f"  from cache      : {cached} of {steps} steps reused, not rerun")
    augmented = [
        a for a in store.get_artifacts_by_type("Examples") if "counts" in a.custom_properties
    ]
    if augmented:
        counts = json.loads(
            max(augmented, key=lambda a: a.id).custom_properties["counts"].string_value
        )
        for split, c in counts.items():
            lines.append(
                f"  records[{split}]".ljust(18)
                + f": {c['examples_read']} -> {c['examples_out']}"
                + (f" ({sum(c['quarantined'].values())} quarantined)" if c["quarantined"] else "")
            )
    evaluation = latest("ModelEvaluation")
    if evaluation is not None:
        import tensorflow_model_analysis as tfma

        result = tfma.load_eval_result(evaluation.uri)
        metrics = result.slicing_metrics[0][1][""][""]
        accuracy = metrics.get("sparse_categorical_accuracy", {}).get("doubleValue")
        if accuracy is not None:
            lines.append(f"  eval accuracy   : {accuracy:.3f}")
    blessing = latest("ModelBlessing")
    if blessing is not None:
        blessed = blessing.custom_properties.get("blessed")
        lines.append(f"  blessed         : {bool(blessed and blessed.int_value)}")
    pushed = latest("PushedModel")
    if pushed is not None and "pushed_destination" in pushed.custom_properties:
        lines.append(
            f"  pushed model    : {pushed.custom_properties['pushed_destination'].string_value}"
        )
    else:
        lines.append(f"  pushed model    : not pushed (see {serving_dir} after a blessed run)")
    model = latest(AugmentationModel.TYPE_NAME)
    if model is not None:
        lines.append(f"  preview sheet   : {os.path.join(model.uri, 'preview.png')}")
    lines.append(f"  metadata store  : {metadata_path}")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
