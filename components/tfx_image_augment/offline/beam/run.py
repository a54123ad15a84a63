"""The one run sequence of the offline door, shared by the `image-augment` CLI and the TFX
executor: expansion -> keep the quarantine on failure -> write the model -> delete Beam's
temporary files -> describe the output -> publish with the completion marker last.

Only what differs stays in each door (`Destination`): where the staging folders are, how a
failed run's quarantine is kept, and how staged files are moved into place.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Mapping

from tfx_image_augment.io.completion import QUARANTINE_DIR, describe_output
from tfx_image_augment.io.publish import remove_beam_temp
from tfx_image_augment.io.records import DATA_PREFIX, QUARANTINE_PREFIX
from tfx_image_augment.offline.artifacts import write_augmentation_model
from tfx_image_augment.offline.beam import runner_checks
from tfx_image_augment.offline.beam.expansion import QuarantineLimitExceeded, run_expansion
from tfx_image_augment.offline.config import AugmentConfig


@dataclasses.dataclass(frozen=True)
class OfflineResult:
    counts: dict[str, dict]  # per split, from the run's counters
    expansion_seconds: float


@dataclasses.dataclass(frozen=True)
class Destination:
    """Where a run writes, and how its door keeps and publishes what it wrote.

    staging: the folder the run writes its data and quarantine into.
    split_dirs: each split's folder, relative to `staging` ("" for the CLI's single split).
    model_dir: where the augmentation model is written (staged as well).
    quarantine_kept_in: where a failed run's quarantine ends up (for the message).
    keep_quarantine: moves the quarantine there when the quarantine limit fails the run.
    publish: moves the staged files into place and writes `marker` last.
    write_extras: writes the door's own files into staging before it is described.
    """

    staging: str
    split_dirs: Mapping[str, str]
    model_dir: str
    quarantine_kept_in: str
    keep_quarantine: Callable[[], None]
    publish: Callable[[dict], None]
    write_extras: Callable[[OfflineResult], None] | None = None


def run_offline(
    pipeline,
    inputs: Mapping[str, str],
    config: AugmentConfig,
    destination: Destination,
    worker_start_timeout: float = runner_checks.DEFAULT_WORKER_START_TIMEOUT,
    progress_log: logging.Logger | None = None,
) -> OfflineResult:
    """Runs the expansion of `inputs` (split name -> file pattern) and publishes it whole.

    Raises what `run_expansion` raises (nothing is published then); the quarantine of a run
    failed by its limit is kept first. Progress goes to `progress_log` (see `run_expansion`).
    """
    staging = destination.staging
    splits = {
        name: (pattern, os.path.join(staging, destination.split_dirs[name]))
        for name, pattern in inputs.items()
    }
    started = time.time()
    try:
        counts = run_expansion(
            pipeline,
            splits,
            os.path.join(staging, QUARANTINE_DIR),
            config,
            worker_start_timeout=worker_start_timeout,
            quarantine_kept_in=destination.quarantine_kept_in,
            progress_log=progress_log,
        )
    except QuarantineLimitExceeded:
        destination.keep_quarantine()  # kept for inspection; without a marker, readers refuse it
        raise
    result = OfflineResult(counts, time.time() - started)
    write_augmentation_model(destination.model_dir, inputs[config.splits_to_augment[0]], config)
    if destination.write_extras is not None:
        destination.write_extras(result)
    remove_beam_temp(staging)
    marker = describe_output(
        staging,
        destination.split_dirs,
        {name: counts[name]["examples_out"] for name in inputs},
        DATA_PREFIX,
        [f"{QUARANTINE_DIR}/Split-{name}" for name in config.splits_to_augment],
        QUARANTINE_PREFIX,
        sum(sum(counts[name]["quarantined"].values()) for name in inputs),
    )
    destination.publish(marker)
    return result
