"""Progress of an offline run: how much of the input is done, the rate, and an ETA.

The input's size is known before the run, from its files: the bytes of its TFRecords (a gzipped
file's trailer gives its uncompressed size) or the number of images in a folder. Workers count
the examples of augmented splits they finish (quarantined, or their copies written: with those
examples' record bytes) and the copies they write.

On a local runner (the DirectRunner, in any mode) each DoFn instance writes its counts to a
small file in a folder the launcher watches: `ProgressMonitor` sums them and shows a bar on a
terminal (tqdm) or a plain line every LOG_SECONDS in a log. Workers elsewhere (Dataflow)
cannot reach that folder: they log their own counts instead, and the runner's console shows
the job's progress.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import sys
import tempfile
import threading
import time
import uuid

from tfx_image_augment.io.folders import ImageFolder

# A TFRecord's frame around its data: length (8), the length's CRC (4), the data's CRC (4).
RECORD_FRAME_BYTES = 16
BYTES, EXAMPLES = "bytes", "examples"
COUNTS = ("examples", "bytes", "copies")  # what a worker counts (BYTES and EXAMPLES among them)


# Deflate expands nothing by more than ~1032x: a gzip file smaller than this holds less than 4 GiB,
# so its trailer's size (modulo 2**32) is the whole size.
_EXACT_TRAILER_BELOW = 2**32 // 1032


def _file_sizes(pattern: str) -> list[tuple[str, int]]:
    from apache_beam.io.filesystems import FileSystems

    matched = FileSystems.match([pattern])[0].metadata_list
    # Folders a local glob matches are not read (as `transforms.read_tfrecords` skips them).
    return [(m.path, m.size_in_bytes) for m in matched if not os.path.isdir(m.path)]


def _uncompressed_size(path: str, size: int) -> int | None:
    """A local gzip file's uncompressed size from its trailer (ISIZE: the size modulo 2**32,
    of the last member); None when that cannot be trusted (a file of 4 GiB or more whose
    trailer says less than half its size)."""
    if size < 18:  # not even a gzip header and trailer
        return None
    with open(path, "rb") as handle:
        handle.seek(size - 4)
        isize = int.from_bytes(handle.read(4), "little")
    if size < _EXACT_TRAILER_BELOW:
        return isize
    # Records of encoded images barely compress: a smaller "uncompressed" size is a wrapped one.
    return isize if isize >= size // 2 else None


def input_size(sources) -> tuple[int | None, str]:
    """(total, unit) of the inputs `sources` (file patterns or ImageFolders): record bytes of
    TFRecords, or images of a folder; total None when a size cannot be known. Remote files
    are not sized: telling gzipped ones from plain ones, and reading their trailers, would cost
    requests per file before the run starts."""
    from tfx_image_augment.io.inputs import compressions, is_remote

    if any(isinstance(source, ImageFolder) for source in sources):
        if not all(isinstance(source, ImageFolder) for source in sources):
            return None, EXAMPLES
        return sum(len(source.files) for source in sources), EXAMPLES
    if any(is_remote(pattern) for pattern in sources):
        return None, BYTES
    total = 0
    for pattern in sources:
        sizes = _file_sizes(pattern)
        kinds = compressions([path for path, _ in sizes])
        for path, size in sizes:
            if kinds.get(path) == "GZIP":
                size = _uncompressed_size(path, size)
                if size is None:
                    return None, BYTES
            total += size
    return total, BYTES


def safe_input_size(sources) -> tuple[int | None, str]:
    """`input_size`, or no total when finding it fails: progress is never a reason to fail."""
    try:
        return input_size(sources)
    except Exception:  # noqa: BLE001 (a listing or permission error: the run reports its own)
        unit = EXAMPLES if any(isinstance(s, ImageFolder) for s in sources) else BYTES
        return None, unit


class WorkerProgress:
    """One DoFn instance's counts: written to `folder` (local runners) at most once a
    second, or logged by the worker every LOG_SECONDS when there is no folder."""

    WRITE_SECONDS = 1.0
    LOG_SECONDS = 10.0

    def __init__(self, folder: str | None, split: str):
        self._split = split
        self._clock = time.monotonic
        self._start = self._last = self._clock()
        self._path = None
        if folder is not None:
            self._path = os.path.join(folder, f"{split}-{os.getpid()}-{uuid.uuid4().hex}.json")
        self.counts = dict.fromkeys(COUNTS, 0)

    def finished(self, record_bytes: int, copies: int = 0) -> None:
        """One example is done: quarantined, or its copies written."""
        self.counts["examples"] += 1
        self.counts["bytes"] += record_bytes + RECORD_FRAME_BYTES
        self.counts["copies"] += copies
        self._tick()

    def wrote(self, copies: int) -> None:
        """Copies written apart from their examples (mixing policies make them later)."""
        self.counts["copies"] += copies
        self._tick()

    def _tick(self) -> None:
        now = self._clock()
        every = self.WRITE_SECONDS if self._path else self.LOG_SECONDS
        if now - self._last >= every:
            self._last = now
            self.flush(now)

    def finish(self) -> None:
        """At the end of a bundle: the folder gets the last counts (a log waits its turn)."""
        if self._path is not None:
            self.flush()

    def flush(self, now: float | None = None) -> None:
        if self._path is None:
            if self.counts["copies"]:
                from tfx_image_augment import environment

                now = self._clock() if now is None else now
                environment.progress_logger().info(
                    "[%s] %d copies augmented by this worker (%.0f/s)",
                    self._split,
                    self.counts["copies"],
                    self.counts["copies"] / max(now - self._start, 1e-9),
                )
            return
        partial = f"{self._path}.tmp"
        try:
            with open(partial, "w") as handle:
                json.dump(self.counts, handle)
            os.replace(partial, self._path)
        except OSError:  # the run ended and its folder is gone: progress is no reason to fail
            pass


def read_counts(folder: str) -> dict[str, int]:
    """The sum of every worker's counts in `folder`."""
    total = dict.fromkeys(COUNTS, 0)
    try:
        names = os.listdir(folder)
    except OSError:
        return total
    for name in names:
        if not name.endswith(".json"):
            continue
        try:
            with open(os.path.join(folder, name)) as handle:
                counts = json.load(handle)
        except (OSError, ValueError):  # being replaced, or gone
            continue
        for key in total:
            total[key] += int(counts.get(key, 0))
    return total


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}"


