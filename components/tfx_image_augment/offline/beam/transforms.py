"""The offline door's Beam transforms: each example becomes K seeded augmented copies.

DoFns live at module level so multi-processing and Dataflow workers can unpickle them; the
TensorFlow work runs in batches through the same `core.augment` the Keras layer calls. The
codec (`codec.py`), the records they write (`records.py`) and running the whole expansion
(`expansion.py`) live beside this module.

Per augmented split:
  ReadFromTFRecord -> Reshuffle (break fusion on the encoded records; not on the in-memory
  DirectRunner with one worker, where it would only hold them all) -> Decode (parse,
  validate, stable key, number of copies; bad -> quarantine) -> BatchElements (examples,
  weighed by copies x pixels) -> AugmentBatch (originals out as they are; copies 1..k of every
  example through one TF call per image shape) -> Write(.gz, sink.py)
Pass-through splits: ReadFromTFRecord -> AddProvenance -> Write(.gz, sink.py).
Policies that mix images (mixup, cutmix) replace BatchElements -> AugmentBatch with
  MixFanOut (originals out; each copy keyed by its partner bucket, `offline/mixing.py`, as its
  encoded record) -> GroupByKey -> MixBucket (decode, pair, augment and encode the bucket's
  copies with their partners), the record count of the split a side input of MixFanOut.
"""

from __future__ import annotations

import functools
import itertools
from collections import defaultdict, deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any, NamedTuple

import apache_beam as beam
import numpy as np
from apache_beam.utils.windowed_value import WindowedValue

from tfx_image_augment.core.seeds import copy_seed
from tfx_image_augment.io import failures
from tfx_image_augment.io.codec import (
    MAX_BATCH_PIXELS,
    core_inputs,
    core_outputs,
    encode_batch,
    output_format,
    set_feature,
)
from tfx_image_augment.io.folders import ImageFolder, image_record, read_file
from tfx_image_augment.io.inputs import absolute_pattern, compressions
from tfx_image_augment.io.killpoints import killpoint
from tfx_image_augment.io.quarantine import Quarantined
from tfx_image_augment.io.records import (
    GZIP_SUFFIX,
    MIX_PARTNER_KEY_FEATURE,
    MIX_PARTNER_LABEL_FEATURE,
    MIX_WEIGHT_FEATURE,
    add_provenance,
    as_original,
    quarantine_record,
    set_image_format,
    stable_key,
)
from tfx_image_augment.offline.balance import copies_for, label_of_record, uses_class_counts
from tfx_image_augment.offline.beam.progress import WorkerProgress
from tfx_image_augment.offline.beam.sink import GzipTFRecordSink
from tfx_image_augment.offline.config import AugmentConfig
from tfx_image_augment.offline.decode import (
    CheckedExample,
    DecodedExample,
    check_example,
    decode_checked,
    decode_examples,
)
from tfx_image_augment.offline.mixing import MixMember, bucket_of, check_mixable, partners
from tfx_image_augment.offline.objects import (
    NO_OBJECTS,
    kept_mask_values,
    padded,
    padded_masks,
    write_objects,
)

METRICS_NAMESPACE = "tfx_image_augment"
QUARANTINE_TAG = "quarantine"
# Counters per class: examples read, and records written (original + copies).
CLASS_IN, CLASS_OUT = "class_in", "class_out"


def _counter(split: str, name: str):
    return beam.metrics.Metrics.counter(METRICS_NAMESPACE, f"{split}/{name}")


def _place(window, timestamp, pane) -> WindowedValue:
    """Where an element's outputs go (its window, timestamp and pane), for the outputs that
    leave after it, from a later element or `finish_bundle`: `place.with_value(output)`."""
    return WindowedValue(None, timestamp, (window,), pane)


# ----------------------------------------------------------------------------------------------
# DoFns
# ----------------------------------------------------------------------------------------------


class _SplitFn(beam.DoFn):
    """What every DoFn of a split starts with: its config (as JSON, so it pickles small), the
    split's name, and where its progress goes (a local launcher's folder, or the worker's log)."""

    def __init__(self, config_json: str, split: str, progress_dir: str | None = None):
        self._config_json, self._split, self._progress_dir = config_json, split, progress_dir

    def setup(self):
        failures.quiet_worker_disk_full()  # one line for a full disk, not tracebacks
        failures.quiet_worker_shutdown()  # nor TensorFlow's noise when the worker ends
        self._config = AugmentConfig.from_json(self._config_json)
        self._progress = WorkerProgress(self._progress_dir, self._split)

    def finish_bundle(self):
        self._progress.finish()


# Records whose images DecodeFn decodes in one TensorFlow call (`decode_checked`): at most this
# many, and at most MAX_BATCH_PIXELS pixels. An eager decode pays ~200 us of dispatch per image
# (more than a 32-px PNG's decode); one call over 64 costs ~60 us an image and runs on every core.
DECODE_BATCH = 64
# Groups decoded ahead of the one whose examples go out (DecodeFn._decode_waiting).
GROUPS_AHEAD = 1


