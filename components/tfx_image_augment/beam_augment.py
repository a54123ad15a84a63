"""The offline door: Beam transforms that expand each example into K seeded augmented copies.

Used by the TFX executor and by the `image-augment` CLI alike. DoFns live at module level so
multi-processing and Dataflow workers can unpickle them; the TensorFlow work runs in batches
through the same `core.augment` the Keras layer calls.

Per augmented split:
  ReadFromTFRecord -> Reshuffle (break fusion on the encoded records) -> Decode (parse,
  validate, stable key; bad -> quarantine) -> FanOut (originals go straight to the output;
  copies 1..K go on) -> BatchElements -> AugmentBatch (one TF call per batch and image shape)
  -> WriteToTFRecord(.gz)
Pass-through splits: ReadFromTFRecord -> AddProvenance -> WriteToTFRecord.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from collections.abc import Iterable

import apache_beam as beam
import numpy as np

from tfx_image_augment import runner_checks
from tfx_image_augment.config import AugmentConfig, content_key, copy_seed

METRICS_NAMESPACE = "tfx_image_augment"
QUARANTINE_TAG = "quarantine"
COPY_INDEX_FEATURE = "aug_copy_index"
SOURCE_KEY_FEATURE = "aug_source_key"
SEED_FEATURE = "aug_seed"
QUARANTINE_REASON_FEATURE = "quarantine_reason"
QUARANTINE_DETAIL_FEATURE = "quarantine_detail"
QUARANTINE_RECORD_FEATURE = "quarantine_record"
DATA_PREFIX = "data_tfrecord"
QUARANTINE_PREFIX = "quarantine_tfrecord"

# Why an example was quarantined (a closed list, so counters and messages stay readable).
NOT_AN_EXAMPLE = "not_a_tf_example"
IMAGE_MISSING = "image_missing"
IMAGE_WRONG_TYPE = "image_wrong_type"
IMAGE_EMPTY = "image_empty"
NOT_AN_IMAGE = "not_an_image"
IMAGE_UNDECODABLE = "image_undecodable"
IMAGE_BAD_SHAPE = "image_bad_shape"
KEY_MISSING = "key_missing"
MASK_MISSING = "mask_missing"
MASK_INVALID = "mask_invalid"
MASK_SHAPE_MISMATCH = "mask_shape_mismatch"


class Quarantined(Exception):
    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def _counter(split: str, name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{split}/{name}")


# ----------------------------------------------------------------------------------------------
# Image codec: bytes or raw arrays in a tf.Example feature <-> uint8/float pixels
# ----------------------------------------------------------------------------------------------


def sniff_format(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8"):
        return "jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if data.startswith(b"BM"):
        return "bmp"
    return None


def decode_pixels(feature, config: AugmentConfig, name: str, channels: int | None = None):
    """(pixels, format) of an image feature, or raises Quarantined with the reason."""
    import tensorflow as tf

    kind = feature.WhichOneof("kind")
    missing, wrong_type, empty = (
        (IMAGE_MISSING, IMAGE_WRONG_TYPE, IMAGE_EMPTY)
        if channels is None
        else (MASK_MISSING, MASK_INVALID, MASK_INVALID)
    )
    if config.image_shape is not None:
        shape = tuple(config.image_shape[:2]) + (
            (channels,) if channels else (config.image_shape[2],)
        )
        size = int(np.prod(shape))
        if kind == "bytes_list" and len(feature.bytes_list.value) == 1:
            data = feature.bytes_list.value[0]
            if len(data) != size:
                raise Quarantined(
                    IMAGE_BAD_SHAPE if channels is None else MASK_SHAPE_MISMATCH,
                    f"{name}: {len(data)} bytes, expected {size} for {shape}",
                )
            return np.frombuffer(data, np.uint8).reshape(shape), "raw_bytes"
        if kind == "float_list" and channels is None:
            values = feature.float_list.value
            if len(values) != size:
                raise Quarantined(
                    IMAGE_BAD_SHAPE, f"{name}: {len(values)} floats, expected {size} for {shape}"
                )
            return np.asarray(values, np.float32).reshape(shape), "raw_float"
        if kind == "int64_list":
            values = np.asarray(feature.int64_list.value)
            if len(values) != size:
                raise Quarantined(
                    IMAGE_BAD_SHAPE if channels is None else MASK_SHAPE_MISMATCH,
                    f"{name}: {len(values)} ints, expected {size} for {shape}",
                )
            if values.size and (values.min() < 0 or values.max() > 255):
                raise Quarantined(wrong_type, f"{name}: int64 pixels outside [0, 255]")
            return values.astype(np.uint8).reshape(shape), "raw_int64"
        raise Quarantined(
            missing if kind is None else wrong_type,
            f"{name}: a raw image needs one bytes value, floats or ints; got {kind or 'no values'}",
        )
    if kind != "bytes_list" or len(feature.bytes_list.value) != 1:
        raise Quarantined(
            missing if kind is None or not _has_values(feature) else wrong_type,
            f"{name}: expected one encoded image (bytes); got {kind or 'no values'}",
        )
    data = feature.bytes_list.value[0]
    if not data:
        raise Quarantined(empty, f"{name}: zero bytes")
    fmt = sniff_format(data)
    if fmt is None:
        raise Quarantined(
            NOT_AN_IMAGE if channels is None else MASK_INVALID,
            f"{name}: {len(data)} bytes with no PNG/JPEG/GIF/BMP signature",
        )
    try:
        pixels = tf.io.decode_image(data, channels=channels or 0, expand_animations=False)
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
        raise Quarantined(
            IMAGE_UNDECODABLE if channels is None else MASK_INVALID,
            f"{name}: {fmt} data does not decode ({err.message.splitlines()[0]})",
        ) from None
    pixels = pixels.numpy()
    if pixels.shape[-1] not in (1, 3, 4):
        raise Quarantined(
            IMAGE_BAD_SHAPE, f"{name}: {pixels.shape[-1]} channels; 1, 3 or 4 are supported"
        )
    return pixels, fmt


def _has_values(feature) -> bool:
    kind = feature.WhichOneof("kind")
    return kind is not None and len(getattr(feature, kind).value) > 0


def output_format(fmt: str, config: AugmentConfig, channels: int) -> str:
    """The format a copy is written in: the input's (`same`), or the configured one. TF cannot
    write GIF/BMP, and JPEG cannot hold alpha: those become PNG, which is lossless."""
    target = (
        fmt if config.output_format == "same" or fmt.startswith("raw") else (config.output_format)
    )
    if target in ("gif", "bmp") or (target == "jpeg" and channels not in (1, 3)):
        return "png"
    return target


_ENCODERS: dict = {}


def _encoder(target: str, quality: int):
    """One traced function per format that encodes a whole batch in a single TF call (an eager
    call per image costs more than encoding a small image)."""
    import tensorflow as tf

    key = (target, quality)
    if key not in _ENCODERS:

        def encode_one(image):
            if target == "png":
                return tf.io.encode_png(image)
            return tf.io.encode_jpeg(image, quality=quality)

        @tf.function(reduce_retracing=True)
        def encode(images):
            return tf.map_fn(encode_one, images, fn_output_signature=tf.string)

        _ENCODERS[key] = encode
    return _ENCODERS[key]


def encode_batch(pixels: np.ndarray, fmt: str, config: AugmentConfig) -> list:
    """Each image of `pixels` [N, H, W, C] as the values its feature should hold."""
    target = output_format(fmt, config, pixels.shape[-1])
    if target in ("png", "jpeg"):
        return [[data] for data in _encoder(target, config.jpeg_quality)(pixels).numpy()]
    if target == "raw_bytes":
        return [[np.ascontiguousarray(p, np.uint8).tobytes()] for p in pixels]
    if target == "raw_float":
        return [p.astype(np.float32).ravel().tolist() for p in pixels]
    return [p.astype(np.int64).ravel().tolist() for p in pixels]  # raw_int64


def set_feature(feature, fmt: str, values: list) -> None:
    feature.Clear()
    if fmt == "raw_float":
        feature.float_list.value.extend(values)
    elif fmt == "raw_int64":
        feature.int64_list.value.extend(values)
    else:
        feature.bytes_list.value.extend(values)


# ----------------------------------------------------------------------------------------------
# DoFns
# ----------------------------------------------------------------------------------------------


@dataclasses.dataclass
class DecodedExample:
    key: bytes
    record: bytes  # the input record, untouched
    pixels: np.ndarray
    image_format: str
    mask: np.ndarray | None
    mask_format: str | None


def stable_key(example, config: AugmentConfig) -> bytes:
    if config.key_feature:
        feature = example.features.feature.get(config.key_feature)
        if feature is None or not _has_values(feature):
            raise Quarantined(KEY_MISSING, f"{config.key_feature}: absent or empty")
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        return values[0] if kind == "bytes_list" else str(values[0]).encode()
    return content_key(example.SerializeToString(deterministic=True))


def add_provenance(example, key: bytes, copy_index: int, seed: tuple[int, int]) -> None:
    features = example.features.feature
    features[COPY_INDEX_FEATURE].int64_list.value[:] = [copy_index]
    features[SOURCE_KEY_FEATURE].bytes_list.value[:] = [key]
    features[SEED_FEATURE].int64_list.value[:] = list(seed)


def quarantine_record(record: bytes, reason: str, detail: str) -> bytes:
    import tensorflow as tf

    example = tf.train.Example()
    features = example.features.feature
    features[QUARANTINE_REASON_FEATURE].bytes_list.value.append(reason.encode())
    features[QUARANTINE_DETAIL_FEATURE].bytes_list.value.append(detail.encode()[:1000])
    features[QUARANTINE_RECORD_FEATURE].bytes_list.value.append(record)
    return example.SerializeToString(deterministic=True)


class DecodeFn(beam.DoFn):
    """Parses, validates and decodes each record; bad ones go whole to the quarantine output."""

    def __init__(self, config_json: str, split: str):
        self._config_json, self._split = config_json, split

    def setup(self):
        self._config = AugmentConfig.from_json(self._config_json)
        self._read = _counter(self._split, "examples_read")

    def process(self, record: bytes):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        self._read.inc()
        config = self._config
        try:
            try:
                example = tf.train.Example.FromString(record)
            except DecodeError as err:
                raise Quarantined(NOT_AN_EXAMPLE, str(err)[:200]) from None
            features = example.features.feature
            if config.image_feature not in features:
                raise Quarantined(IMAGE_MISSING, f"no feature {config.image_feature!r}")
            pixels, fmt = decode_pixels(
                features[config.image_feature], config, config.image_feature
            )
            mask, mask_fmt = None, None
            if config.mask_feature:
                if config.mask_feature not in features:
                    raise Quarantined(MASK_MISSING, f"no feature {config.mask_feature!r}")
                mask, mask_fmt = decode_pixels(
                    features[config.mask_feature], config, config.mask_feature, channels=1
                )
                if mask.shape[:2] != pixels.shape[:2]:
                    raise Quarantined(
                        MASK_SHAPE_MISMATCH, f"mask {mask.shape[:2]} vs image {pixels.shape[:2]}"
                    )
            key = stable_key(example, config)
        except Quarantined as bad:
            _counter(self._split, f"quarantined/{bad.reason}").inc()
            yield beam.pvalue.TaggedOutput(
                QUARANTINE_TAG, quarantine_record(record, bad.reason, bad.detail)
            )
            return
        yield DecodedExample(key, record, pixels, fmt, mask, mask_fmt)


class FanOutFn(beam.DoFn):
    """Example -> the original (finished here) and copies 1..K (to be augmented)."""

    ORIGINALS = "originals"

    def __init__(self, config_json: str, split: str):
        self._config_json, self._split = config_json, split

    def setup(self):
        self._config = AugmentConfig.from_json(self._config_json)
        self._originals = _counter(self._split, "originals_written")

    def process(self, decoded: DecodedExample):
        config = self._config
        if config.include_original:
            self._originals.inc()
            yield beam.pvalue.TaggedOutput(
                self.ORIGINALS, _finish_original(decoded.record, decoded.key, config)
            )
        for copy_index in range(1, config.num_copies + 1):
            yield copy_index, decoded


def _as_original(example, key: bytes) -> bytes:
    """An unaugmented record (augmented split's original, or pass-through): copy 0, seed 0 0."""
    add_provenance(example, key, 0, (0, 0))
    return example.SerializeToString(deterministic=True)


def _finish_original(record: bytes, key: bytes, config: AugmentConfig) -> bytes:
    if not config.provenance:
        return record
    import tensorflow as tf

    return _as_original(tf.train.Example.FromString(record), key)


class _Progress:
    """Logs this worker's augmented copies every PROGRESS_SECONDS, so long runs show life."""

    PROGRESS_SECONDS = 10.0

    def __init__(self, split: str):
        import time

        from tfx_image_augment import environment

        self._split, self._clock = split, time.monotonic
        self._log = environment.progress_logger()
        self._start = self._last = self._clock()
        self._done = 0

    def add(self, count: int) -> None:
        self._done += count
        now = self._clock()
        if now - self._last >= self.PROGRESS_SECONDS:
            self._last = now
            self._log.info(
                "[%s] %d copies augmented by this worker (%.0f/s)",
                self._split,
                self._done,
                self._done / (now - self._start),
            )


class AugmentBatchFn(beam.DoFn):
    """A batch of (copy_index, example) -> augmented, re-encoded, serialized examples."""

    def __init__(self, config_json: str, split: str):
        self._config_json, self._split = config_json, split

    def setup(self):
        from tfx_image_augment.core import compile_policy

        self._config = AugmentConfig.from_json(self._config_json)
        self._plan = compile_policy(self._config.loaded_policy)
        self._written = _counter(self._split, "copies_written")
        self._progress = _Progress(self._split)

    def process(self, batch: list[tuple[int, DecodedExample]]):
        self._progress.add(len(batch))
        yield from self._augment(batch)

    def _augment(self, batch: list[tuple[int, DecodedExample]]):
        import tensorflow as tf

        from tfx_image_augment.core import augment

        config = self._config
        # Images of one shape, dtype and format go through the core and the encoder together.
        groups: dict[tuple, list[tuple[int, DecodedExample]]] = defaultdict(list)
        for copy_index, decoded in batch:
            mask_shape = None if decoded.mask is None else decoded.mask.shape
            key = (
                decoded.pixels.shape,
                decoded.pixels.dtype.str,
                decoded.image_format,
                mask_shape,
                decoded.mask_format,
            )
            groups[key].append((copy_index, decoded))
        for items in groups.values():
            seeds = np.array([copy_seed(config.seed, d.key, k) for k, d in items], np.int64)
            images = np.stack([d.pixels for _, d in items])
            value_range = config.value_range if images.dtype != np.uint8 else None
            first = items[0][1]
            if first.mask is not None:
                masks = np.stack([d.mask for _, d in items])
                out, out_masks = augment(
                    images, seeds, self._plan, value_range=value_range, masks=masks
                )
                mask_values = encode_batch(out_masks.numpy(), first.mask_format, config)
            else:
                out = augment(images, seeds, self._plan, value_range=value_range)
            image_values = encode_batch(out.numpy(), first.image_format, config)
            image_fmt = output_format(first.image_format, config, images.shape[-1])
            for i, (copy_index, decoded) in enumerate(items):
                example = tf.train.Example.FromString(decoded.record)
                features = example.features.feature
                set_feature(features[config.image_feature], image_fmt, image_values[i])
                if first.mask is not None:
                    set_feature(
                        features[config.mask_feature],
                        output_format(first.mask_format, config, 1),
                        mask_values[i],
                    )
                if config.provenance:
                    add_provenance(example, decoded.key, copy_index, tuple(seeds[i]))
                self._written.inc()
                yield example.SerializeToString(deterministic=True)


class AddProvenanceFn(beam.DoFn):
    """Pass-through splits: every record unchanged but for provenance (copy 0, its key)."""

    def __init__(self, config_json: str, split: str):
        self._config_json, self._split = config_json, split

    def setup(self):
        self._config = AugmentConfig.from_json(self._config_json)
        self._read = _counter(self._split, "examples_read")
        self._passed = _counter(self._split, "passed_through")

    def process(self, record: bytes):
        import tensorflow as tf
        from google.protobuf.message import DecodeError

        self._read.inc()
        self._passed.inc()
        if not self._config.provenance:
            yield record
            return
        try:
            example = tf.train.Example.FromString(record)
            key = stable_key(example, self._config)
        except (DecodeError, Quarantined):  # not ours to judge: evaluation data stays as it is
            yield record
            return
        yield _as_original(example, key)


# ----------------------------------------------------------------------------------------------
# Composite transforms
# ----------------------------------------------------------------------------------------------


def _write(pcoll, prefix: str, label: str):
    return pcoll | label >> beam.io.WriteToTFRecord(
        prefix, file_name_suffix=".gz", compression_type=beam.io.filesystem.CompressionTypes.GZIP
    )


class AugmentSplit(beam.PTransform):
    """Reads one split's TFRecords and writes the originals and K augmented copies."""

    def __init__(
        self,
        split: str,
        input_pattern: str,
        output_prefix: str,
        quarantine_prefix: str,
        config: AugmentConfig,
    ):
        super().__init__()
        self._split, self._input, self._output = split, input_pattern, output_prefix
        self._quarantine, self._config = quarantine_prefix, config

    def expand(self, pipeline):
        split, config_json = self._split, self._config.to_json()
        records = pipeline | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
            self._input, coder=beam.coders.BytesCoder(), validate=False
        )
        # Fusion is broken on the encoded records, before anything is decoded or fanned out:
        # the shuffle moves 1/K of the bytes it would move after the fan-out, never decoded
        # pixels, and everything downstream (decode, K copies, batches) stays one fused,
        # streaming stage whose memory is bounded by the batch size.
        decoded = (
            records
            | f"BreakFusion[{split}]" >> beam.Reshuffle()
            | f"Decode[{split}]"
            >> beam.ParDo(DecodeFn(config_json, split)).with_outputs(QUARANTINE_TAG, main="ok")
        )
        fanned = decoded.ok | f"FanOut[{split}]" >> beam.ParDo(
            FanOutFn(config_json, split)
        ).with_outputs(FanOutFn.ORIGINALS, main="copies")
        augmented = (
            fanned.copies
            | f"Batch[{split}]"
            >> beam.BatchElements(
                min_batch_size=max(1, self._config.batch_size // 2),
                max_batch_size=self._config.batch_size,
            )
            | f"Augment[{split}]" >> beam.ParDo(AugmentBatchFn(config_json, split))
        )
        # Two sinks rather than a Flatten into one: the DirectRunner materialises a flattened
        # PCollection whole, which made its memory grow with the dataset (measured: 0.75 ->
        # 1.75 GB from 2,000 to 20,000 inputs; 0.66 -> 0.83 GB with two sinks).
        _write(fanned[FanOutFn.ORIGINALS], f"{self._output}-originals", f"WriteOriginals[{split}]")
        _write(augmented, f"{self._output}-copies", f"WriteCopies[{split}]")
        _write(decoded[QUARANTINE_TAG], self._quarantine, f"WriteQuarantine[{split}]")
        return augmented


class PassThroughSplit(beam.PTransform):
    """Copies one split record for record (adding provenance unless it is off)."""

    def __init__(self, split: str, input_pattern: str, output_prefix: str, config: AugmentConfig):
        super().__init__()
        self._split, self._input, self._output, self._config = (
            split,
            input_pattern,
            output_prefix,
            config,
        )

    def expand(self, pipeline):
        split = self._split
        records = pipeline | f"Read[{split}]" >> beam.io.ReadFromTFRecord(
            self._input, coder=beam.coders.BytesCoder(), validate=False
        )
        passed = records | f"PassThrough[{split}]" >> beam.ParDo(
            AddProvenanceFn(self._config.to_json(), split)
        )
        _write(passed, self._output, f"Write[{split}]")
        return passed


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
        if name.startswith("quarantined/"):
            reason = name.removeprefix("quarantined/")
            counts[split]["quarantined"][reason] = (
                counts[split]["quarantined"].get(reason, 0) + value
            )
        else:
            counts[split][name] = counts[split].get(name, 0) + value
    for split_counts in counts.values():
        split_counts["examples_out"] = (
            split_counts["copies_written"]
            + split_counts["originals_written"]
            + split_counts["passed_through"]
        )
    return counts


# ----------------------------------------------------------------------------------------------
# Running an expansion (shared by the TFX executor and the CLI)
# ----------------------------------------------------------------------------------------------


class QuarantineLimitExceeded(RuntimeError):
    """More than `max_quarantine_fraction` of the examples were bad."""


class CorruptInputError(RuntimeError):
    """An input TFRecord file is damaged (bad CRC, truncated)."""


def find_corrupt_files(patterns: Iterable[str]) -> list[str]:
    """The input files that fail to read to the end, each with TensorFlow's reason."""
    import tensorflow as tf

    damaged = []
    for pattern in patterns:
        for path in sorted(tf.io.gfile.glob(pattern)):
            compression = "GZIP" if path.endswith(".gz") else None
            try:
                for _ in tf.data.TFRecordDataset(path, compression):
                    pass
            except (tf.errors.DataLossError, tf.errors.InvalidArgumentError) as err:
                damaged.append(f"{path} ({err.message.splitlines()[0]})")
    return damaged


def first_quarantine_reasons(quarantine_pattern: str, limit: int = 5) -> list[str]:
    import tensorflow as tf

    reasons = []
    for path in sorted(tf.io.gfile.glob(quarantine_pattern)):
        for record in tf.data.TFRecordDataset(path, "GZIP"):
            features = tf.train.Example.FromString(record.numpy()).features.feature
            reason = features[QUARANTINE_REASON_FEATURE].bytes_list.value[0].decode()
            detail = features[QUARANTINE_DETAIL_FEATURE].bytes_list.value[0].decode()
            reasons.append(f"{reason} ({detail})")
            if len(reasons) >= limit:
                return reasons
    return reasons


def run_expansion(
    pipeline: beam.Pipeline,
    splits: dict[str, tuple[str, str]],
    quarantine_dir: str,
    config: AugmentConfig,
    worker_start_timeout: float = runner_checks.DEFAULT_WORKER_START_TIMEOUT,
) -> dict[str, dict]:
    """Builds and runs the expansion; returns per-split counts.

    `splits` maps a split name to (input file pattern, output directory); the splits named in
    `config.splits_to_augment` are augmented, the others passed through. Raises
    CorruptInputError naming the damaged files, or QuarantineLimitExceeded with the counts and
    the first reasons. Before the run, an EXTERNAL worker pool (the portable path) must start a
    worker within `worker_start_timeout` seconds (default 60, 0 skips the check), or
    runner_checks.WorkerPoolUnavailable says why.
    """
    import os

    for name, (pattern, output_dir) in splits.items():
        prefix = os.path.join(output_dir, DATA_PREFIX)
        if name in config.splits_to_augment:
            quarantine_prefix = os.path.join(quarantine_dir, f"Split-{name}", QUARANTINE_PREFIX)
            _ = pipeline | f"Augment[{name}]" >> AugmentSplit(
                name, pattern, prefix, quarantine_prefix, config
            )
        else:
            _ = pipeline | f"PassThrough[{name}]" >> PassThroughSplit(name, pattern, prefix, config)
    runner_checks.check_beam_environment(pipeline.options, worker_start_timeout)
    try:
        result = pipeline.run()
        result.wait_until_finish()
    except Exception as err:
        damaged = find_corrupt_files(pattern for pattern, _ in splits.values())
        if damaged:
            raise CorruptInputError(
                "Input TFRecord file(s) are damaged and cannot be read: " + "; ".join(damaged)
            ) from err
        raise
    counts = counts_from_metrics(result, splits)
    read = sum(counts[s]["examples_read"] for s in config.splits_to_augment if s in counts)
    bad = sum(
        sum(counts[s]["quarantined"].values()) for s in config.splits_to_augment if s in counts
    )
    if read and bad / read > config.max_quarantine_fraction:
        reasons = first_quarantine_reasons(os.path.join(quarantine_dir, "Split-*", "*.gz"))
        by_reason = {r: n for s in counts.values() for r, n in s["quarantined"].items()}
        raise QuarantineLimitExceeded(
            f"{bad} of {read} examples ({bad / read:.1%}) were quarantined, above "
            f"max_quarantine_fraction={config.max_quarantine_fraction:g}; by reason: "
            f"{by_reason}; first: {'; '.join(reasons)}. The bad records are kept whole in "
            f"{quarantine_dir}."
        )
    return counts
