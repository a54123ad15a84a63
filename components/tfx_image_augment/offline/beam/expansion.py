"""Running the offline expansion: one Beam pipeline over all splits, its counts and failures.

Shared by the TFX executor and the `image-augment` CLI. A damaged input file fails the run with
CorruptInputError naming it; too many bad examples fail it with QuarantineLimitExceeded; an
augmented split of which the run read no example fails it with EmptyInputError (0 examples in is
a failure, never a published success); a full disk, however Beam wrapped it, is
failures.DiskFull naming where.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable

import apache_beam as beam

from tfx_image_augment import environment
from tfx_image_augment.io import failures
from tfx_image_augment.io.killpoints import killpoint
from tfx_image_augment.io.records import (
    DATA_PREFIX,
    QUARANTINE_DETAIL_FEATURE,
    QUARANTINE_PREFIX,
    QUARANTINE_REASON_FEATURE,
    compression_of,
)
from tfx_image_augment.offline.beam import runner_checks
from tfx_image_augment.offline.beam.progress import ProgressMonitor, safe_input_size
from tfx_image_augment.offline.beam.transforms import (
    CLASS_IN,
    CLASS_OUT,
    METRICS_NAMESPACE,
    AugmentSplit,
    PassThroughSplit,
    is_direct_runner,
)
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.errors import (  # noqa: F401 (raised here, re-exported)
    CorruptInputError,
    EmptyInputError,
    QuarantineLimitExceeded,
)


def counts_from_metrics(result, splits: Iterable[str]) -> dict[str, dict]:
    """Per-split counts from the run's Beam counters."""
    from apache_beam.metrics.metric import MetricsFilter

    counts: dict[str, dict] = {
        split: {
            "examples_read": 0,
            "copies_written": 0,
            "originals_written": 0,
            "passed_through": 0,
            "quarantined": {},
        }
        for split in splits
    }
    query = result.metrics().query(MetricsFilter().with_namespace(METRICS_NAMESPACE))
    for counter in query["counters"]:
        split, _, name = counter.key.metric.name.partition("/")
        value = counter.committed if counter.committed is not None else counter.attempted
        if split not in counts:
            continue
        group, _, item = name.partition("/")
        if group in ("quarantined", CLASS_IN, CLASS_OUT):
            # Nested by reason or by class: {"quarantined": {reason: n}, "class_in": {label: n}}
            nested = counts[split].setdefault(group, {})
            nested[item] = nested.get(item, 0) + value
        else:
            counts[split][name] = counts[split].get(name, 0) + value
    for split_counts in counts.values():
        split_counts["examples_out"] = (
            split_counts["copies_written"]
            + split_counts["originals_written"]
            + split_counts["passed_through"]
        )
    return counts


# What Beam's and TensorFlow's TFRecord readers say about a damaged file (bad CRC, truncated,
# bad gzip stream): only such an error starts the search for the damaged file.
_READ_ERRORS = (
    "Mismatch of length mask",
    "Mismatch of data mask",
    "Not a valid TFRecord",
    "truncated record",
    "corrupted record",
    "Error -3 while decompressing",
    "Compressed file ended before",
    "DataLossError",
    "DATA_LOSS",
)
# Without a file named in the error, at most this many input bytes are read to find it: a
# quota error or a worker crash must not become a pass over terabytes from the launcher.
SCAN_BUDGET_BYTES = 256 * 1024 * 1024


def _error_text(err: BaseException) -> str:
    """The messages of `err` and of everything it wraps (Beam wraps a worker's error)."""
    texts, seen = [], set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        texts.append(f"{type(err).__name__}: {err}")
        err = err.__cause__ or err.__context__
    return "\n".join(texts)


def is_read_error(err: BaseException) -> bool:
    text = _error_text(err)
    return any(marker in text for marker in _READ_ERRORS)


def find_corrupt_files(
    patterns: Iterable[str], error_text: str = "", budget: int = SCAN_BUDGET_BYTES
) -> tuple[list[str], int, int]:
    """(damaged files with TensorFlow's reason, files read, files matched).

    Files named in `error_text` are read first and, when one of them is damaged, alone; else
    files are read in order until `budget` bytes have been read.
    """
    import tensorflow as tf

    files = [path for pattern in patterns for path in sorted(tf.io.gfile.glob(pattern))]
    named = [path for path in files if path in error_text]
    damaged, read, spent = [], 0, 0
    for path in named or files:
        if not named and spent >= budget:
            break
        try:
            for _ in tf.data.TFRecordDataset(path, compression_of(path)):
                pass
        except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
            damaged.append(f"{path} ({err.message.splitlines()[0]})")
        read += 1
        spent += tf.io.gfile.stat(path).length
    return damaged, read, len(files)


def first_quarantine_reasons(quarantine_pattern: str, limit: int = 5) -> list[str]:
    """The "reason (detail)" of the first `limit` records in the quarantine files matched."""
    import tensorflow as tf

    reasons = []
    for path in sorted(tf.io.gfile.glob(quarantine_pattern)):
        for record in tf.data.TFRecordDataset(path, compression_of(path)):
            features = tf.train.Example.FromString(record.numpy()).features.feature
            reason = features[QUARANTINE_REASON_FEATURE].bytes_list.value[0].decode()
            detail = features[QUARANTINE_DETAIL_FEATURE].bytes_list.value[0].decode()
            reasons.append(f"{reason} ({detail})")
            if len(reasons) >= limit:
                return reasons
    return reasons


