"""The image codec: an image feature of a tf.Example (encoded bytes or raw arrays) <-> pixels.

Decoding validates as it goes and raises `Quarantined` with a reason of `quarantine.py`, so the
offline door can set the bad record aside whole. What it checks comes in as `DecodeRules` and
how it writes as `EncodeRules` (the offline config builds both). Needs TensorFlow and numpy
only, not Beam: the preview decodes with it exactly as the offline expansion does.
"""

from __future__ import annotations

import dataclasses
import struct

import numpy as np

from tfx_image_augment.io.quarantine import (
    IMAGE_ANIMATED,
    IMAGE_BAD_SHAPE,
    IMAGE_EMPTY,
    IMAGE_MISSING,
    IMAGE_NOT_FINITE,
    IMAGE_OUT_OF_RANGE,
    IMAGE_TOO_LARGE,
    IMAGE_UNDECODABLE,
    IMAGE_WRONG_TYPE,
    INSTANCE_MASK_INVALID,
    INSTANCE_MASK_SHAPE_MISMATCH,
    MASK_INVALID,
    MASK_MISSING,
    MASK_SHAPE_MISMATCH,
    NOT_AN_IMAGE,
    Quarantined,
)
from tfx_image_augment.io.rules import (  # noqa: F401 (the codec's rules, re-exported)
    DEFAULT_MAX_IMAGE_PIXELS,
    DEFAULT_VALUE_RANGE,
    MAX_BATCH_PIXELS,
    OUT_OF_RANGE_ACTIONS,
    OUTPUT_FORMATS,
    UINT16_RANGE,
    DecodeRules,
    EncodeRules,
    has_values,
)


@dataclasses.dataclass(frozen=True)
class _Target:
    """What is decoded, and the quarantine reason of each way it can be wrong."""

    channels: int  # 0: as stored
    missing: str
    wrong_type: str
    empty: str
    not_an_image: str
    undecodable: str
    bad_shape: str
    animated: str
    floats_allowed: bool
    sixteen_bits_allowed: bool


_IMAGE = _Target(
    0,
    IMAGE_MISSING,
    IMAGE_WRONG_TYPE,
    IMAGE_EMPTY,
    NOT_AN_IMAGE,
    IMAGE_UNDECODABLE,
    IMAGE_BAD_SHAPE,
    IMAGE_ANIMATED,
    floats_allowed=True,
    sixteen_bits_allowed=True,
)
# A segmentation mask: one 8-bit channel of labels, refused as mask_* whatever is wrong.
_MASK = _Target(
    1,
    MASK_MISSING,
    MASK_INVALID,
    MASK_INVALID,
    MASK_INVALID,
    MASK_INVALID,
    MASK_SHAPE_MISMATCH,
    MASK_INVALID,
    floats_allowed=False,
    sixteen_bits_allowed=False,
)


# One object's mask of the Object Detection API (one PNG each): one 8-bit channel.
_INSTANCE_MASK = _Target(
    1,
    INSTANCE_MASK_INVALID,
    INSTANCE_MASK_INVALID,
    INSTANCE_MASK_INVALID,
    INSTANCE_MASK_INVALID,
    INSTANCE_MASK_INVALID,
    INSTANCE_MASK_SHAPE_MISMATCH,
    INSTANCE_MASK_INVALID,
    floats_allowed=False,
    sixteen_bits_allowed=False,
)
# The forms of `image/object/mask`: one encoded image per object, or N x H x W raw values.
INSTANCE_MASK_FORMS = ("png", "raw_float", "raw_int64")


