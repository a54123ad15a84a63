"""Settings of the example pipeline, in one place; the runners override them with flags."""

PIPELINE_NAME = "image-augment-digits"

# Augmentation (ImageAugment and the online layer share them).
POLICY = "no-flip"
NUM_COPIES = 4
SEED = 42
KEY_FEATURE = "id"

# Training (passed to run_fn through custom_config).
MODE = "offline"  # offline | online | both
TRAIN_STEPS = 400
EVAL_STEPS = 50
BATCH_SIZE = 32
EPOCHS = 8
LEARNING_RATE = 2e-3
IMAGE_SIZE = 32

# Evaluation: the pushed model must reach this accuracy on the untouched eval split.
ACCURACY_THRESHOLD = 0.6

# Module paths (not files): they resolve wherever this package is installed, locally, on
# Dataflow workers and in the Vertex training container.
PREPROCESSING_FN = "pipelines.preprocessing.preprocessing_fn"
RUN_FN = "pipelines.trainer.run_fn"

# Google Cloud (kubeflow_v2_runner.py): placeholders a user replaces with flags.
GCP_PROJECT = "my-project"
GCP_REGION = "us-central1"
GCS_BUCKET = "gs://my-bucket"
PIPELINE_IMAGE = "us-docker.pkg.dev/my-project/images/tfx-image-augment:latest"
TRAINER_MACHINE_TYPE = "n1-standard-8"
TRAINER_ACCELERATOR_TYPE = "NVIDIA_TESLA_T4"
TRAINER_ACCELERATOR_COUNT = 1
