"""The records the offline expansion reads and writes: stable keys, provenance, quarantine.

Also the one rule for telling a gzipped TFRecord file from a plain one (by its first bytes).
Needs TensorFlow only (no Beam), so the reader, the preview and the runners share it with the
Beam door.
"""

from __future__ import annotations

from tfx_image_augment.core.seeds import content_key
from tfx_image_augment.io.quarantine import KEY_MISSING, Quarantined
from tfx_image_augment.io.rules import has_values

# Provenance of every written record (copy 0 is the original).
COPY_INDEX_FEATURE = "aug_copy_index"
SOURCE_KEY_FEATURE = "aug_source_key"
SEED_FEATURE = "aug_seed"
# A copy of a mixing policy (mixup, cutmix): its own share of the pixels, its partner's stable
# key and its partner's `label_feature` values (written with or without provenance: they are
# part of the copy's label).
MIX_WEIGHT_FEATURE = "aug_mix_weight"
MIX_PARTNER_KEY_FEATURE = "aug_mix_partner_key"
MIX_PARTNER_LABEL_FEATURE = "aug_mix_partner_label"
# A quarantined record: why, in a word and in a sentence, and the input record whole.
QUARANTINE_REASON_FEATURE = "quarantine_reason"
QUARANTINE_DETAIL_FEATURE = "quarantine_detail"
QUARANTINE_RECORD_FEATURE = "quarantine_record"

DATA_PREFIX = "data_tfrecord"
QUARANTINE_PREFIX = "quarantine_tfrecord"
GZIP_SUFFIX = ".gz"


GZIP_MAGIC = b"\x1f\x8b"
_HEADER_BYTES = 12  # a TFRecord starts with its length (8 bytes) and their masked CRC-32C (4)


def _crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _is_tfrecord_header(head: bytes) -> bool:
    """Whether `head` is a plain TFRecord file's first 12 bytes: a length and its masked
    CRC-32C, as TFRecordWriter writes them."""
    if len(head) < _HEADER_BYTES:
        return False
    crc = _crc32c(head[:8])
    masked = (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF
    return int.from_bytes(head[8:12], "little") == masked


def compression_of(path: str) -> str:
    """The `compression_type` TensorFlow needs to read the TFRecord file at `path`, read from
    its first bytes, whatever its name: "GZIP" when it starts with gzip's magic (1f 8b), ""
    for a plain one (or an empty one).

    A plain file whose first record's length happens to begin with the bytes 1f 8b is still
    told plain: its 12-byte record header checks out (its CRC), which a gzip header's does
    not. Read through tf.io.gfile, so gs:// and other file systems work too. A file that cannot
    be read is judged by its name (`.gz`: "GZIP"); reading it then fails with TensorFlow's own
    reason."""
    import tensorflow as tf

    try:
        with tf.io.gfile.GFile(path, "rb") as handle:
            head = handle.read(_HEADER_BYTES)
    except (OSError, tf.errors.OpError):
        return "GZIP" if path.endswith(GZIP_SUFFIX) else ""
    if head.startswith(GZIP_MAGIC) and not _is_tfrecord_header(head):
        return "GZIP"
    return ""


# The TFX/TFDS image feature, the default of `image_feature`.
IMAGE_FEATURE = "image"
# Where the Object Detection API keeps the image: used when `image_feature` is left at its
# default and the record has no feature of that name.
DETECTION_IMAGE_FEATURE = "image/encoded"
# The Object Detection API's per-object layout (the defaults of the detection settings).
OBJECT_FEATURE_PREFIX = "image/object/"
BOX_FEATURE_PREFIX = "image/object/bbox/"
KEYPOINT_FEATURE_PREFIX = "image/object/keypoint/"
BOX_SIDES = ("ymin", "xmin", "ymax", "xmax")


# Where the Object Detection API names the image's format ("jpeg", "png"): a copy re-encoded in
# another format says so there (when the record has that feature).
IMAGE_FORMAT_FEATURE = "image/format"


def set_image_format(features, fmt: str) -> None:
    """Writes `fmt` (png or jpeg) into the record's `image/format`, when it has a bytes one."""
    feature = features.get(IMAGE_FORMAT_FEATURE)
    if feature is not None and feature.WhichOneof("kind") == "bytes_list":
        feature.bytes_list.value[:] = [fmt.encode()]


def image_feature_of(features, image_feature: str) -> str | None:
    """The name of the feature holding the image, or None when the record has none."""
    if image_feature in features:
        return image_feature
    if image_feature == IMAGE_FEATURE and DETECTION_IMAGE_FEATURE in features:
        return DETECTION_IMAGE_FEATURE
    return None


def stable_key(example, key_feature: str | None) -> bytes:
    """The example's key for its seeds: `key_feature`'s first value, or its content hash."""
    if key_feature:
        feature = example.features.feature.get(key_feature)
        if feature is None or not has_values(feature):
            raise Quarantined(KEY_MISSING, f"{key_feature}: absent or empty")
        kind = feature.WhichOneof("kind")
        values = getattr(feature, kind).value
        return values[0] if kind == "bytes_list" else str(values[0]).encode()
    return content_key(example.SerializeToString(deterministic=True))


def add_provenance(example, key: bytes, copy_index: int, seed: tuple[int, int]) -> None:
    features = example.features.feature
    features[COPY_INDEX_FEATURE].int64_list.value[:] = [copy_index]
    features[SOURCE_KEY_FEATURE].bytes_list.value[:] = [key]
    features[SEED_FEATURE].int64_list.value[:] = list(seed)


def as_original(example, key: bytes) -> bytes:
    """An unaugmented record (augmented split's original, or pass-through): copy 0, seed 0 0."""
    add_provenance(example, key, 0, (0, 0))
    return example.SerializeToString(deterministic=True)


def quarantine_record(record: bytes, reason: str, detail: str) -> bytes:
    import tensorflow as tf

    example = tf.train.Example()
    features = example.features.feature
    features[QUARANTINE_REASON_FEATURE].bytes_list.value.append(reason.encode())
    features[QUARANTINE_DETAIL_FEATURE].bytes_list.value.append(detail.encode()[:1000])
    features[QUARANTINE_RECORD_FEATURE].bytes_list.value.append(record)
    return example.SerializeToString(deterministic=True)