def _progress_monitor(options, splits, config: AugmentConfig, log: logging.Logger | None):
    """A ProgressMonitor of the augmented splits on the DirectRunner (its workers can reach the
    launcher's folder), else a context of None. Pass-through splits take little time: counting
    their bytes would make the ETA too short."""
    if not is_direct_runner(options):
        return contextlib.nullcontext()
    augmented = [
        pattern for name, (pattern, _) in splits.items() if name in config.splits_to_augment
    ]
    total, unit = safe_input_size(augmented)
    return ProgressMonitor(total, unit, log or environment.progress_logger())


def _add_splits(pipeline, splits, quarantine_dir: str, config: AugmentConfig, progress_dir):
    for name, (pattern, output_dir) in splits.items():
        prefix = os.path.join(output_dir, DATA_PREFIX)
        if name in config.splits_to_augment:
            quarantine_prefix = os.path.join(quarantine_dir, f"Split-{name}", QUARANTINE_PREFIX)
            _ = pipeline | f"Augment[{name}]" >> AugmentSplit(
                name, pattern, prefix, quarantine_prefix, config, progress_dir
            )
        else:
            _ = pipeline | f"PassThrough[{name}]" >> PassThroughSplit(name, pattern, prefix, config)


def _run_pipeline(pipeline, splits):
    """Runs `pipeline`; a full disk or a damaged input becomes our one-line error."""
    try:
        result = pipeline.run()
        result.wait_until_finish()
        return result
    except Exception as err:
        full = failures.os_error_in(err)
        if full is not None and full.errno in failures.DISK_FULL_ERRNOS:
            where = full.filename if isinstance(full.filename, str) else None
            raise failures.DiskFull(where or next(iter(splits.values()))[1]) from err
        if not is_read_error(err):
            raise
        text = _error_text(err)
        patterns = (p for p, _ in splits.values() if isinstance(p, str))  # not image folders
        damaged, read, matched = find_corrupt_files(patterns, text)
        if damaged:
            raise CorruptInputError(
                "Input TFRecord file(s) are damaged and cannot be read: " + "; ".join(damaged)
            ) from err
        first_line = text.strip().splitlines()[0][:300]
        raise CorruptInputError(
            f"An input record could not be read ({first_line}); the damaged file was not among "
            f"the {read} of {matched} input files checked."
        ) from err


def run_expansion(
    pipeline: beam.Pipeline,
    splits: dict[str, tuple[str, str]],
    quarantine_dir: str,
    config: AugmentConfig,
    worker_start_timeout: float = runner_checks.DEFAULT_WORKER_START_TIMEOUT,
    quarantine_kept_in: str | None = None,
    progress_log: logging.Logger | None = None,
) -> dict[str, dict]:
    """Builds and runs the expansion; returns per-split counts.

    `splits` maps a split name to (input file pattern, output directory); the splits named in
    `config.splits_to_augment` are augmented, the others passed through. Raises
    CorruptInputError naming the damaged files, or QuarantineLimitExceeded with the counts and
    the first reasons, or EmptyInputError when an augmented split read no example. Before the
    run, an EXTERNAL worker pool (the portable path) must start a worker within
    `worker_start_timeout` seconds (default 60, 0 skips the check), or
    runner_checks.WorkerPoolUnavailable says why. `quarantine_kept_in` is where the caller
    keeps the quarantine of a failed run, for the message (default: `quarantine_dir`).
    On the DirectRunner, progress against the input's size goes to `progress_log` (default:
    our progress logger), or to a bar on a terminal; other runners' workers log their own.
    """
    with _progress_monitor(pipeline.options, splits, config, progress_log) as monitor:
        _add_splits(pipeline, splits, quarantine_dir, config, monitor.folder if monitor else None)
        runner_checks.check_beam_environment(pipeline.options, worker_start_timeout)
        result = _run_pipeline(pipeline, splits)
    killpoint("beam-finished")
    counts = counts_from_metrics(result, splits)
    for name in config.splits_to_augment:
        if name in counts and counts[name]["examples_read"] == 0:
            raise EmptyInputError(
                f"the run read no example of split {name!r} from {splits[name][0]!r}; nothing "
                "was published (an input without examples is a failure, not an empty output)."
            )
    read = sum(counts[s]["examples_read"] for s in config.splits_to_augment if s in counts)
    bad = sum(
        sum(counts[s]["quarantined"].values()) for s in config.splits_to_augment if s in counts
    )
    if read and bad / read > config.max_quarantine_fraction:
        reasons = first_quarantine_reasons(
            os.path.join(quarantine_dir, "Split-*", f"{QUARANTINE_PREFIX}*")
        )
        by_reason = {r: n for s in counts.values() for r, n in s["quarantined"].items()}
        raise QuarantineLimitExceeded(
            f"{bad} of {read} examples ({bad / read:.1%}) were quarantined, above "
            f"max_quarantine_fraction={config.max_quarantine_fraction:g}; by reason: "
            f"{by_reason}; first: {'; '.join(reasons)}. The bad records are kept whole in "
            f"{quarantine_kept_in or quarantine_dir}."
        )
    return counts