def decode_instance_masks(feature, rules: DecodeRules, name: str, height: int, width: int):
    """(masks uint8 [N, H, W], form) of an Object Detection API per-object mask feature: one
    encoded image per object (the form of `create_coco_tf_record.py --include_masks`; written
    back as PNG) or N*H*W raw values, floats or ints, object-major (written back in their
    kind). Values are kept as stored (0/1 or 0/255); raises Quarantined."""
    import tensorflow as tf

    kind = feature.WhichOneof("kind")
    if kind == "bytes_list":
        rules = DecodeRules(max_pixels=rules.max_pixels)  # each mask is encoded, never raw
        masks = []
        for i, data in enumerate(feature.bytes_list.value):
            one = tf.train.Feature(bytes_list=tf.train.BytesList(value=[data]))
            pixels, _ = _decode(one, rules, f"{name}[{i}]", _INSTANCE_MASK)
            if pixels.shape[:2] != (height, width):
                raise Quarantined(
                    INSTANCE_MASK_SHAPE_MISMATCH,
                    f"{name}[{i}]: mask {pixels.shape[1]}x{pixels.shape[0]}, image "
                    f"{width}x{height}",
                )
            masks.append(pixels[..., 0])
        return _stacked(masks, height, width), "png"
    values = np.asarray(getattr(feature, kind).value if kind else [], np.float64)
    if values.size % (height * width):
        raise Quarantined(
            INSTANCE_MASK_SHAPE_MISMATCH,
            f"{name}: {values.size} raw values are not a whole number of {height}x{width} masks",
        )
    if values.size and (
        not np.all(np.isfinite(values))
        or np.any(values != np.round(values))
        or values.min() < 0
        or values.max() > 255
    ):
        raise Quarantined(INSTANCE_MASK_INVALID, f"{name}: raw values not integers in [0, 255]")
    masks = values.astype(np.uint8).reshape(-1, height, width)
    return masks, "raw_int64" if kind == "int64_list" else "raw_float"


def _stacked(masks: list, height: int, width: int) -> np.ndarray:
    if not masks:
        return np.zeros((0, height, width), np.uint8)
    return np.stack(masks)


def encode_instance_masks(masks: np.ndarray, form: str, rules: EncodeRules) -> list:
    """The values of `image/object/mask` for masks uint8 [N, H, W] in `form` (PNG: one value
    per object, `png_compression` applies)."""
    if form == "raw_float":
        return masks.astype(np.float32).ravel().tolist()
    if form == "raw_int64":
        return masks.astype(np.int64).ravel().tolist()
    if not len(masks):
        return []
    return list(_encoder("png", rules)(masks[..., None]).numpy())  # PNG whatever output_format


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


@dataclasses.dataclass(frozen=True)
class ImageHeader:
    """What an encoded image's header says, read without decoding it."""

    width: int
    height: int
    frames: int = 1
    bit_depth: int = 8


def read_header(data: bytes, fmt: str) -> ImageHeader | None:
    """The header of PNG/JPEG/GIF/BMP `data` (as `sniff_format` named it); None when it is cut
    short or malformed. Reads a few bytes, so a decompression bomb is caught before it unpacks."""
    try:
        return _HEADER_READERS[fmt](data)
    except (struct.error, IndexError):  # the data ends inside the header
        return None


def _png_header(data: bytes) -> ImageHeader | None:
    if data[12:16] != b"IHDR":
        return None
    width, height, bit_depth = struct.unpack_from(">IIB", data, 16)
    # An APNG announces its frame count in an acTL chunk before the first IDAT.
    frames, offset = 1, 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, offset)
        if kind == b"acTL":
            frames = struct.unpack_from(">I", data, offset + 8)[0]
        if kind in (b"IDAT", b"IEND"):
            break
        offset += 12 + length  # length, type, data, CRC
    return ImageHeader(width, height, frames, bit_depth)


# Start-of-frame markers SOF0-SOF15, less DHT (C4), JPG (C8) and DAC (CC), which share the range.
_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
_JPEG_STANDALONE = frozenset(range(0xD0, 0xD8)) | {0x01}  # RSTn and TEM carry no length


def _jpeg_header(data: bytes) -> ImageHeader | None:
    offset = 2
    while offset + 4 <= len(data):
        if data[offset] != 0xFF:
            return None
        marker = data[offset + 1]
        if marker == 0xFF:  # a fill byte
            offset += 1
            continue
        if marker in _JPEG_STANDALONE:
            offset += 2
            continue
        if marker in _JPEG_SOF:
            height, width = struct.unpack_from(">HH", data, offset + 5)
            return ImageHeader(width, height)
        if marker in (0xDA, 0xD9):  # a scan or the end before any frame header
            return None
        offset += 2 + struct.unpack_from(">H", data, offset + 2)[0]
    return None


def _skip_gif_sub_blocks(data: bytes, offset: int) -> int:
    while data[offset]:
        offset += data[offset] + 1
    return offset + 1


