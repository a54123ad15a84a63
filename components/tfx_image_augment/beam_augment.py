"""The offline door's Beam transforms: each example becomes K seeded augmented copies.

DoFns live at module level so multi-processing and Dataflow workers can unpickle them; the
TensorFlow work runs in batches through the same `core.augment` the Keras layer calls. The
codec (`codec.py`), the records they write (`records.py`) and running the whole expansion
(`expansion.py`) live beside this module.

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

import apache_beam as beam
import numpy as np

from tfx_image_augment.codec import (
    IMAGE_MISSING,
    MASK_MISSING,
    MASK_SHAPE_MISMATCH,
    NOT_AN_EXAMPLE,
    Quarantined,
    decode_pixels,
    encode_batch,
    output_format,
    set_feature,
)
from tfx_image_augment.config import AugmentConfig, copy_seed
from tfx_image_augment.killpoints import killpoint
from tfx_image_augment.records import (
    GZIP_SUFFIX,
    add_provenance,
    as_original,
    quarantine_record,
    stable_key,
)

METRICS_NAMESPACE = "tfx_image_augment"
QUARANTINE_TAG = "quarantine"


def _counter(split: str, name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{split}/{name}")


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


def _finish_original(record: bytes, key: bytes, config: AugmentConfig) -> bytes:
    if not config.provenance:
        return record
    import tensorflow as tf

    return as_original(tf.train.Example.FromString(record), key)


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
        killpoint("augment-batch")  # tests stop a run here; a dictionary lookup otherwise
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
        yield as_original(example, key)


# ----------------------------------------------------------------------------------------------
# Composite transforms
# ----------------------------------------------------------------------------------------------


def _write(pcoll, prefix: str, label: str):
    return pcoll | label >> beam.io.WriteToTFRecord(
        prefix,
        file_name_suffix=GZIP_SUFFIX,
        compression_type=beam.io.filesystem.CompressionTypes.GZIP,
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
