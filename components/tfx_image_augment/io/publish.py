"""Staging and publishing output folders: a reader finds a run's output whole or not at all.

A run never writes into its output folder. It writes into a staging folder and publishes it
only when everything (data, quarantine, model, summary) is complete and every check passed; the
completion marker (`completion.MARKER_FILE`) is the last file written.

The CLI's output folder (`StagedOutput`):
- Local filesystems: the staging folder is a hidden sibling, `.<name>.staging-<token>-<pid>-
  <host>`, so publishing is a rename on one filesystem. The marker is written inside it first,
  then one `renameat2(RENAME_EXCHANGE)` swaps it with the old output (Linux): at every instant
  the folder is the old complete output or the new one. Where that call is missing, the old
  output is renamed aside first: for a moment the folder is absent, never mixed.
- One run at a time per output folder (local): a run holds an flock on `.<name>.lock` beside the
  output for its whole life (the lock file is deleted when it ends; a killed run's stays, not
  held). A second run into the same folder fails at once. A staging folder beside the output is
  stale exactly when nobody holds that lock: the run that takes it deletes them all (whatever
  process, PID namespace or host made them).
- `--overwrite` replaces a folder only if image-augment's completion marker lists everything in
  it, recursively (completion.foreign_path): a file anyone else put anywhere in it, or changed,
  refuses the run, naming it.
- Remote filesystems (gs://, s3://, ...: any path with a scheme): object stores cannot rename a
  folder atomically. Publishing deletes the old output's marker, then the old output, moves the
  staging folder into place object by object (TensorFlow's rename) and writes the marker last.
  What holds there: a folder with a marker holds every file the marker lists; until the marker
  is written the reader refuses the folder. Before the old marker goes, `_PUBLISHING` is
  written there: it lists the old and the new contents, so a run stopped while publishing
  leaves a folder without a marker, which readers refuse and `--overwrite` still knows as
  ours and replaces; the old output is gone. No lock there (object stores have none): two runs
  into one gs:// folder are not kept apart, and the stale staging sweep goes by process id and
  host, as before.

The TFX executor's artifact folders (`clear_folder`, `move_children`): the folder belongs to one
execution, so anything already in it is stale (a retried execution's leftovers): it is cleared,
marker first; the run writes into a staging folder inside it, its contents are moved into place
and the marker is written last. Readers trust the marker alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import secrets
import shutil
import socket

from tfx_image_augment.core.lazy import tf
from tfx_image_augment.io import failures
from tfx_image_augment.io.completion import (
    BEAM_TEMP_PREFIX,
    CONTENTS_KEY,
    MARKER_FILE,
    MARKER_FORMAT,
    PENDING_FILE,
    QUARANTINE_DIR,
    STAGING_INFIX,
    foreign_path,
    list_contents,
    read_marker,
    write_marker,
)
from tfx_image_augment.io.inputs import (
    GLOB_CHARACTERS,
    absolute_pattern,
    could_match,
    is_remote,
    real_pattern,
)
from tfx_image_augment.io.killpoints import killpoint

QUARANTINE_SUFFIX = ".quarantine"  # where the CLI keeps a failed run's quarantine
LOCK_SUFFIX = ".lock"  # `.<name>.lock` beside the output: held by the run writing it


class OutputFolderError(ValueError):
    """The output folder cannot be used as asked; the message is one sentence naming it."""


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def normalize_output(path: str) -> str:
    """The output folder as written, without trailing slashes; an empty one is an error."""
    stripped = path.strip()
    if not stripped:
        raise OutputFolderError("--output is empty: name the folder to write, e.g. out/")
    wildcards = [c for c in GLOB_CHARACTERS if c in stripped]
    if wildcards:
        raise OutputFolderError(
            f"--output {stripped} holds {wildcards[0]!r}, which Beam reads as a glob character: "
            "name the folder without *, ? or [."
        )
    if is_local(stripped):
        return os.path.normpath(stripped.removeprefix("file://"))
    return stripped.rstrip("/")


def _exists(path: str) -> bool:
    return os.path.lexists(path) if is_local(path) else tf.io.gfile.exists(path)


def _isdir(path: str) -> bool:
    return os.path.isdir(path) if is_local(path) else tf.io.gfile.isdir(path)


def _listdir(path: str) -> list[str]:
    if is_local(path):
        return sorted(os.listdir(path))
    return sorted(entry.rstrip("/") for entry in tf.io.gfile.listdir(path))


def remove_tree(path: str) -> None:
    """Deletes `path` (a folder or a file) if it is there."""
    if is_local(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)
    elif tf.io.gfile.exists(path):
        if tf.io.gfile.isdir(path):
            tf.io.gfile.rmtree(path)
        else:
            tf.io.gfile.remove(path)


def _rename(source: str, target: str) -> None:
    if is_local(source):
        os.rename(source, target)
    else:
        tf.io.gfile.rename(source, target)


def _exchange(first: str, second: str) -> None:
    """Swaps two local paths in one step (Linux renameat2 RENAME_EXCHANGE); OSError where the
    system or the filesystem cannot."""
    libc = ctypes.CDLL(None, use_errno=True)
    renameat2 = getattr(libc, "renameat2", None)
    if renameat2 is None:
        raise OSError(errno.ENOSYS, "renameat2 is not available")
    at_fdcwd, rename_exchange = -100, 2
    if renameat2(at_fdcwd, os.fsencode(first), at_fdcwd, os.fsencode(second), rename_exchange):
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code), first, None, second)


class OutputLock:
    """An exclusive flock on a lock file, held while the process keeps it (a killed process
    releases it); local filesystems only."""

    def __init__(self, path: str):
        self.path = path
        self._fd: int | None = None

    def acquire(self) -> bool:
        """Takes the lock at once; False when another process holds it."""
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            # Its last holder may have deleted the file after we opened it: a lock on a
            # deleted file keeps nobody out, so take the one now at the path instead.
            try:
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            mine = os.fstat(fd)
            if current and (current.st_dev, current.st_ino) == (mine.st_dev, mine.st_ino):
                self._fd = fd
                return True
            os.close(fd)

    def release(self) -> None:
        """Deletes the lock file, then lets the lock go. Idempotent."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        with contextlib.suppress(OSError):
            os.remove(self.path)
        with contextlib.suppress(OSError):
            os.close(fd)


