# One image for the KFP/Vertex component steps, the Dataflow workers (as
# --sdk_container_image) and the Vertex AI training job. TFX's official image already holds
# TFX 1.16.0, TensorFlow, Beam (with its SDK harness) and Python 3.10; we add this package.
FROM tensorflow/tfx:1.16.0

WORKDIR /pipeline
COPY pyproject.toml README.md constraints.txt ./
COPY components ./components
COPY pipelines ./pipelines
COPY local_runner.py kubeflow_v2_runner.py ./

# --no-deps: the base image's TFX stack is the tested one; reinstalling it would fight it.
RUN pip install --no-cache-dir --no-deps -e . \
 && python -c "import tfx_image_augment, pipelines.trainer"

ENV PYTHONPATH=/pipeline