class DecodeFn(_SplitFn):
    """Parses, validates and decodes each record; bad ones go whole to the quarantine output.
    Also decides the example's number of copies (`class_counts`: the side input balancing
    needs; waiting for it holds back encoded records, never decoded pixels). Checked records
    wait for their decode in groups of up to DECODE_BATCH (`decode_checked`, in the pool while
    this thread checks the next group), each output in its own record's window."""

    def setup(self):
        super().setup()
        self._read = _counter(self._split, "examples_read")
        self._plan = self._config.plan

    def start_bundle(self):
        self._waiting: list[tuple[CheckedExample, dict | None, WindowedValue]] = []
        self._waiting_pixels = 0
        # Groups submitted to the pool: (the group, [its decode]).
        self._decoding = _WorkAhead(GROUPS_AHEAD, self._config.max_image_pixels)

    def process(
        self,
        record: bytes,
        window=beam.DoFn.WindowParam,
        timestamp=beam.DoFn.TimestampParam,
        pane=beam.DoFn.PaneInfoParam,
        class_counts=None,  # after Beam's parameters: a plain default before them shifts them
    ):
        self._read.inc()
        place = _place(window, timestamp, pane)
        try:
            checked = check_example(record, self._config)
        except Quarantined as bad:
            yield self._quarantined(record, bad, place)
            return
        if self._waiting_pixels + checked.pixel_count > MAX_BATCH_PIXELS:
            # A group stays within MAX_BATCH_PIXELS unless one image is larger, like a call
            # (the work ahead overlaps two groups only within that bound).
            yield from self._decode_waiting()
        self._waiting.append((checked, class_counts, place))
        self._waiting_pixels += checked.pixel_count
        if len(self._waiting) >= DECODE_BATCH or self._waiting_pixels >= MAX_BATCH_PIXELS:
            yield from self._decode_waiting()

    def finish_bundle(self):
        yield from self._decode_waiting()
        yield from self._decoded_out(everything=True)
        super().finish_bundle()

    def _decode_waiting(self):
        """Submits the waiting records' decode to the pool, and yields the groups before it:
        this thread, which Beam's work and the records' checks hold, never waits behind the
        core's kernels for a decode it does not need yet."""
        waiting, pixels = self._waiting, self._waiting_pixels
        self._waiting, self._waiting_pixels = [], 0
        if waiting:
            yield from self._decoded_out(room_for=pixels)
            checked = [checked for checked, _, _ in waiting]
            decoding = _core_pool().submit(decode_checked, checked, self._config)
            self._decoding.submitted(waiting, [decoding], pixels)
        yield from self._decoded_out()

    def teardown(self):
        if hasattr(self, "_decoding"):
            self._decoding.cancel()

    def _decoded_out(self, everything: bool = False, room_for: int = 0):
        """Yields the examples (or quarantined records) of the groups whose decode is taken
        back (`_WorkAhead.taken`)."""
        for waiting, (outcomes,) in self._decoding.taken(everything, room_for):
            for (checked, class_counts, place), decoded in zip(waiting, outcomes, strict=True):
                try:
                    if isinstance(decoded, Quarantined):
                        raise decoded
                    check_mixable(decoded.objects, self._plan)
                except Quarantined as bad:
                    yield self._quarantined(checked.record, bad, place)
                    continue
                decoded.copies = copies_for(
                    self._config, decoded.label, decoded.key, class_counts or {}
                )
                yield place.with_value(decoded)

    def _quarantined(self, record: bytes, bad: Quarantined, place: WindowedValue):
        _counter(self._split, f"quarantined/{bad.reason}").inc()
        self._progress.finished(len(record))
        return beam.pvalue.TaggedOutput(
            QUARANTINE_TAG, place.with_value(quarantine_record(record, bad.reason, bad.detail))
        )


def _finish_original(record: bytes, key: bytes, config: AugmentConfig) -> bytes:
    if not config.provenance:
        return record
    import tensorflow as tf

    return as_original(tf.train.Example.FromString(record), key)


class _Copy(NamedTuple):
    """One copy to make: its index (1..k), its example, and its partners for mixing ops
    (`Plan.partner_count` of them, or none: not mixed)."""

    index: int
    decoded: DecodedExample
    partners: tuple[DecodedExample, ...] = ()


class _Computed(NamedTuple):
    """What the core and the encoders made of a part of a batch (`AugmentBatchFn._compute`)."""

    seeds: np.ndarray  # [n, 2] int64: each copy's seed
    out: dict  # the core's outputs as numpy, "images" back in the input's dtype
    image_values: list  # each copy's encoded image
    mask_values: list | None  # each copy's encoded mask, when the records have one
    instance_values: list  # each copy's instance-mask feature values (None without masks)
    mix_weights: np.ndarray | None  # [n] float32: each copy's own share (mixing policies)