def _process_is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # someone else's process: alive
        return False
    return False


def _host() -> str:
    return "".join(c for c in socket.gethostname() if c.isalnum() or c in ".-") or "host"


class StagedOutput:
    """The CLI's output folder: checked, written in a staging folder, published when whole.

    target = StagedOutput("out/x", overwrite=False, data_prefix="data_tfrecord")
    target.prepare()              # checks the folder, creates target.staging
    ... write everything into target.staging ...
    target.publish(marker)        # the marker goes in last, then the folder is replaced
    target.discard()              # always (finally): removes what is left of staging
    """

    def __init__(self, output: str, overwrite: bool, data_prefix: str):
        self.output = normalize_output(output)
        self.overwrite = overwrite
        self.local = is_local(self.output)
        self._data_prefix = data_prefix
        self.parent, self.name = os.path.split(self.output)
        if self.local and not self.parent:
            self.parent = os.curdir  # `--output out/`: a folder of the working directory
        if (
            not self.name
            or self.name in (".", "..")
            or (not self.local and "://" not in self.parent)
        ):
            raise OutputFolderError(
                f"--output {output!r} names no folder of its own: give e.g. {output.rstrip('/')}"
                "/augmented"
            )
        self._prefix = f".{self.name}{STAGING_INFIX}"
        self.staging = self._new_staging_path()
        self.published = False
        self._leftovers: list[str] = []
        self._lock = OutputLock(os.path.join(self.parent, f".{self.name}{LOCK_SUFFIX}"))

    def _new_staging_path(self) -> str:
        token = secrets.token_hex(4)
        return os.path.join(self.parent, f"{self._prefix}{token}-{os.getpid()}-{_host()}")

    # -- checks --------------------------------------------------------------------------------

    def check(self) -> None:
        """Raises OutputFolderError unless the output may be written: absent, an empty folder,
        or (with overwrite) a folder whose completion marker lists everything in it."""
        if self.local and os.path.islink(self.output):
            raise OutputFolderError(
                f"--output {self.output} is a symbolic link: name the folder it points to, "
                f"{os.path.realpath(self.output)}, or another folder."
            )
        if not _exists(self.output):
            return
        if not _isdir(self.output):
            raise OutputFolderError(f"--output {self.output} is a file, not a folder.")
        if not _listdir(self.output):
            return
        if not self.overwrite:
            raise OutputFolderError(
                f"--output {self.output} already holds files; pass --overwrite to replace it "
                "whole, or choose another folder."
            )
        foreign = foreign_path(self.output)
        if foreign:
            raise OutputFolderError(
                f"--output {self.output} holds files that image-augment did not write (e.g. "
                f"{foreign!r}); --overwrite replaces only an image-augment output folder."
            )

    def _resolved(self, path: str) -> str:
        """`path` (beside or inside the output) with the output's parent folder resolved."""
        if not self.local:
            return path
        parent = os.path.realpath(self.parent or ".")
        return os.path.join(parent, os.path.relpath(path, self.parent or "."))

    def check_input(self, pattern: str, files: list[str]) -> None:
        """Raises OutputFolderError when the run would read what it writes: when the input
        glob `pattern` can match the output folder (or anything in it), its staging folder,
        lock file or kept quarantine, or when the output folder holds an input file (`files`,
        what the glob matches). Symbolic links in the folders are resolved on both sides."""
        pattern = absolute_pattern(pattern)
        real = real_pattern(pattern)
        places = [self.output, self.staging, self._lock.path, self.kept_quarantine]
        for place in places:
            resolved = self._resolved(os.path.abspath(place) if self.local else place)
            if could_match(real, resolved):
                raise OutputFolderError(
                    f"--input {pattern!r} would also read what the run writes ({place}): "
                    "write --output outside the folders the input glob reads."
                )
        output = self._resolved(os.path.abspath(self.output) if self.local else self.output)
        for path in files:
            resolved = os.path.realpath(path) if not is_remote(path) else path
            if resolved.startswith(output.rstrip("/") + "/"):
                raise OutputFolderError(
                    f"--output {self.output} holds the input file {path}: an input folder is "
                    "never an output; choose another folder."
                )

    def _sweep_stale_staging(self) -> None:
        """Deletes the staging folders of earlier runs into this output. Locally the caller
        holds the output's lock, so none of them belongs to a live run. Remotely (no lock),
        those whose process is gone, on this host."""
        for entry in _listdir(self.parent):
            if not entry.startswith(self._prefix):
                continue
            if not self.local:
                _, pid, host = (entry[len(self._prefix) :].split("-", 2) + ["", ""])[:3]
                if not (host == _host() and pid.isdigit() and _process_is_gone(int(pid))):
                    continue
            with contextlib.suppress(OSError, tf.errors.OpError):
                remove_tree(os.path.join(self.parent, entry))

    def prepare(self) -> None:
        """Checks the output folder, takes its lock (local) and creates the staging folder
        beside it; on failure, nothing is held."""
        self.check()
        failures.note_writing(self.staging, self.output)
        try:
            self._prepare()
        except BaseException:
            self._lock.release()
            raise

    def _prepare(self) -> None:
        try:
            if self.local:
                os.makedirs(self.parent or ".", exist_ok=True)
                if not self._lock.acquire():
                    raise OutputFolderError(
                        f"another run is writing {self.output} (it holds {self._lock.path}); "
                        "wait for it to end, or choose another folder."
                    )
                self.check()  # again, under the lock: a run may have published meanwhile
                self._sweep_stale_staging()
                os.mkdir(self.staging)
            else:
                tf.io.gfile.makedirs(self.parent)
                self._sweep_stale_staging()
                tf.io.gfile.makedirs(self.staging)
        except FileExistsError as err:  # makedirs met a file where a folder must be
            raise OutputFolderError(
                f"cannot write --output {self.output}: {err.filename} is a file, not a folder."
            ) from None
        except OSError as err:
            raise OutputFolderError(
                f"cannot write --output {self.output}: {err.strerror or err} "
                f"({err.filename or self.parent})."
            ) from None
        except tf.errors.OpError as err:
            raise OutputFolderError(
                f"cannot write --output {self.output}: {err.message.splitlines()[0]}."
            ) from None

    # -- publishing ----------------------------------------------------------------------------

    def publish(self, marker: dict) -> None:
        """Makes the staged output the output folder; the marker is its last file."""
        # Checked again: another run may have published into the folder meanwhile.
        self.check()
        if self.local:
            self._publish_local(marker)
        else:
            self._publish_remote(marker)
        self.published = True
        killpoint("after-publish")

    def _publish_local(self, marker: dict) -> None:
        write_marker(self.staging, marker)
        killpoint("before-publish")
        if os.path.isdir(self.output) and os.listdir(self.output):
            try:
                _exchange(self.staging, self.output)
            except OSError:  # not Linux, or a filesystem without exchange: old output aside
                aside = self._new_staging_path()
                os.rename(self.output, aside)
                try:
                    os.rename(self.staging, self.output)
                except OSError:
                    os.rename(aside, self.output)  # the old output back, as it was
                    raise
                self._leftovers.append(aside)
            # else: the staging path now holds the old output, which discard() deletes
        else:
            os.rename(self.staging, self.output)

    def _publish_remote(self, marker: dict) -> None:
        marker = {**marker, CONTENTS_KEY: list_contents(self.staging)}
        killpoint("before-publish")
        if tf.io.gfile.exists(self.output):
            # What may be in the folder from here until the marker: the old and the new
            # contents, so a run stopped meanwhile leaves a folder --overwrite knows as ours.
            previous = (read_marker(self.output) or {}).get(CONTENTS_KEY)
            pending = {"format": MARKER_FORMAT, CONTENTS_KEY: marker[CONTENTS_KEY]}
            if previous:
                pending["previous"] = previous
            write_marker(self.output, pending, PENDING_FILE)
            # The old marker goes first: from here on readers refuse the folder.
            remove_tree(os.path.join(self.output, MARKER_FILE))
            for entry in _listdir(self.output):
                if entry != PENDING_FILE:
                    remove_tree(os.path.join(self.output, entry))
            move_children(self.staging, self.output)
        else:
            _rename(self.staging, self.output)
        killpoint("before-marker")
        write_marker(self.output, marker)
        remove_tree(os.path.join(self.output, PENDING_FILE))

    @property
    def kept_quarantine(self) -> str:
        """Where a failed run's quarantine is kept: beside the output folder, which it leaves
        as it was, as `<output>.quarantine` (replacing that of an earlier failed run)."""
        return self.output + QUARANTINE_SUFFIX

    def keep_quarantine(self) -> bool:
        """Moves the staged quarantine to `kept_quarantine`; False when there is none, or when
        that place holds something other than a quarantine."""
        source, target = os.path.join(self.staging, QUARANTINE_DIR), self.kept_quarantine
        if not _exists(source):
            return False
        if _exists(target):
            if not _is_kept_quarantine(target):
                return False
            remove_tree(target)
        _rename(source, target)
        return True

    def discard(self) -> None:
        """Deletes the staging folder (after publishing: the replaced old output), then lets
        the output's lock go. Idempotent; errors are ignored, as a later run sweeps what is
        left."""
        for path in [self.staging, *self._leftovers]:
            with contextlib.suppress(OSError, tf.errors.OpError):
                remove_tree(path)
        self._lock.release()


