"""The one place that tames the process for an entry point: `configure()`, called explicitly.

Importing the library never calls it (a library import must not change the user's process).
Entry points do, before TensorFlow loads: the `image-augment` CLI, the example project's local
runner, Vertex compiler and trainer module, the tests and the benchmarks. Two decisions live
here:

1. Keras flavour. Where tf_keras is installed (the TFX environment), `TF_USE_LEGACY_KERAS`
   defaults to "1", so `tf.keras` is tf_keras 2.16; without it, `tf.keras` stays Keras 3.
   TFX 1.16's Transform and Evaluator (tensorflow-transform, TFMA) only work with tf_keras,
   and tensorflow-transform sets this variable on import *if nobody has yet*: without a
   decision, which Keras `tf.keras` means would depend on import order. A value the user set
   is respected (the augmentation layer works with both flavours; tests prove each).

2. Noise. TensorFlow's C++ start-up lines (CUDA factories, TensorRT, CPU features), absl INFO
   chatter and the Google client libraries' Python-version FutureWarnings are hidden unless the
   user raises `IMAGE_AUGMENT_LOG_LEVEL` (DEBUG, INFO, WARNING; default ERROR). Real TensorFlow
   failures still surface: they arrive as Python exceptions, not as C++ log lines.
"""

from __future__ import annotations

import importlib.util
import logging
import os
import sys
import warnings

LOG_LEVEL_ENV = "IMAGE_AUGMENT_LOG_LEVEL"
_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
# TF_CPP_MIN_LOG_LEVEL: 0 shows everything, 1 hides INFO, 2 hides WARNING, 3 hides ERROR.
# ERROR maps to 3 because TF's harmless CUDA-factory registration lines are logged as errors.
_TF_CPP_LEVEL = {"DEBUG": "0", "INFO": "0", "WARNING": "1", "ERROR": "3"}

_configured = False


def third_party_log_level() -> str:
    """The level asked for third-party logs, from `IMAGE_AUGMENT_LOG_LEVEL` (default ERROR)."""
    level = os.environ.get(LOG_LEVEL_ENV, "ERROR").strip().upper()
    return level if level in _LEVELS else "ERROR"


def configure() -> None:
    """Sets the Keras flavour and the log levels; safe to call more than once."""
    global _configured
    if _configured:
        return
    _configured = True
    level = third_party_log_level()
    if importlib.util.find_spec("tf_keras") is not None:
        # Only where tf_keras exists: with TensorFlow alone (a training job's install, Keras 3)
        # asking for it would make `tf.keras` fail to import.
        os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", _TF_CPP_LEVEL[level])
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR" if level == "ERROR" else level)
    if level in ("ERROR", "WARNING"):
        # Beam's worker processes (multi-processing, portable pool) import the Google client
        # libraries before any code of ours runs there; the environment is what reaches them.
        os.environ.setdefault("PYTHONWARNINGS", "ignore::FutureWarning,ignore::DeprecationWarning")
        for category in (FutureWarning, DeprecationWarning, PendingDeprecationWarning):
            for module in (
                "google",
                "tensorflow",
                "tf_keras",
                "keras",
                "apache_beam",
                "tfx",
                "tensorflow_transform",
                "tensorflow_model_analysis",
                "tfx_bsl",
                "tensorflow_data_validation",
                "ml_metadata",
                "kfp",
                "absl",
            ):
                warnings.filterwarnings("ignore", category=category, module=module)
        # google.api_core warns once per client package that Python 3.10 nears its end of
        # support; TFX 1.16 does not run on a newer Python here, so the warning is not
        # actionable.
        warnings.filterwarnings("ignore", message=r"You are using a non-supported Python version")
        warnings.filterwarnings("ignore", message=r"Support for google-cloud-storage < 3\.0\.0")
    logging.getLogger("tensorflow").setLevel(level)
    logging.getLogger("apache_beam").setLevel(level)
    from tfx_image_augment.io.failures import quiet_disk_full_logs

    quiet_disk_full_logs()  # a full disk is one line, not Beam's tracebacks
    try:
        from absl import logging as absl_logging

        absl_logging.set_verbosity(level.lower())
    except ImportError:  # absl comes with TensorFlow; without it there is nothing to tame.
        pass


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to `sys.stderr` as it is when a message is logged, not as it was when the logger
    was made (a later redirection, or pytest's capture of the current test)."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, _):
        pass


def progress_logger(name: str = "image_augment") -> logging.Logger:
    """Our own progress messages: always shown at INFO, whatever the third-party level."""
    logger = logging.getLogger(name)
    if not logger.handlers:
        handler = _CurrentStderrHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(name)s: %(message)s", "%H:%M:%S"))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False
    return logger