class _Call(NamedTuple):
    """A core call submitted to the pool (`_WorkAhead`), whose records are not out yet."""

    place: WindowedValue  # the window, timestamp and pane its records go out in
    parts: list[list[_Copy]]  # each computed in a pool thread into a _Computed
    done: Callable[[], None] | None  # called once its records are out (progress)


class AugmentBatchFn(_SplitFn):
    """A batch of examples -> each one's original (tagged ORIGINALS, unchanged but for
    provenance) and its copies 1..k (k from `balance.copies_for`, decided when it was decoded):
    augmented, re-encoded, serialized. Copies fan out here, inside the batch, rather than as
    K elements each through Beam: one element per example is all the runner carries.

    The core works ahead: a batch's copies come out while the next batch is computed (in the
    pool's threads), each in its own batch's window, the last ones from `finish_bundle`."""

    ORIGINALS = "originals"

    def setup(self):
        super().setup()
        self._plan = self._config.plan
        self._written = _counter(self._split, "copies_written")
        self._originals = _counter(self._split, "originals_written")

    def start_bundle(self):
        self._in_flight = _WorkAhead(CALLS_AHEAD, self._config.max_image_pixels)

    def teardown(self):
        if hasattr(self, "_in_flight"):
            self._in_flight.cancel()

    def process(
        self,
        batch: list[DecodedExample],
        window=beam.DoFn.WindowParam,
        timestamp=beam.DoFn.TimestampParam,
        pane=beam.DoFn.PaneInfoParam,
    ):
        killpoint("augment-batch")  # tests stop a run here; a dictionary lookup otherwise
        copies = []
        for decoded in batch:
            yield from _original_out(decoded, self._config, self._split, self._originals)
            copies.extend(_Copy(index, decoded) for index in range(1, decoded.copies + 1))

        def finished():
            for decoded in batch:
                self._progress.finished(len(decoded.record), decoded.copies)

        yield from self._augment(copies, _place(window, timestamp, pane), finished)

    def finish_bundle(self):
        yield from self._records_out(everything=True)
        super().finish_bundle()

    def _augment(self, copies: list[_Copy], place: WindowedValue, done: Callable[[], None]):
        """Submits `copies` to the core in calls, and yields the records of the calls before
        them: this thread turns one call's outputs into records (protobuf, Beam and the sink
        hold the GIL) while the pool computes the next (TensorFlow's kernels release it)."""
        calls = self._calls(copies)
        if not calls:
            done()
        for number, (items, pixels) in enumerate(calls, start=1):
            yield from self._records_out(room_for=pixels)
            # The call's copies in CORE_THREADS parts at once: one part's kernels run while
            # another part's Python dispatches its ops. Every copy's pixels are the same in
            # any batch, so the parts change no bit.
            parts = _split(items, CORE_THREADS)
            results = [_core_pool().submit(self._compute, part) for part in parts]
            call = _Call(place, parts, done if number == len(calls) else None)
            self._in_flight.submitted(call, results, pixels)
            yield from self._records_out()

    def _records_out(self, everything: bool = False, room_for: int = 0):
        """Yields the records of the calls taken back (`_WorkAhead.taken`)."""
        for call, computed in self._in_flight.taken(everything, room_for):
            for part, result in zip(call.parts, computed, strict=True):
                for record in self._records(part, result):
                    yield call.place.with_value(record)
            if call.done is not None:
                call.done()

    def _calls(self, copies: list[_Copy]) -> list[tuple[list[_Copy], int]]:
        """`copies` in core calls, each with its pixels: images of one shape, dtype and format
        (and, for detection records, one keypoint count) together, at most `batch_size` copies
        and MAX_BATCH_PIXELS pixels per call (one example may bring more than a call holds)."""
        groups: dict[tuple, list[_Copy]] = defaultdict(list)
        for copy in copies:
            decoded = copy.decoded
            mask_shape = None if decoded.mask is None else decoded.mask.shape
            objects = decoded.objects
            key = (
                decoded.pixels.shape,
                decoded.pixels.dtype.str,
                decoded.image_format,
                mask_shape,
                decoded.mask_format,
                None
                if objects is None
                else ("objects", objects.keypoints_per_object, objects.mask_form),
            )
            groups[key].append(copy)
        calls = []
        for items in groups.values():
            height, width = items[0].decoded.pixels.shape[:2]
            # Instance masks are one uint8 plane per object, and mixing partners whole images:
            # they count as pixels too.
            planes = 1 + self._plan.partner_count + max(_mask_planes(c.decoded) for c in items) // 4
            per_copy = height * width * planes
            per_call = max(1, min(self._config.batch_size, MAX_BATCH_PIXELS // per_copy))
            for start in range(0, len(items), per_call):
                call = items[start : start + per_call]
                calls.append((call, per_copy * len(call)))
        return calls

    def _compute(self, items: list[_Copy]) -> _Computed:
        """The core and the encoders over `items` (TensorFlow only: runs in a pool thread)."""
        from tfx_image_augment.core.augment import augment_targets

        config = self._config
        examples = [c.decoded for c in items]
        seeds = np.array([copy_seed(config.seed, c.decoded.key, c.index) for c in items], np.int64)
        images = np.stack([d.pixels for d in examples])
        core_images, value_range = core_inputs(images, config.value_range)
        first = examples[0]
        targets = {}
        count = self._plan.partner_count
        if count:
            # A copy without partners (too few in its bucket) stays unmixed: its own pixels
            # fill the slots, and has_partner keeps them out.
            targets["partners"], _ = core_inputs(
                np.stack([[p.pixels for p in c.partners or [c.decoded] * count] for c in items]),
                config.value_range,
            )
            targets["has_partner"] = np.array([bool(c.partners) for c in items])
        if first.mask is not None:
            targets["masks"] = np.stack([d.mask for d in examples])
        if first.objects is not None:
            # A tiling op's partners bring their objects, padded as wide as the image's own.
            partner_objects = []
            if self._plan.tiling_ops:
                partner_objects = [
                    [p.objects for p in c.partners] or [NO_OBJECTS] * count for c in items
                ]
            most = max(
                o.count for o in itertools.chain([d.objects for d in examples], *partner_objects)
            )
            boxes, box_valid, keypoints, visible = padded([d.objects for d in examples], most)
            targets.update(boxes=boxes, box_valid=box_valid)
            if partner_objects:
                rows = [padded(objects, most)[:2] for objects in partner_objects]
                targets.update(
                    partner_boxes=np.stack([r[0] for r in rows]),
                    partner_box_valid=np.stack([r[1] for r in rows]),
                )
            if keypoints is not None:
                targets.update(keypoints=keypoints, keypoint_visible=visible)
            instance_masks = padded_masks([d.objects for d in examples])
            if instance_masks is not None:
                targets.update(
                    instance_masks=instance_masks, boxes_from_masks=config.boxes_from_masks
                )
        out = augment_targets(
            core_images,
            seeds,
            self._plan,
            value_range=value_range,
            min_box_visibility=config.min_box_visibility,
            keypoint_flip_permutation=config.keypoint_flip_permutation,
            **targets,
        )
        out = {name: value.numpy() for name, value in out.items()}
        out["images"] = core_outputs(out["images"], images.dtype)
        mix_weights = out.pop("mix_weights", None)
        mask_values = None
        if first.mask is not None:
            mask_values = encode_batch(out["masks"], first.mask_format, config.encode_rules)
        image_values = encode_batch(out["images"], first.image_format, config.encode_rules)
        instance_values = [None] * len(items)
        if "instance_masks" in out:
            instance_values = kept_mask_values(
                [d.objects for d in examples],
                out["box_valid"],
                out["instance_masks"],
                config.encode_rules,
            )
        return _Computed(seeds, out, image_values, mask_values, instance_values, mix_weights)

    def _records(self, items: list[_Copy], computed: _Computed):
        """Each copy of `items` as a serialized tf.Example (in this DoFn's thread: counters)."""
        import tensorflow as tf

        config, first = self._config, items[0].decoded
        seeds, out, image_values, mask_values, instance_values, mix_weights = computed
        copies = out["images"]  # the input's dtype and channels again (core_outputs)
        image_fmt = output_format(
            first.image_format, config.encode_rules, copies.shape[-1], copies.dtype
        )
        height, width = copies.shape[1:3]
        # A tiling op's output rows: the image's objects, then each partner's, N rows each.
        rows = out["boxes"].shape[1] // (1 + self._plan.partner_count) if "boxes" in out else 0
        for i, (copy_index, decoded, partners_) in enumerate(items):
            example = tf.train.Example.FromString(decoded.record)
            features = example.features.feature
            # Parsed once: a mosaic copy takes its partners' objects, and any mixed copy their
            # labels.
            partner_features = [
                tf.train.Example.FromString(p.record).features.feature for p in partners_
            ]
            set_feature(features[decoded.image_feature], image_fmt, image_values[i])
            if image_fmt in ("png", "jpeg"):
                set_image_format(features, image_fmt)
            if decoded.objects is not None:
                write_objects(
                    example,
                    config,
                    decoded.objects,
                    out["boxes"][i],
                    out["box_valid"][i],
                    out["keypoints"][i] if "keypoints" in out else None,
                    out["keypoint_visible"][i] if "keypoints" in out else None,
                    height,
                    width,
                    instance_values[i],
                    partners=tuple(
                        zip(partner_features, [p.objects for p in partners_], strict=True)
                    )
                    if self._plan.tiling_ops
                    else (),
                    rows=rows,
                )
            if first.mask is not None:
                set_feature(
                    features[config.mask_feature],
                    output_format(first.mask_format, config.encode_rules, 1),
                    mask_values[i],
                )
            if mix_weights is not None:
                partner_keys = [p.key for p in partners_]
                _add_mix_features(
                    example, config, partner_keys, partner_features, float(mix_weights[i])
                )
            if config.provenance:
                add_provenance(example, decoded.key, copy_index, tuple(seeds[i]))
            self._written.inc()
            yield example.SerializeToString(deterministic=True)


def _original_out(decoded: DecodedExample, config: AugmentConfig, split: str, originals):
    """Counts the example's class, and yields its original (tagged ORIGINALS) when kept."""
    if decoded.label is not None:
        written = decoded.copies + int(config.include_original)
        _counter(split, f"{CLASS_IN}/{decoded.label}").inc()
        _counter(split, f"{CLASS_OUT}/{decoded.label}").inc(written)
    if config.include_original:
        originals.inc()
        yield beam.pvalue.TaggedOutput(
            AugmentBatchFn.ORIGINALS, _finish_original(decoded.record, decoded.key, config)
        )


def _add_mix_features(
    example, config: AugmentConfig, partner_keys: list, partner_features: list, weight: float
) -> None:
    """What a trainer needs for the copy's soft label: its own share of the pixels and, when
    it had partners, their keys and (with `label_feature`) label values, in partner order
    (`partner_features`: each partner record's parsed features)."""
    features = example.features.feature
    features[MIX_WEIGHT_FEATURE].float_list.value[:] = [weight]
    if not partner_keys:
        return
    features[MIX_PARTNER_KEY_FEATURE].bytes_list.value[:] = partner_keys
    if config.label_feature:
        labels = [partner.get(config.label_feature) for partner in partner_features]
        # One value per partner, of one type, or none at all: a reader pairs them with the keys.
        kinds = {None if label is None else label.WhichOneof("kind") for label in labels}
        if len(kinds) == 1 and None not in kinds:
            kind = kinds.pop()
            values = [getattr(label, kind).value for label in labels]
            if all(len(v) == 1 for v in values):
                combined = getattr(features[MIX_PARTNER_LABEL_FEATURE], kind).value
                combined[:] = [v[0] for v in values]


class MixFanOutFn(_SplitFn):
    """A decoded example -> its original (tagged ORIGINALS) and each of its copies as a
    (bucket, MixMember): the copy's way to the partners it is paired with (`offline/mixing.py`).
    `num_records` (the split's record count, a side input) sets the number of buckets."""

    def setup(self):
        super().setup()
        self._originals = _counter(self._split, "originals_written")

    def process(self, decoded: DecodedExample, num_records: int):
        killpoint("augment-batch")
        config = self._config
        yield from _original_out(decoded, config, self._split, self._originals)
        for index in range(1, decoded.copies + 1):
            bucket, slot = bucket_of(
                config.seed, decoded.key, index, num_records, config.num_copies
            )
            yield bucket, MixMember(slot, decoded.key, index, decoded.record)
        self._progress.finished(len(decoded.record))


class MixBucketFn(AugmentBatchFn):
    """(bucket, its copies) -> the copies augmented with their partners, as records."""

    def process(
        self,
        element,
        window=beam.DoFn.WindowParam,
        timestamp=beam.DoFn.TimestampParam,
        pane=beam.DoFn.PaneInfoParam,
    ):
        _, members = element
        records = {member.key: member.record for member in members}  # copies share a decoding
        outcomes = decode_examples(list(records.values()), self._config)
        for outcome in outcomes:
            if isinstance(outcome, Quarantined):  # DecodeFn let it through: not data, a bug
                raise outcome
        decoded = dict(zip(records, outcomes, strict=True))

        def image_kind(member: MixMember):
            example = decoded[member.key]
            objects = None if example.objects is None else example.objects.schema
            return example.pixels.shape, example.pixels.dtype.str, objects

        copies = [
            _Copy(m.copy_index, decoded[m.key], tuple(decoded[p.key] for p in ps))
            for m, ps in partners(list(members), image_kind, self._plan.partner_count)
        ]
        yield from self._augment(
            copies,
            _place(window, timestamp, pane),
            functools.partial(self._progress.wrote, len(copies)),
        )


def _mask_planes(decoded: DecodedExample) -> int:
    """How many per-object mask planes (uint8, a quarter of an RGB float pixel each in the
    core) an example brings."""
    objects = decoded.objects
    return 0 if objects is None or objects.masks is None else objects.count


def batch_weight(slot_pixels: int, decoded: DecodedExample) -> int:
    """An example's share of a batch of `batch_size` slots of `slot_pixels` each: a slot per
    copy for an image up to that size, proportionally more for a larger one; at least 1 (an
    example without copies still brings its original)."""
    height, width = decoded.pixels.shape[:2]
    per_copy = max(1, (height * width + slot_pixels - 1) // slot_pixels)  # rounded up
    return max(1, decoded.copies * per_copy)


def batch_examples(batch_size: int) -> beam.PTransform:
    """DecodedExample -> lists of examples whose copies fill about `batch_size` slots of
    MAX_BATCH_PIXELS / batch_size pixels each; an example larger than that goes alone (and
    AugmentBatch splits its copies over several calls). Sizes are in slots (`batch_weight`):
    Beam 2.59's BatchElements bounds one total, and has no max_batch_weight."""
    return beam.BatchElements(
        min_batch_size=max(1, batch_size // 2),
        max_batch_size=batch_size,
        element_size_fn=functools.partial(batch_weight, max(1, MAX_BATCH_PIXELS // batch_size)),
    )


# Parts of one core call run at once (AugmentBatchFn._augment): on 2 cores, 4 parts augmented
# and encoded 224-px copies 1.4x and 32-px copies 1.5x faster than one call (8 were slower).
# The same threads decode DecodeFn's groups and compute the next call while a call's records
# are made.
CORE_THREADS = 4
# Core calls computed ahead of the one whose records are being made (AugmentBatchFn._augment).
CALLS_AHEAD = 1
_CORE_POOL = None


def _core_pool():
    """This process's threads for TensorFlow's work: decode groups and core calls (made on
    first use: importing starts none)."""
    global _CORE_POOL
    if _CORE_POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _CORE_POOL = ThreadPoolExecutor(CORE_THREADS, thread_name_prefix="image-augment-core")
    return _CORE_POOL


class _WorkAhead:
    """A DoFn's work in the pool, taken back in the order it was submitted: the DoFn carries on
    while the pool computes, and hands on the oldest items once more than `ahead` wait.

    Each item weighs its pixels. In flight together: at most the pixels of `ahead` + 1 full
    calls (MAX_BATCH_PIXELS each), or of one image at `max_image_pixels` (what a run must hold
    for one such image anyway), whichever is more. So 12 MP photos' calls still overlap under
    the default 50 MP limit, and two 49 MP ones do not (with a call ahead they took 6.7 GB
    together here, 4.2 GB one at a time); an item above the budget runs alone."""

    def __init__(self, ahead: int, max_image_pixels: int):
        self._ahead = ahead
        self._budget = max((ahead + 1) * MAX_BATCH_PIXELS, max_image_pixels)
        self._items: deque[tuple[Any, list[Future], int]] = deque()
        self._pixels = 0

    def submitted(self, payload: Any, futures: list[Future], pixels: int) -> None:
        self._items.append((payload, futures, pixels))
        self._pixels += pixels

    def taken(self, everything: bool = False, room_for: int = 0):
        """Yields (payload, its futures' results) of the oldest items until `ahead` are left
        (none with `everything`: the bundle's end) within the pixel budget, with room in it for
        `room_for` more (what the caller is about to submit). If one failed, the work queued
        after it is cancelled before its error is raised: the pool does not go on computing for
        a bundle that failed."""
        keep = 0 if everything else self._ahead
        while len(self._items) > keep or (self._items and self._pixels + room_for > self._budget):
            payload, futures, pixels = self._items.popleft()
            self._pixels -= pixels
            try:
                results = [future.result() for future in futures]
            except BaseException:
                for future in futures:  # the failed item's other parts
                    future.cancel()
                self.cancel()
                raise
            yield payload, results

    def cancel(self) -> None:
        """Drops the work not started yet (a failed bundle's: its retry computes it again)."""
        for _, futures, _ in self._items:
            for future in futures:
                future.cancel()


def _split(items: list, parts: int) -> list[list]:
    """`items` in at most `parts` consecutive, nearly equal, non-empty parts."""
    size = -(-len(items) // parts)  # rounded up
    return [items[start : start + size] for start in range(0, len(items), size)]


class AddProvenanceFn(_SplitFn):
    """Pass-through splits: every record unchanged but for provenance (copy 0, its key)."""

    def setup(self):
        super().setup()
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
            key = stable_key(example, self._config.key_feature)
        except (DecodeError, Quarantined):  # not ours to judge: evaluation data stays as it is
            yield record
            return
        yield as_original(example, key)


# ----------------------------------------------------------------------------------------------
# Composite transforms
# ----------------------------------------------------------------------------------------------


def _write(pcoll, prefix: str, label: str, num_shards: int = 0):
    """Gzipped TFRecord files named as WriteToTFRecord names them, each compressed at the
    level its records fit (`sink.py`: encoded images are stored, not deflated)."""
    return pcoll | label >> beam.io.Write(GzipTFRecordSink(prefix, GZIP_SUFFIX, num_shards))


class ReadImageFolder(beam.PTransform):
    """The images of a folder (`io.folders`) as serialized tf.Examples, one file per element:
    the file names come from the launcher, the bytes are read by the workers. Without
    `with_images`, the records have empty image bytes and read no file: their labels (from the
    paths) are all that counting them needs."""

    def __init__(self, folder: ImageFolder, with_images: bool = True):
        super().__init__()
        self._folder, self._with_images = folder, with_images

    def expand(self, pipeline):
        files = pipeline | "Files" >> beam.Create(list(self._folder.files))
        if not self._with_images:
            return files | "LabelsOnly" >> beam.Map(_folder_label_record, self._folder)
        return files | "ReadImages" >> beam.Map(_folder_record, self._folder)


def _folder_record(relative_path: str, folder: ImageFolder) -> bytes:
    return image_record(folder, relative_path, read_file(folder.root, relative_path))


def _folder_label_record(relative_path: str, folder: ImageFolder) -> bytes:
    return image_record(folder, relative_path, b"")


def read_input(pipeline, label: str, source: str | ImageFolder, with_images: bool = True):
    """The records of a split's input: a glob of TFRecord files, or a folder of images (whose
    files are not read without `with_images`: see ReadImageFolder)."""
    if isinstance(source, ImageFolder):
        return pipeline | label >> ReadImageFolder(source, with_images)
    return read_tfrecords(pipeline, label, source)


def read_tfrecords(pbegin, label: str, pattern: str):
    """The records of the TFRecord files `pattern` matches, as a Beam PCollection of bytes.

    Each file is read with the compression its first bytes name. Files of one kind (the usual
    case) are read as Beam's ReadFromTFRecord of the pattern itself; a glob matching both
    gzipped and plain files is read as one ReadAllFromTFRecord per kind, flattened."""
    import tensorflow as tf
    from apache_beam.io.filesystem import CompressionTypes

    def beam_kind(kind: str):
        return CompressionTypes.GZIP if kind == "GZIP" else CompressionTypes.UNCOMPRESSED

    pattern = absolute_pattern(pattern)
    files = sorted(f for f in tf.io.gfile.glob(pattern) if not tf.io.gfile.isdir(f))
    kinds = compressions(files)
    coder = beam.coders.BytesCoder()
    if len(set(kinds.values())) <= 1:
        kind = next(iter(kinds.values()), None)
        return pbegin | label >> beam.io.ReadFromTFRecord(
            pattern,
            coder=coder,
            compression_type=CompressionTypes.AUTO if kind is None else beam_kind(kind),
            validate=False,
        )
    parts = []
    for kind in sorted(set(kinds.values())):
        name = kind or "plain"
        group = [path for path in files if kinds[path] == kind]
        parts.append(
            pbegin
            | f"{label}Files[{name}]" >> beam.Create(group)
            | f"{label}[{name}]"
            >> beam.io.ReadAllFromTFRecord(coder=coder, compression_type=beam_kind(kind))
        )
    return tuple(parts) | label >> beam.Flatten()


def is_direct_runner(options) -> bool:
    """Whether `options` name the DirectRunner (the default), in any running mode: its workers
    are threads or processes of this machine."""
    from apache_beam.options.pipeline_options import StandardOptions

    runner = options.view_as(StandardOptions).runner
    name = runner if runner is None or isinstance(runner, str) else type(runner).__name__
    return name is None or name.rsplit(".", 1)[-1].lower() in (
        "direct",
        "directrunner",
        "switchingdirectrunner",
        "fnapirunner",
    )


def streams_unshuffled(options) -> bool:
    """Whether `options` run the pipeline on the DirectRunner's in-memory mode (Beam's
    FnApiRunner in this process) with one worker, in batch: the one runner where breaking
    fusion only costs memory."""
    from apache_beam.options.pipeline_options import DirectOptions, StandardOptions

    standard = options.view_as(StandardOptions)
    if not is_direct_runner(options):
        return False
    direct = options.view_as(DirectOptions)
    return (
        not standard.streaming
        and direct.direct_running_mode == "in_memory"
        and direct.direct_num_workers == 1
    )


class AugmentSplit(beam.PTransform):
    """Reads one split's records and writes the originals and K augmented copies."""

    def __init__(
        self,
        split: str,
        input_pattern: str | ImageFolder,
        output_prefix: str,
        quarantine_prefix: str,
        config: AugmentConfig,
        progress_dir: str | None = None,
    ):
        super().__init__()
        self._split, self._input, self._output = split, input_pattern, output_prefix
        self._quarantine, self._config = quarantine_prefix, config
        self._progress_dir = progress_dir  # see progress.py: a local launcher's folder

    def expand(self, pipeline):
        split, config_json = self._split, self._config.to_json()
        records = read_input(pipeline, f"Read[{split}]", self._input)
        unshuffled = streams_unshuffled(records.pipeline.options)
        # What the counts (class sizes for balancing, the number of records for mixing) are
        # made of. Unshuffled, a PCollection read by two stages is held whole by the in-memory
        # DirectRunner until both have run, and the decode stage waits for the counts: so
        # there the input is read a second time for them, and the decode stage streams
        # (balanced, 224 px JPEGs, K=4: 959 -> 1,262 MiB from 1,000 to 6,000 inputs before).
        # (A folder of images is not read again: its labels come from the paths.) Elsewhere
        # the shuffle below already holds the records, and they are read once.
        if unshuffled and (uses_class_counts(self._config) or self._config.plan.mixing_ops):
            counted = read_input(pipeline, f"ReadToCount[{split}]", self._input, with_images=False)
        else:
            counted = records
        if unshuffled:
            # The in-memory DirectRunner runs one stage at a time, each over all of its input:
            # a Reshuffle there is a buffer of every encoded record, held (about 3 copies by the
            # time its GroupByKey is read) while the next stage runs, so peak memory grew with
            # the dataset (224 px JPEGs, K=4: 0.78 -> 1.01 GB from 1,000 to 4,000 inputs).
            # With one worker it spreads no work either; without it, read -> decode -> augment
            # -> write is one stage that streams. The records written are the same.
            shuffled = records
        else:
            # Fusion is broken on the encoded records, before anything is decoded or fanned
            # out: the shuffle moves 1/K of the bytes it would move after the fan-out, never
            # decoded pixels, and lets every worker (Dataflow, multi-processing) take a share;
            # everything downstream (decode, K copies, batches) stays one fused, streaming
            # stage whose memory is bounded by the batch size.
            shuffled = records | f"BreakFusion[{split}]" >> beam.Reshuffle()
        side_inputs = {}
        if uses_class_counts(self._config):
            # Counted from the data, in this pipeline, on the encoded records: every worker
            # sees the same counts, and only encoded records wait for them.
            config = self._config
            side_inputs["class_counts"] = beam.pvalue.AsDict(
                counted
                | f"Labels[{split}]" >> beam.FlatMap(label_of_record, config)
                | f"CountClasses[{split}]" >> beam.combiners.Count.PerElement()
            )
        decoded = shuffled | f"Decode[{split}]" >> beam.ParDo(
            DecodeFn(config_json, split, self._progress_dir), **side_inputs
        ).with_outputs(QUARANTINE_TAG, main="ok")
        if self._config.plan.mixing_ops:
            written = self._mix(decoded.ok, counted, config_json)
        else:
            written = (
                decoded.ok
                | f"Batch[{split}]" >> batch_examples(self._config.batch_size)
                | f"Augment[{split}]"
                >> beam.ParDo(AugmentBatchFn(config_json, split, self._progress_dir)).with_outputs(
                    AugmentBatchFn.ORIGINALS, main="copies"
                )
            )
        augmented, originals = written["copies"], written[AugmentBatchFn.ORIGINALS]
        if self._config.num_shards:
            # A fixed shard count groups records by shard anyway, so one sink costs nothing more.
            both = (originals, augmented) | f"Flatten[{split}]" >> beam.Flatten()
            _write(both, self._output, f"Write[{split}]", self._config.num_shards)
        else:
            # Two sinks rather than a Flatten into one: the DirectRunner materialises a
            # flattened PCollection whole, which made its memory grow with the dataset
            # (measured: 0.75 -> 1.75 GB from 2,000 to 20,000 inputs; 0.66 -> 0.83 GB with two).
            _write(originals, f"{self._output}-originals", f"WriteOriginals[{split}]")
            _write(augmented, f"{self._output}-copies", f"WriteCopies[{split}]")
        _write(decoded[QUARANTINE_TAG], self._quarantine, f"WriteQuarantine[{split}]")
        return augmented

    def _mix(self, decoded, counted, config_json: str):
        """Copies meet their partners (`offline/mixing.py`): keyed by bucket, grouped, and
        augmented a bucket at a time. Only encoded records wait in the shuffle. `counted`: the
        records to count (see `expand`)."""
        split = self._split
        num_records = beam.pvalue.AsSingleton(
            counted | f"CountRecords[{split}]" >> beam.combiners.Count.Globally()
        )
        members = decoded | f"MixFanOut[{split}]" >> beam.ParDo(
            MixFanOutFn(config_json, split, self._progress_dir), num_records
        ).with_outputs(AugmentBatchFn.ORIGINALS, main="copies")
        copies = (
            members.copies
            | f"MixBuckets[{split}]" >> beam.GroupByKey()
            | f"Mix[{split}]" >> beam.ParDo(MixBucketFn(config_json, split, self._progress_dir))
        )
        return {"copies": copies, AugmentBatchFn.ORIGINALS: members[AugmentBatchFn.ORIGINALS]}


class PassThroughSplit(beam.PTransform):
    """Copies one split record for record (adding provenance unless it is off)."""

    def __init__(
        self,
        split: str,
        input_pattern: str,
        output_prefix: str,
        config: AugmentConfig,
    ):
        super().__init__()
        self._split, self._input, self._output = split, input_pattern, output_prefix
        self._config = config

    def expand(self, pipeline):
        split = self._split
        records = read_tfrecords(pipeline, f"Read[{split}]", self._input)
        passed = records | f"PassThrough[{split}]" >> beam.ParDo(
            AddProvenanceFn(self._config.to_json(), split)
        )
        _write(passed, self._output, f"Write[{split}]", self._config.num_shards)
        return passed
