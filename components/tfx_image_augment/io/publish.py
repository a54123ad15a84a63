"""Staging and publishing output folders: a reader finds a run's output whole or not at all.

A run never writes into its output folder. It writes into a staging folder and publishes it
only when everything (data, quarantine, model, summary) is complete and every check passed; the
completion marker (`completion.MARKER_FILE`) is the last file written.

The CLI's output folder (`StagedOutput`):
- Local filesystems: the staging folder is a hidden sibling, `.<name>.staging-<token>-<pid>-
  <host>`, so publishing is a rename on one filesystem. The marker is written inside it first,
  then one `renameat2(RENAME_EXCHANGE)` swaps it with the old output (Linux): at every instant
  the folder is the old complete output or the new one. Where that call is missing, the old
  output is renamed aside first: for a moment the folder is absent, never mixed. A staging
  folder left by a killed run is deleted by the next run into the same folder (when its process
  is gone).
- Remote filesystems (gs://, s3://, ...: any path with a scheme): object stores cannot rename a
  folder atomically. Publishing deletes the old output's marker, then the old output, moves the
  staging folder into place object by object (TensorFlow's rename) and writes the marker last.
  What holds there: a folder with a marker holds every file the marker lists; until the marker
  is written the reader refuses the folder. A run stopped while publishing leaves a folder
  without a marker, which readers refuse and `--overwrite` replaces; the old output is gone.

The TFX executor's artifact folders (`clear_folder`, `move_children`): the folder belongs to one
execution, so anything already in it is stale (a retried execution's leftovers): it is cleared,
marker first; the run writes into a staging folder inside it, its contents are moved into place
and the marker is written last. Readers trust the marker alone.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import secrets
import shutil
import socket

import tensorflow as tf

from tfx_image_augment.io.completion import (
    BEAM_TEMP_PREFIX,
    MARKER_FILE,
    QUARANTINE_DIR,
    STAGING_INFIX,
    is_image_augment_entry,
    write_marker,
)
from tfx_image_augment.io.killpoints import killpoint

QUARANTINE_SUFFIX = ".quarantine"  # where the CLI keeps a failed run's quarantine


class OutputFolderError(ValueError):
    """The output folder cannot be used as asked; the message is one sentence naming it."""


def is_local(path: str) -> bool:
    return "://" not in path or path.startswith("file://")


def normalize_output(path: str) -> str:
    """The output folder as written, without trailing slashes; an empty one is an error."""
    stripped = path.strip()
    if not stripped:
        raise OutputFolderError("--output is empty: name the folder to write, e.g. out/")
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

    def _new_staging_path(self) -> str:
        token = secrets.token_hex(4)
        return os.path.join(self.parent, f"{self._prefix}{token}-{os.getpid()}-{_host()}")

    # -- checks --------------------------------------------------------------------------------

    def _foreign_entries(self) -> list[str]:
        return [
            entry
            for entry in _listdir(self.output)
            if not (is_image_augment_entry(entry) or entry.startswith(self._data_prefix))
        ]

    def check(self) -> None:
        """Raises OutputFolderError unless the output may be written: absent, an empty folder,
        or (with overwrite) a folder holding only what image-augment writes."""
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
        foreign = self._foreign_entries()
        if foreign:
            raise OutputFolderError(
                f"--output {self.output} holds files that image-augment did not write (e.g. "
                f"{foreign[0]!r}); --overwrite replaces only an image-augment output folder."
            )

    def _sweep_stale_staging(self) -> None:
        """Deletes the staging folders of earlier runs into this output whose process is gone
        (a killed run's); those of live runs, and of other hosts, stay."""
        for entry in _listdir(self.parent):
            if not entry.startswith(self._prefix):
                continue
            _, pid, host = (entry[len(self._prefix) :].split("-", 2) + ["", ""])[:3]
            if host == _host() and pid.isdigit() and _process_is_gone(int(pid)):
                with contextlib.suppress(OSError, tf.errors.OpError):
                    remove_tree(os.path.join(self.parent, entry))

    def prepare(self) -> None:
        """Checks the output folder and creates the staging folder beside it."""
        self.check()
        try:
            if self.local:
                os.makedirs(self.parent or ".", exist_ok=True)
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
        killpoint("before-publish")
        if tf.io.gfile.exists(self.output):
            # The old marker goes first: from here on readers refuse the folder.
            remove_tree(os.path.join(self.output, MARKER_FILE))
            remove_tree(self.output)
        _rename(self.staging, self.output)
        killpoint("before-marker")
        write_marker(self.output, marker)

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
            if not _isdir(target) or any(not e.startswith("Split-") for e in _listdir(target)):
                return False
            remove_tree(target)
        _rename(source, target)
        return True

    def discard(self) -> None:
        """Deletes the staging folder (after publishing: the replaced old output). Idempotent;
        errors are ignored, as a later run sweeps what is left."""
        for path in [self.staging, *self._leftovers]:
            with contextlib.suppress(OSError, tf.errors.OpError):
                remove_tree(path)


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
