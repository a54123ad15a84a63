"""What decoding checks and how copies are written, as plain values: the codec's rules without
the codec (no numpy, no TensorFlow), so settings are checked before either loads."""

from __future__ import annotations

import dataclasses

# The core's range for float pixels when `value_range` is not given.
DEFAULT_VALUE_RANGE = (0.0, 1.0)
# Memory per TF call is bounded by pixels, not only by image count: at most this many pixels
# (64 images of 224x224; ~40 MB per float32 RGB tensor in the core) go into one call, and
# `batch_size` (1024 by default) bounds the count for small images, whose calls would otherwise
# pay a fixed ~3 ms of op dispatch for a few images (measured at 32x32: 158 us per copy in calls
# of 64, 54 us in calls of 1024). A larger image that max_image_pixels lets through goes alone.
MAX_BATCH_PIXELS = 64 * 224 * 224
# 16-bit PNGs go through the core as float32 in this range (exact: float32 holds every
# integer up to 2**24) and come back rounded to uint16.
UINT16_RANGE = (0.0, 65535.0)
# Of the order of Pillow's decompression-bomb guard (it warns above 89.5 M pixels). An RGB
# image this large peaks at about 4 GB in a worker (benchmarks/results/memory.md).
DEFAULT_MAX_IMAGE_PIXELS = 50_000_000
OUTPUT_FORMATS = ("same", "png", "jpeg")
OUT_OF_RANGE_ACTIONS = ("quarantine", "clip")


@dataclasses.dataclass(frozen=True)
class DecodeRules:
    """What decoding an image checks.

    raw_shape: [height, width, channels] of raw pixels (one bytes value, int64s or floats);
      None for encoded images.
    value_range: the range of raw float pixels (default DEFAULT_VALUE_RANGE).
    max_pixels: an encoded image whose header says more pixels is refused unread.
    out_of_range: raw float pixels outside value_range: "quarantine" or "clip".
    """

    raw_shape: tuple[int, int, int] | None = None
    value_range: tuple[float, float] | None = None
    max_pixels: int = DEFAULT_MAX_IMAGE_PIXELS
    out_of_range: str = "quarantine"


@dataclasses.dataclass(frozen=True)
class EncodeRules:
    """How copies are written: `output_format` "same" (the input's), "png" or "jpeg"."""

    output_format: str = "same"
    jpeg_quality: int = 95
    png_compression: int = 1


def has_values(feature) -> bool:
    kind = feature.WhichOneof("kind")
    return kind is not None and len(getattr(feature, kind).value) > 0
