"""Input globs, resolved and read the same way by the CLI, the TFX executor and Beam.

- `absolute_pattern`: a relative local glob becomes an absolute one, once, before anything
  reads it (Beam and TensorFlow then agree on what it matches, whatever the working folder).
  gs:// and other remote globs are left as they are.
- `refuse_special_file`: a FIFO, socket or device matched by the input glob is refused with one
  sentence (reading a FIFO blocks until someone writes to it: the run hung before printing
  anything).
- `read_tfrecords`: Beam's read of a glob, each file with the compression its first bytes name
  (records.compression_of), not its suffix.

Needs TensorFlow only, except `read_tfrecords`, which imports Beam when called.
"""

from __future__ import annotations

import os
import stat
from concurrent.futures import ThreadPoolExecutor


def is_remote(path: str) -> bool:
    return "://" in path and not path.startswith("file://")


def absolute_pattern(pattern: str) -> str:
    """`pattern` with a relative local path made absolute (from the working folder); a remote
    (gs://...) or file:// pattern unchanged."""
    if "://" in pattern or not pattern:
        return pattern
    return os.path.abspath(pattern)


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def refuse_special_file(path: str, what: str = "--input") -> None:
    """ValueError (one sentence) when the local file `path` is not a regular file (a FIFO,
    socket or device); folders and remote paths are left to the caller. Never opens `path`."""
    if is_remote(path):
        return
    try:
        mode = os.stat(path.removeprefix("file://")).st_mode
    except OSError:
        return  # gone or unreadable: the caller's read says why
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        raise ValueError(
            f"{what} matches {path}, which is {_kind(mode)}: only regular files can be read as "
            "TFRecord files."
        )


def refuse_special_files(pattern: str, what: str) -> None:
    """`refuse_special_file` for every file the glob `pattern` matches."""
    import tensorflow as tf

    if is_remote(pattern):
        return
    for path in sorted(tf.io.gfile.glob(pattern)):
        refuse_special_file(path, what)


def compressions(files: list[str]) -> dict[str, str]:
    """{file: its compression_type} read from each file's first bytes (in parallel: on gs://
    each is a request)."""
    from tfx_image_augment.records import compression_of

    if len(files) <= 1:
        return {path: compression_of(path) for path in files}
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        return dict(zip(files, pool.map(compression_of, files), strict=True))


def read_tfrecords(pbegin, label: str, pattern: str):
    """The records of the TFRecord files `pattern` matches, as a Beam PCollection of bytes.

    Each file is read with the compression its first bytes name. Files of one kind (the usual
    case) are read as Beam's ReadFromTFRecord of the pattern itself; a glob matching both
    gzipped and plain files is read as one ReadAllFromTFRecord per kind, flattened."""
    import apache_beam as beam
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
