"""Named points where a test stops a run with a signal, to prove what a stopped run leaves.

`IMAGE_AUGMENT_KILLPOINT=<point>:<SIGNAL>[:<file>]` (e.g. `before-publish:SIGKILL`) makes the
process that reaches <point> send <SIGNAL> to its whole process group (the run and Beam's
worker processes, when the test started the run in a session of its own), then wait there for
the signal to take effect; with <file>, it first appends the time (time.time()) to that file, so
a test can tell how long the run took to end. Only tests set it; unset, a point costs one
dictionary lookup.

The points, in the order a run reaches them:
  augment-batch   a batch of copies is being augmented (inside the Beam run: in the launcher
                  with the in-memory DirectRunner, in a worker process with multi-processing)
  beam-finished   the Beam run has finished; its counts are not yet checked
  model-export    the SavedModel is written, the preview not yet
  before-publish  the staged output is complete (marker included); nothing is published
  before-marker   (executor) the output is moved into the artifact folder; no marker yet
  after-publish   the output is published; the old one is not yet deleted
"""

from __future__ import annotations

import os
import signal
import time

KILLPOINT_ENV = "IMAGE_AUGMENT_KILLPOINT"
_WAIT_SECONDS = 60.0  # the signal acts long before; the wait only keeps the point in place


def killpoint(name: str) -> None:
    """Sends the signal that `IMAGE_AUGMENT_KILLPOINT` names when it names `name`."""
    spec = os.environ.get(KILLPOINT_ENV)
    if not spec:
        return
    point, _, rest = spec.partition(":")
    if point != name:
        return
    signal_name, _, fired_file = rest.partition(":")
    if fired_file:
        with open(fired_file, "a") as handle:
            handle.write(f"{time.time()}\n")
    os.killpg(os.getpgrp(), getattr(signal, signal_name or "SIGKILL"))
    time.sleep(_WAIT_SECONDS)