def _gif_header(data: bytes) -> ImageHeader | None:
    # The canvas: the logical screen, widened to hold every frame (TensorFlow decodes a frame at
    # its own size, so a frame smaller than the screen shows up as a size mismatch).
    width, height, flags = struct.unpack_from("<HHB", data, 6)
    offset = 13 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)  # global colour table
    frames = 0
    while offset < len(data) and data[offset] != 0x3B:  # the trailer
        if data[offset] == 0x21:  # extension: label, then sub-blocks
            offset = _skip_gif_sub_blocks(data, offset + 2)
        elif data[offset] == 0x2C:  # image descriptor: one frame
            frames += 1
            frame_width, frame_height, local_flags = struct.unpack_from("<HHB", data, offset + 5)
            width, height = max(width, frame_width), max(height, frame_height)
            offset += 10 + (3 << ((local_flags & 7) + 1) if local_flags & 0x80 else 0)
            offset = _skip_gif_sub_blocks(data, offset + 1)  # after the LZW code size
        else:
            break  # not GIF structure: the decoder judges the rest
    return ImageHeader(width, height, frames) if frames else None  # no image, or cut short


def _bmp_header(data: bytes) -> ImageHeader | None:
    info_size = struct.unpack_from("<I", data, 14)[0]
    if info_size == 12:  # BITMAPCOREHEADER
        width, height = struct.unpack_from("<HH", data, 18)
    elif info_size >= 40:  # BITMAPINFOHEADER and later; a negative height means top-down
        width, height = struct.unpack_from("<ii", data, 18)
    else:
        return None
    return ImageHeader(width, abs(height))


_HEADER_READERS = {"png": _png_header, "jpeg": _jpeg_header, "gif": _gif_header, "bmp": _bmp_header}


@dataclasses.dataclass(frozen=True)
class EncodedImage:
    """An encoded image whose header passed every check: what is left is TensorFlow's decode
    (`decode_encoded`), one at a time or many in one call."""

    data: bytes
    fmt: str
    header: ImageHeader
    name: str
    target: _Target

    @property
    def pixel_count(self) -> int:
        return self.header.width * self.header.height


def check_image(feature, rules: DecodeRules, name: str):
    """An image feature checked up to TensorFlow's decode: (pixels, format) of a raw image, an
    `EncodedImage` for `decode_encoded`, or raises Quarantined with the reason."""
    return _check(feature, rules, name, _IMAGE)


def decode_mask(feature, rules: DecodeRules, name: str):
    """(pixels [H, W, 1], format) of a segmentation-mask feature, or raises Quarantined."""
    return _decode(feature, rules, name, _MASK)


def _decode(feature, rules: DecodeRules, name: str, target: _Target):
    checked = _check(feature, rules, name, target)
    if isinstance(checked, EncodedImage):
        return _decode_one(checked), checked.fmt
    return checked


