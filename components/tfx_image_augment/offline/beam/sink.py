"""Writing gzipped TFRecord files at a level that fits what they hold.

Beam's WriteToTFRecord compresses at zlib's default level (6) and has no option for it; most of
our records are encoded images, which deflate cannot shrink (a 224-px JPEG: 2% smaller at level
1, for 4x the time of storing it). `GzipTFRecordSink` is Beam's TFRecord sink with the level
chosen per file from its first record: stored blocks when it does not compress by a tenth at
level 1, level 1 otherwise (raw pixels). Stored blocks are still a valid `.gz` file for every
reader (TensorFlow, Beam, gzip). File naming, sharding and temporary files are
`FileBasedSink`'s, as for WriteToTFRecord; `gs://` works the same.
"""

from __future__ import annotations

import struct
import zlib

from apache_beam import coders
from apache_beam.io.filebasedsink import FileBasedSink
from apache_beam.io.filesystem import CompressionTypes

GZIP_WBITS = 31  # zlib's deflate with a gzip header and trailer
STORED, FAST = 0, 1  # the two levels a file is written at
# A first record that level 1 shrinks by less than this is not worth compressing.
WORTH_COMPRESSING = 0.9
_SAMPLE_BYTES = 64 * 1024


def _crc32c_function():
    try:
        import google_crc32c  # C, with the CPU's CRC instruction: ~100x crcmod's speed

        if google_crc32c.implementation == "c":
            return google_crc32c.value
    except ImportError:
        pass
    import crcmod.predefined  # what Beam itself falls back to

    return crcmod.predefined.mkPredefinedCrcFun("crc-32c")


_crc32c = None


def masked_crc32c(data: bytes) -> int:
    """TFRecord's masked CRC-32C of `data`."""
    global _crc32c
    if _crc32c is None:
        _crc32c = _crc32c_function()
    crc = _crc32c(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def framed(record: bytes) -> bytes:
    """`record` as a TFRecord: length, the length's masked CRC, the data, its masked CRC."""
    length = struct.pack("<Q", len(record))
    return b"".join(
        (
            length,
            struct.pack("<I", masked_crc32c(length)),
            record,
            struct.pack("<I", masked_crc32c(record)),
        )
    )


def level_for(first_record: bytes) -> int:
    sample = first_record[:_SAMPLE_BYTES]
    return FAST if len(zlib.compress(sample, FAST)) < WORTH_COMPRESSING * len(sample) else STORED


class _GzipFile:
    """A gzip stream over a Beam file handle, its level chosen at its first write."""

    def __init__(self, raw, first_level: int | None = None):
        self._raw, self._compressor = raw, None
        self.level = first_level

    def write_record(self, record: bytes) -> None:
        if self._compressor is None:
            if self.level is None:
                self.level = level_for(record)
            self._compressor = zlib.compressobj(self.level, zlib.DEFLATED, GZIP_WBITS)
        self._raw.write(self._compressor.compress(framed(record)))

    def close(self) -> None:
        if self._compressor is None:  # no record: still an empty, valid gzip file
            self._compressor = zlib.compressobj(STORED, zlib.DEFLATED, GZIP_WBITS)
        try:
            self._raw.write(self._compressor.flush())
        finally:
            self._raw.close()


class GzipTFRecordSink(FileBasedSink):
    """Gzipped TFRecord files (`<prefix>-SSSSS-of-NNNNN<suffix>`), each at the level its first
    record fits (see the module's docstring)."""

    def __init__(self, file_path_prefix: str, file_name_suffix: str, num_shards: int = 0):
        super().__init__(
            file_path_prefix,
            coder=coders.BytesCoder(),
            file_name_suffix=file_name_suffix,
            num_shards=num_shards,
            mime_type="application/octet-stream",
            # The bytes are gzipped here, at our level: Beam must write them as they are.
            compression_type=CompressionTypes.UNCOMPRESSED,
        )

    def open(self, temp_path):
        return _GzipFile(super().open(temp_path))

    def write_encoded_record(self, file_handle, encoded_value):
        file_handle.write_record(encoded_value)
