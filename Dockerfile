# One image for the KFP/Vertex component steps, the Dataflow workers (as
# --sdk_container_image) and the Vertex AI training job. TFX's official image already holds
# TFX 1.16.0, TensorFlow, Beam (with its SDK harness) and Python 3.10; we add the library
# (`tfx_image_augment`) and the example project that uses it (`pipelines/`, the runners).
FROM tensorflow/tfx:1.16.0

WORKDIR /pipeline
# The example project's modules are imported by path from compiled specs
# (pipelines.trainer.run_fn, pipelines.preprocessing.preprocessing_fn): keep them importable.
ENV PYTHONPATH=/pipeline
COPY pyproject.toml README.md constraints.txt ./
COPY components ./components
COPY pipelines ./pipelines
COPY local_runner.py kubeflow_v2_runner.py ./

# The extras a Dataflow worker needs are `[beam,gcp]` (Beam with its Google Cloud clients); the
# base image already holds them at the versions TFX 1.16 was tested with.
# --no-deps: the base image's TFX stack is the tested one; reinstalling it would fight it.
RUN pip install --no-cache-dir --no-deps '.[beam,gcp]' \
 && python -c "import tfx_image_augment.tfx_component.executor, tfx_image_augment.offline.beam.transforms, pipelines.trainer, pipelines.preprocessing"
