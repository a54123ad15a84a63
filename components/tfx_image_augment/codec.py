"""The image codec: an image feature of a tf.Example (encoded bytes or raw arrays) <-> pixels.

Decoding validates as it goes and raises `Quarantined` with one of the reasons below, so the
Beam door can set the bad record aside whole. Needs TensorFlow and numpy only, not Beam: the
preview decodes with it exactly as the offline expansion does.
"""

from __future__ import annotations

import numpy as np

from tfx_image_augment.config import AugmentConfig

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
IMAGE_NOT_FINITE = "image_not_finite"
IMAGE_OUT_OF_RANGE = "image_out_of_range"

# The core's range for float pixels when `value_range` is not given.
DEFAULT_VALUE_RANGE = (0.0, 1.0)


class Quarantined(Exception):
    """An example that cannot be augmented: `reason` is one of the constants above."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


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
            pixels = np.asarray(values, np.float32).reshape(shape)
            return _checked_float_pixels(pixels, config, name), "raw_float"
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
            missing if kind is None or not has_values(feature) else wrong_type,
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


def _checked_float_pixels(pixels: np.ndarray, config: AugmentConfig, name: str) -> np.ndarray:
    """Raw float pixels that are finite and inside `value_range` (clipped there when the config
    says so); otherwise raises Quarantined. One NaN would spread through every copy."""
    finite = np.isfinite(pixels)
    if not finite.all():
        raise Quarantined(
            IMAGE_NOT_FINITE,
            f"{name}: {pixels.size - int(finite.sum())} of {pixels.size} values are NaN or "
            "infinite",
        )
    # Compared in float32, as the pixels are: 0.1 as a float64 bound would reject float32(0.1).
    low, high = (np.float32(v) for v in (config.value_range or DEFAULT_VALUE_RANGE))
    lowest, highest = pixels.min(), pixels.max()
    if low <= lowest and highest <= high:
        return pixels
    if config.out_of_range == "clip":
        return np.clip(pixels, low, high)
    raise Quarantined(
        IMAGE_OUT_OF_RANGE,
        f"{name}: values span [{lowest:g}, {highest:g}], outside value_range "
        f"[{low:g}, {high:g}] (out_of_range='quarantine')",
    )


def has_values(feature) -> bool:
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
