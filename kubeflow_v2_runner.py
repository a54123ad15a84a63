"""Compile the pipeline for Vertex AI Pipelines / Kubeflow Pipelines v2, offline.

    python kubeflow_v2_runner.py --output pipeline.json --project P --region R \\
        --bucket gs://B --image REGION-docker.pkg.dev/P/REPO/tfx-image-augment:TAG

Beam steps (ExampleGen, ImageAugment, StatisticsGen, Transform, Evaluator) run on Dataflow
with the same image as their SDK container; the Trainer runs as a Vertex AI custom job on the
machine and GPU given here. Nothing is contacted while compiling. The image (the Dockerfile)
holds the package with the extras Dataflow needs, `.[beam,gcp]`.
"""

from __future__ import annotations

import argparse
import sys

from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow


def parse_args(argv=None) -> argparse.Namespace:
    from pipelines import configs

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--output", default="pipeline.json", help="compiled pipeline JSON")
    parser.add_argument("--project", default=configs.GCP_PROJECT)
    parser.add_argument("--region", default=configs.GCP_REGION)
    parser.add_argument("--bucket", default=configs.GCS_BUCKET, help="gs://BUCKET for outputs")
    parser.add_argument(
        "--image",
        default=configs.PIPELINE_IMAGE,
        help="the image built from this repository's Dockerfile",
    )
    parser.add_argument("--data-root", default=None, help="default: BUCKET/data")
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--policy", default=configs.POLICY, help="preset name or JSON file")
    parser.add_argument("--copies", type=int, default=configs.NUM_COPIES)
    parser.add_argument("--mode", default=configs.MODE, choices=("offline", "online", "both"))
    parser.add_argument("--train-steps", type=int, default=configs.TRAIN_STEPS)
    parser.add_argument("--machine-type", default=configs.TRAINER_MACHINE_TYPE)
    parser.add_argument("--accelerator-type", default=configs.TRAINER_ACCELERATOR_TYPE)
    parser.add_argument("--accelerator-count", type=int, default=configs.TRAINER_ACCELERATOR_COUNT)
    return parser.parse_args(argv)


def dataflow_beam_args(args) -> list[str]:
    return [
        "--runner=DataflowRunner",
        f"--project={args.project}",
        f"--region={args.region}",
        f"--temp_location={args.bucket}/tmp",
        f"--sdk_container_image={args.image}",
        "--experiments=use_runner_v2",
    ]


def vertex_training_args(args) -> dict:
    from tfx import v1 as tfx

    machine_spec = {"machine_type": args.machine_type}
    if args.accelerator_count > 0:
        machine_spec.update(
            accelerator_type=args.accelerator_type, accelerator_count=args.accelerator_count
        )
    cloud = tfx.extensions.google_cloud_ai_platform
    return {
        cloud.ENABLE_VERTEX_KEY: True,
        cloud.VERTEX_REGION_KEY: args.region,
        cloud.TRAINING_ARGS_KEY: {
            "project": args.project,
            "worker_pool_specs": [
                {
                    "machine_spec": machine_spec,
                    "replica_count": 1,
                    "container_spec": {"image_uri": args.image},
                }
            ],
        },
    }


def main(argv=None) -> int:
    from tfx.orchestration.kubeflow.v2 import kubeflow_v2_dag_runner

    from pipelines import configs
    from pipelines.pipeline import create_pipeline

    args = parse_args(argv)
    root = f"{args.bucket}/tfx_pipeline_output/{configs.PIPELINE_NAME}"
    pipeline = create_pipeline(
        pipeline_name=configs.PIPELINE_NAME,
        pipeline_root=root,
        data_root=args.data_root or f"{args.bucket}/data",
        serving_model_dir=f"{args.bucket}/serving_model/{configs.PIPELINE_NAME}",
        policy=args.policy,
        num_copies=args.copies,
        mode=args.mode,
        train_steps=args.train_steps,
        channels=args.channels,
        vertex_training_args=vertex_training_args(args),
        beam_pipeline_args=dataflow_beam_args(args),
    )
    runner = kubeflow_v2_dag_runner.KubeflowV2DagRunner(
        config=kubeflow_v2_dag_runner.KubeflowV2DagRunnerConfig(default_image=args.image),
        output_filename=args.output,
    )
    runner.run(pipeline, write_out=True)
    print(
        f"kubeflow_v2_runner: wrote {args.output}; submit it with "
        f"google.cloud.aiplatform.PipelineJob(template_path={args.output!r}, ...).submit()"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