def _is_kept_quarantine(folder: str) -> bool:
    """Whether `folder` holds only what a kept quarantine holds: `Split-*` folders of
    quarantine shards."""
    if not _isdir(folder):
        return False
    for split in _listdir(folder):
        path = os.path.join(folder, split)
        if not split.startswith("Split-") or not _isdir(path):
            return False
        for entry in _listdir(path):
            if not entry.startswith("quarantine_tfrecord") or _isdir(os.path.join(path, entry)):
                return False
    return True


# -- the TFX executor's artifact folders -------------------------------------------------------


def clear_folder(folder: str) -> None:
    """Empties `folder` (creating it if needed), its completion marker first, so a marker
    never vouches for a folder being emptied or refilled."""
    tf.io.gfile.makedirs(folder)
    remove_tree(os.path.join(folder, MARKER_FILE))
    for entry in _listdir(folder):
        remove_tree(os.path.join(folder, entry))


def new_staging_folder(folder: str) -> str:
    """A fresh staging folder inside `folder`."""
    staging = os.path.join(folder, f"{STAGING_INFIX}{secrets.token_hex(4)}")
    tf.io.gfile.makedirs(staging)
    return staging


def remove_beam_temp(folder: str) -> None:
    """Deletes Beam's temporary folders (`beam-temp-*`) anywhere under `folder`. Beam deletes
    them when a write finishes; this makes sure none is published."""
    for directory, subdirs, _ in list(tf.io.gfile.walk(folder)):
        for subdir in subdirs:
            if subdir.rstrip("/").startswith(BEAM_TEMP_PREFIX):
                remove_tree(os.path.join(directory, subdir.rstrip("/")))


