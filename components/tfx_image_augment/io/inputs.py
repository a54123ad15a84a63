"""Input globs, resolved and read the same way by the CLI, the TFX executor and Beam.

- `absolute_pattern`: a relative local glob becomes an absolute one, once, before anything
  reads it (Beam and TensorFlow then agree on what it matches, whatever the working folder).
  gs:// and other remote globs are left as they are.
- `refuse_special_file`: a FIFO, socket or device matched by the input glob is refused with one
  sentence (reading a FIFO blocks until someone writes to it: the run hung before printing
  anything).
- `could_match`: whether a glob may match a path or anything under it, by TensorFlow's rules
  (`*`, `?` and `[...]` within one path component), so an output that the input glob would read
  is refused before the run.
(The Beam read of a glob, each file with the compression its first bytes name, is
`offline.beam.transforms.read_tfrecords`.) Needs TensorFlow only.
"""

from __future__ import annotations

import fnmatch
import os
import stat
from concurrent.futures import ThreadPoolExecutor

GLOB_CHARACTERS = "*?["


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


def _components(path: str) -> list[str]:
    scheme, sep, rest = path.partition("://")
    if not sep:
        scheme, rest = "", path
    parts = [part for part in rest.split("/") if part not in ("", ".")]
    return ([scheme + "://"] if sep else ["/"] if path.startswith("/") else []) + parts


def could_match(pattern: str, path: str) -> bool:
    """Whether the glob `pattern` matches `path` or something under it (both absolute, or both
    with the same scheme). Component by component, as TensorFlow and Beam match: `*` and `?`
    never cross a `/`, and match a leading dot too."""
    wanted, have = _components(pattern), _components(path)
    if len(wanted) < len(have):
        return False
    return all(fnmatch.fnmatchcase(part, glob) for part, glob in zip(have, wanted, strict=False))


def glob_prefix(pattern: str) -> str:
    """The folder part of `pattern` before its first glob character (a path to resolve)."""
    cut = min((pattern.find(c) for c in GLOB_CHARACTERS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    return head if head.endswith("/") or cut == len(pattern) else os.path.dirname(head)


def real_pattern(pattern: str) -> str:
    """A local `pattern` with the symbolic links of its folder part resolved, so it compares
    with resolved paths; a remote one unchanged."""
    if is_remote(pattern):
        return pattern
    local = pattern.removeprefix("file://")
    prefix = glob_prefix(local).rstrip("/")
    if not prefix:
        return local
    return os.path.realpath(prefix) + local[len(prefix) :]


def compressions(files: list[str]) -> dict[str, str]:
    """{file: its compression_type} read from each file's first bytes (in parallel: on gs://
    each is a request)."""
    from tfx_image_augment.io.records import compression_of

    if len(files) <= 1:
        return {path: compression_of(path) for path in files}
    with ThreadPoolExecutor(max_workers=min(16, len(files))) as pool:
        return dict(zip(files, pool.map(compression_of, files), strict=True))
