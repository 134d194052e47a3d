"""One writer per run folder: an OS lock (flock) on the run folder itself, held while a process trains the run. The OS
releases it when that process ends, however it ends (kill -9 included), so a dead run never leaves a stale lock
behind, and no file a user can delete holds it: RUN/.lock, there only while the lock is held, names the holder's
process for the refusal message.

The run folder must be a real folder: a symbolic link is refused, so that training (and --overwrite) never writes or
deletes outside the runs folder."""

from __future__ import annotations

import errno
import fcntl
import os
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Iterator

from ..errors import BetaVAEError

LOCK = ".lock"  # the holder's process id (informative only; the lock is on the folder)


@contextmanager
def run_lock(run_dir: Path, create: bool = True) -> Iterator[None]:
    """Hold the run folder's lock for the duration, or refuse at once, naming the process that holds it. With
    create=True a missing folder is made; when this call made it and the body refuses before writing anything, the
    folder goes again (a refused command leaves no trace)."""
    created = create and make_folder(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise BetaVAEError(f"{run_dir} is a file, not a run folder; choose another --name (or --runs)")
    if not os.access(run_dir, os.W_OK | os.X_OK):
        raise BetaVAEError(f"{run_dir} cannot be written (a read-only folder?); training writes into its run folder: "
                           "copy the run somewhere writable and resume the copy")
    descriptor = open_folder(run_dir)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = read_holder(run_dir)
            raise BetaVAEError(f"{run_dir} is being trained by process {holder}; wait for it to end (or stop it: "
                               f"kill {holder}), then run the command again") from None
        write_holder(run_dir)
        try:
            yield
        finally:
            with suppress(OSError):  # before the lock is released: never another holder's name
                (run_dir / LOCK).unlink(missing_ok=True)
            if created:
                remove_if_empty(run_dir)
    finally:
        os.close(descriptor)  # closing the folder releases the lock


def make_folder(run_dir: Path) -> bool:
    """Make the run folder (and the runs folder above it); whether it was made now. An OS refusal (a name too long,
    a file in the way) is one line."""
    try:
        run_dir.mkdir(parents=True)
        return True
    except FileExistsError:
        return False
    except OSError as error:
        raise BetaVAEError(f"cannot make the run folder {run_dir} ({error.strerror}); choose another --name or "
                           "--runs") from None


def open_folder(run_dir: Path) -> int:
    """A descriptor of the run folder itself, never of what a symbolic link points to."""
    try:
        return os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as error:
        if run_dir.is_symlink():
            raise BetaVAEError(f"{run_dir} is a symbolic link; a run folder must be a real folder, so that training "
                               "never writes or deletes outside it: choose another --name (or train into the link's "
                               "target by its own path)") from None
        if error.errno == errno.ENOENT:
            raise BetaVAEError(f"run folder {run_dir} does not exist; check the path (runs live under "
                               "runs/<name>)") from None
        raise BetaVAEError(f"{run_dir} cannot be used as a run folder ({error.strerror}); check the path") from None


def training_process(run_dir: Path) -> str | None:
    """The process that holds the run folder's lock now (it trains the run), or None when none does."""
    try:
        descriptor = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        fcntl.flock(descriptor, fcntl.LOCK_SH | fcntl.LOCK_NB)  # granted only when no trainer holds it
        return None
    except BlockingIOError:
        return read_holder(run_dir)
    finally:
        os.close(descriptor)  # releases the shared lock, if it was granted


def read_holder(run_dir: Path) -> str:
    try:
        if not (run_dir / LOCK).is_file():  # a FIFO or a device would block the read
            return "unknown"
        return (run_dir / LOCK).read_text().strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


def write_holder(run_dir: Path) -> None:
    """Name this process in RUN/.lock (never through a symbolic link put in its place)."""
    try:
        descriptor = os.open(run_dir / LOCK, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_NONBLOCK,
                             0o644)  # non-blocking: a FIFO put in its place never blocks the open
    except OSError:
        return  # only informative: the lock itself is held
    with os.fdopen(descriptor, "w") as stream:
        stream.write(str(os.getpid()))


def remove_if_empty(run_dir: Path) -> None:
    """Remove a folder this call made when nothing was written into it (the command was refused)."""
    try:
        run_dir.rmdir()
    except OSError:
        pass  # not empty: the run was written