def progress_line(
    counts: dict[str, int], total: int | None, unit: str, elapsed: float, final: bool = False
) -> str:
    """'1,234 examples done (31%), 4,936 copies written (812/s), ETA 0:00:42'; without a
    total, the counts and the rate only; with no time `elapsed` yet, the counts only; `final`:
    '... done (100%): 4,936 copies written in 0:00:06 (812/s)'."""
    done = counts[unit]
    line = f"{counts['examples']:,} examples done"
    if total:
        percent = min(done * 100 // total, 99 if done < total else 100)  # 100 only when done
        line += f" ({percent}%)"
    rate = counts["copies"] / elapsed if elapsed > 0 else 0.0
    if final:
        return (
            line + f": {counts['copies']:,} copies written in {_duration(elapsed)} ({rate:,.0f}/s)"
        )
    line += f", {counts['copies']:,} copies written"
    if elapsed > 0:
        line += f" ({rate:,.0f}/s)"
    if total and 0 < done < total and elapsed > 0:
        line += f", ETA {_duration(elapsed * (total - done) / done)}"
    return line


class ProgressMonitor:
    """Watches the workers' counts in its own temporary folder (`folder`, while entered) and
    reports them against `total`: a tqdm bar on a terminal (`terminal`, default: whether
    stderr is one), else a log line every LOG_SECONDS, and a last line when the run ends."""

    INTERVAL = 1.0
    LOG_SECONDS = 10.0

    def __init__(
        self, total: int | None, unit: str, log: logging.Logger, terminal: bool | None = None
    ):
        self.total, self.unit, self._log = total, unit, log
        self._terminal = sys.stderr.isatty() if terminal is None else terminal
        self.folder = None  # made on entering, removed on leaving
        self._stop = threading.Event()
        self._thread = None
        self._bar = None
        self._started = self._first_news = None

    def __enter__(self) -> ProgressMonitor:
        self.folder = tempfile.mkdtemp(prefix="image-augment-progress-")
        self._started = time.monotonic()
        if self._terminal:
            try:
                from tqdm import tqdm
            except ImportError:  # tqdm comes with the [beam] extra; plain lines without it
                tqdm = None
            if tqdm is not None:
                self._bar = tqdm(
                    total=self.total,
                    unit="B" if self.unit == BYTES else " examples",
                    unit_scale=self.unit == BYTES,
                    desc="augmenting",
                    file=sys.stderr,
                    leave=True,
                )
        self._thread = threading.Thread(target=self._watch, name="image-augment-progress")
        self._thread.daemon = True  # an interrupted run must not wait for it
        self._thread.start()
        return self

    def __exit__(self, kind, value, traceback) -> None:
        try:
            self._stop.set()
            if self._thread is not None:
                self._thread.join()
            if kind is None:
                self._report(final=True)
            if self._bar is not None:
                self._bar.close()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _watch(self) -> None:
        last_log = time.monotonic()
        while not self._stop.wait(self.INTERVAL):
            if self._bar is not None:
                self._report()
            elif time.monotonic() - last_log >= self.LOG_SECONDS:
                last_log = time.monotonic()
                self._report()
            elif self._first_news is None:
                self._news(read_counts(self.folder))  # the rate's start, to the second

    def _news(self, counts: dict[str, int]) -> bool:
        """Notes when the first example is done; True when that is now. While it runs, rates
        and the ETA count from then: Beam's and TensorFlow's start-up is behind the run by
        then. The last line counts it all."""
        if self._first_news is None and counts["examples"]:
            self._first_news = time.monotonic()
            return True
        return False

    def _report(self, final: bool = False) -> None:
        counts = read_counts(self.folder)
        # News seen only now has no time behind it yet: its line gives no rate (a rate over
        # microseconds read "585,797,130/s, ETA 0:00:00").
        just_started = self._news(counts) and not final
        since = self._started if final else (self._first_news or self._started)
        elapsed = 0.0 if just_started else time.monotonic() - since
        if self._bar is not None:
            self._bar.n = counts[self.unit]
            self._bar.set_postfix_str(f"{counts['copies']:,} copies", refresh=False)
            self._bar.refresh()
            return
        if counts["examples"] or final:
            self._log.info("%s", progress_line(counts, self.total, self.unit, elapsed, final))