def move_children(staging: str, folder: str, only: list[str] | None = None) -> None:
    """Moves the entries of `staging` (all, or those named in `only` that are there) into
    `folder`, where none of them exists; then deletes `staging`. Each move is a rename:
    atomic per entry on a local filesystem."""
    for entry in _listdir(staging):
        if only is None or entry in only:
            _rename(os.path.join(staging, entry), os.path.join(folder, entry))
    remove_tree(staging)


# -- the preview's contact sheet ---------------------------------------------------------------

SHEET_FORMATS = {".png": "png", ".jpg": "jpeg", ".jpeg": "jpeg"}


def check_sheet_output(path: str, overwrite: bool, input_files: list[str]) -> str:
    """The image format ("png" or "jpeg") that the suffix of `path` names; OutputFolderError
    (one sentence) for another suffix, for an existing file without `overwrite`, and for an
    input file of the run (never overwritten)."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in SHEET_FORMATS:
        raise OutputFolderError(
            f"--output {path}: name a .png, .jpg or .jpeg file (its suffix decides the format)."
        )
    if not _exists(path):
        return SHEET_FORMATS[suffix]
    resolved = os.path.realpath(path) if is_local(path) else path
    for input_file in input_files:
        if (os.path.realpath(input_file) if is_local(input_file) else input_file) == resolved:
            raise OutputFolderError(f"--output {path} is an input file of this preview.")
    if not overwrite:
        raise OutputFolderError(
            f"--output {path} already exists; pass --overwrite to replace it, or choose "
            "another file."
        )
    return SHEET_FORMATS[suffix]


def write_sheet(path: str, sheet, image_format: str) -> None:
    """Writes the uint8 RGB `sheet` to `path` as `image_format` ("png" or "jpeg"), whole: into
    a temporary file beside it, then renamed over it (locally; elsewhere written in place)."""
    if image_format == "jpeg":
        data = tf.io.encode_jpeg(sheet, quality=95).numpy()
    else:
        data = tf.io.encode_png(sheet).numpy()
    folder = os.path.dirname(path)
    if folder:
        tf.io.gfile.makedirs(folder)
    if not is_local(path):
        with tf.io.gfile.GFile(path, "wb") as handle:
            handle.write(data)
        return
    local = path.removeprefix("file://")
    temporary = os.path.join(os.path.dirname(local), f".{os.path.basename(local)}.{os.getpid()}")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
        os.replace(temporary, local)
    finally:
        with contextlib.suppress(OSError):
            os.remove(temporary)
