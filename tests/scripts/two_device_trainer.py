"""Runs the pipeline's Trainer onwards with MirroredStrategy over two logical CPU devices.

Usage: two_device_trainer.py OUTPUT_DIR. Upstream components come from TFX's cache of a run
that local_runner.py made in OUTPUT_DIR; the devices must exist before TensorFlow starts.
"""

import os
import sys

import tensorflow as tf
from tfx_image_augment import environment

environment.configure()  # an entry point: Keras flavour and quiet logs, before TensorFlow

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

from tfx import v1 as tfx  # noqa: E402

from pipelines import configs  # noqa: E402
from pipelines.pipeline import create_pipeline  # noqa: E402

output_dir = sys.argv[1]
pipeline = create_pipeline(
    pipeline_name=configs.PIPELINE_NAME,
    pipeline_root=os.path.join(output_dir, "pipeline_root"),
    data_root=os.path.join(output_dir, "data", "digits"),
    serving_model_dir=os.path.join(output_dir, "serving_model"),
    num_copies=2,
    mode="both",
    train_steps=80,
    eval_steps=10,
    channels=1,
    training_config={"strategy_devices": ["/cpu:0", "/cpu:1"]},
    beam_pipeline_args=["--direct_num_workers=1"],
    metadata_connection_config=tfx.orchestration.metadata.sqlite_metadata_connection_config(
        os.path.join(output_dir, "metadata.sqlite")
    ),
)
tfx.orchestration.LocalDagRunner().run(pipeline)
print("TWO_DEVICE_RUN_OK")
