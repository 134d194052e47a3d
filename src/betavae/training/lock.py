"""One writer per run folder: an OS file lock on RUN/.lock, held while a process trains the run. The OS releases it
when that process ends, however it ends (kill -9 included), so a dead run never leaves a stale lock behind."""

from __future__ import annotations

import fcntl
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import BetaVAEError

LOCK = ".lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run folder's lock for the duration, or refuse at once, naming the process that holds it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    stream = open(run_dir / LOCK, "a+")
    try:
        fcntl.flock(stream, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        stream.seek(0)
        holder = stream.read().strip() or "unknown"
        stream.close()
        raise BetaVAEError(f"{run_dir} is being trained by process {holder}; wait for it to end (or stop it: "
                           f"kill {holder}), then run the command again") from None
    try:
        stream.seek(0)
        stream.truncate()
        stream.write(str(os.getpid()))
        stream.flush()
        yield
    finally:
        stream.close()  # closing the file releases the lock