def _check(feature, rules: DecodeRules, name: str, target: _Target):
    kind = feature.WhichOneof("kind")
    if rules.raw_shape is not None:
        shape = tuple(rules.raw_shape[:2]) + (target.channels or rules.raw_shape[2],)
        size = int(np.prod(shape))
        if kind == "bytes_list" and len(feature.bytes_list.value) == 1:
            data = feature.bytes_list.value[0]
            if len(data) != size:
                raise Quarantined(
                    target.bad_shape, f"{name}: {len(data)} bytes, expected {size} for {shape}"
                )
            return np.frombuffer(data, np.uint8).reshape(shape), "raw_bytes"
        if kind == "float_list" and target.floats_allowed:
            values = feature.float_list.value
            if len(values) != size:
                raise Quarantined(
                    target.bad_shape, f"{name}: {len(values)} floats, expected {size} for {shape}"
                )
            pixels = np.asarray(values, np.float32).reshape(shape)
            return _checked_float_pixels(pixels, rules, name), "raw_float"
        if kind == "int64_list":
            values = np.asarray(feature.int64_list.value)
            if len(values) != size:
                raise Quarantined(
                    target.bad_shape, f"{name}: {len(values)} ints, expected {size} for {shape}"
                )
            if values.size and (values.min() < 0 or values.max() > 255):
                raise Quarantined(target.wrong_type, f"{name}: int64 pixels outside [0, 255]")
            return values.astype(np.uint8).reshape(shape), "raw_int64"
        raise Quarantined(
            target.missing if kind is None else target.wrong_type,
            f"{name}: a raw image needs one bytes value, floats or ints; got {kind or 'no values'}",
        )
    if kind != "bytes_list" or len(feature.bytes_list.value) != 1:
        raise Quarantined(
            target.missing if kind is None or not has_values(feature) else target.wrong_type,
            f"{name}: expected one encoded image (bytes); got {kind or 'no values'}",
        )
    data = feature.bytes_list.value[0]
    if not data:
        raise Quarantined(target.empty, f"{name}: zero bytes")
    fmt = sniff_format(data)
    if fmt is None:
        raise Quarantined(
            target.not_an_image, f"{name}: {len(data)} bytes with no PNG/JPEG/GIF/BMP signature"
        )
    header = read_header(data, fmt)
    if header is None or header.width == 0 or header.height == 0:
        raise Quarantined(target.undecodable, f"{name}: {fmt} data without a readable header")
    size = f"{header.width}x{header.height}"
    if header.width * header.height > rules.max_pixels:
        raise Quarantined(
            IMAGE_TOO_LARGE,
            f"{name}: {fmt} of {size} = {header.width * header.height:,} pixels, above "
            f"max_image_pixels={rules.max_pixels:,}",
        )
    if header.frames > 1:
        raise Quarantined(
            target.animated,
            f"{name}: animated {fmt} of {header.frames} frames; only still images are augmented",
        )
    if header.bit_depth == 16 and not target.sixteen_bits_allowed:
        raise Quarantined(target.wrong_type, f"{name}: 16-bit PNG; a mask holds 8-bit labels")
    return EncodedImage(data, fmt, header, name, target)


def _dtype_of(image: EncodedImage):
    import tensorflow as tf

    return tf.uint16 if image.header.bit_depth == 16 else tf.uint8


def _decode_one(image: EncodedImage) -> np.ndarray:
    import tensorflow as tf

    try:
        pixels = tf.io.decode_image(
            image.data,
            channels=image.target.channels,
            dtype=_dtype_of(image),
            expand_animations=False,
        )
    except (tf.errors.InvalidArgumentError, tf.errors.DataLossError) as err:
        raise Quarantined(
            image.target.undecodable,
            f"{image.name}: {image.fmt} data does not decode ({err.message.splitlines()[0]})",
        ) from None
    return _checked_decoded(pixels.numpy(), image)


def _checked_decoded(pixels: np.ndarray, image: EncodedImage) -> np.ndarray:
    header = image.header
    if pixels.shape[:2] != (header.height, header.width):
        raise Quarantined(
            image.target.undecodable,
            f"{image.name}: {image.fmt} decodes to {pixels.shape[1]}x{pixels.shape[0]}, its "
            f"header says {header.width}x{header.height}",
        )
    if pixels.shape[-1] not in (1, 3, 4):
        raise Quarantined(
            IMAGE_BAD_SHAPE, f"{image.name}: {pixels.shape[-1]} channels; 1, 3 or 4 are supported"
        )
    return pixels


_BATCH_DECODERS: dict = {}


def _batch_decoder(channels: int, dtype):
    """One traced function per (channels, dtype) that decodes a vector of encoded images of one
    size: an eager decode pays ~200 us of dispatch per image here, and the function's
    iterations run on every core (64 32-px PNGs: 193 -> 62 us an image; 224-px JPEGs 507 ->
    305; a ragged output for mixed sizes cost more than it saved)."""
    import tensorflow as tf

    key = (channels, dtype)
    if key not in _BATCH_DECODERS:

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)], autograph=False)
        def decode(contents):
            return tf.map_fn(
                lambda data: tf.io.decode_image(
                    data, channels=channels, dtype=dtype, expand_animations=False
                ),
                contents,
                fn_output_signature=tf.TensorSpec([None, None, None], dtype),
            )

        # setdefault: pool threads may build the first one at once; all use the one kept.
        return _BATCH_DECODERS.setdefault(key, decode)
    return _BATCH_DECODERS[key]


def decode_encoded(images: list[EncodedImage]) -> list:
    """Each image's pixels, or the Quarantined that says why it has none: the images of one
    size, kind and depth in one TensorFlow call (the same kernel, so the same pixels, as one at
    a time). A call that fails (an image does not decode, or its channels differ from the
    others') is done again image by image, for each image's own outcome."""
    import tensorflow as tf

    results: list = [None] * len(images)
    kinds: dict = {}
    for index, image in enumerate(images):
        key = (image.target.channels, _dtype_of(image), image.header.height, image.header.width)
        kinds.setdefault(key, []).append(index)
    for (channels, dtype, _, _), indices in kinds.items():
        together = None
        if len(indices) > 1:
            contents = tf.constant([images[i].data for i in indices])
            try:
                together = _batch_decoder(channels, dtype)(contents).numpy()
            except (tf.errors.InvalidArgumentError, tf.errors.DataLossError):
                together = None  # one of them does not decode, or differs: each alone says
        for n, index in enumerate(indices):
            try:
                results[index] = (
                    _decode_one(images[index])
                    if together is None
                    else _checked_decoded(together[n], images[index])
                )
            except Quarantined as bad:
                results[index] = bad
    return results


def _checked_float_pixels(pixels: np.ndarray, rules: DecodeRules, name: str) -> np.ndarray:
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
    low, high = (np.float32(v) for v in (rules.value_range or DEFAULT_VALUE_RANGE))
    lowest, highest = pixels.min(), pixels.max()
    if low <= lowest and highest <= high:
        return pixels
    if rules.out_of_range == "clip":
        return np.clip(pixels, low, high)
    raise Quarantined(
        IMAGE_OUT_OF_RANGE,
        f"{name}: values span [{lowest:g}, {highest:g}], outside value_range "
        f"[{low:g}, {high:g}] (out_of_range='quarantine')",
    )


def core_inputs(images: np.ndarray, value_range: tuple[float, float] | None):
    """(images, value_range) as the core takes them: uint8 as is, 16-bit as float32 in
    [0, 65535] (the core works in uint8 or float), raw floats in `value_range`."""
    if images.dtype == np.uint16:
        return images.astype(np.float32), UINT16_RANGE
    return images, (None if images.dtype == np.uint8 else value_range)


def core_outputs(out: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """The core's output in the input's dtype: 16-bit pixels rounded back to uint16."""
    if dtype == np.uint16:
        return np.round(out).astype(np.uint16)  # the core clips to the value range
    return out


def output_format(fmt: str, rules: EncodeRules, channels: int, dtype=np.uint8) -> str:
    """The format a copy is written in: the input's (`same`), or the configured one. TF cannot
    write GIF/BMP, and JPEG holds neither alpha nor 16 bits: those become PNG, which is lossless
    (and 16-bit where the input was)."""
    target = fmt if rules.output_format == "same" or fmt.startswith("raw") else rules.output_format
    if target in ("gif", "bmp") or (
        target == "jpeg" and (channels not in (1, 3) or dtype == np.uint16)
    ):
        return "png"
    return target


_ENCODERS: dict = {}


def _encoder(target: str, rules: EncodeRules):
    """One traced function per format that encodes a whole batch in a single TF call (an eager
    call per image costs more than encoding a small image)."""
    import tensorflow as tf

    quality, level = rules.jpeg_quality, rules.png_compression
    key = (target, quality if target == "jpeg" else level)
    if key not in _ENCODERS:

        def encode_one(image):
            if target == "png":
                return tf.io.encode_png(image, compression=level)
            return tf.io.encode_jpeg(image, quality=quality)

        @tf.function(reduce_retracing=True)
        def encode(images):
            return tf.map_fn(encode_one, images, fn_output_signature=tf.string)

        return _ENCODERS.setdefault(key, encode)  # as _batch_decoder: pool threads
    return _ENCODERS[key]


def encode_batch(pixels: np.ndarray, fmt: str, rules: EncodeRules) -> list:
    """Each image of `pixels` [N, H, W, C] as the values its feature should hold."""
    target = output_format(fmt, rules, pixels.shape[-1], pixels.dtype)
    if target in ("png", "jpeg"):
        return [[data] for data in _encoder(target, rules)(pixels).numpy()]
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
