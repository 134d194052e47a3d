"""Atomic file writes: write a temporary file beside the target, flush it to disk, then rename, so no result is ever
half-written, not even after a power cut (the rename is only durable once the folder is synced too)."""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from .errors import BetaVAEError


@contextmanager
def atomic_path(target: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces the target, on failure it vanishes."""
    target = Path(target)
    if target.is_dir():  # checked first, so that no work is done for a file that cannot be written
        raise BetaVAEError(f"{target} is a folder where betavae writes a file; move it out of the way and run the "
                           "command again")
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    os.chmod(tmp_path, 0o666 & ~UMASK)
    try:
        yield tmp_path
        _fsync(tmp_path)
        os.replace(tmp_path, target)
        _fsync(target.parent, folder=True)
    finally:
        tmp_path.unlink(missing_ok=True)


def _fsync(path: Path, folder: bool = False) -> None:
    """Flush a file's contents (or a folder's entries) to the disk. A file that cannot be synced is an error; a folder
    that cannot be opened or synced (some file systems) is left to the OS, since the rename is atomic regardless."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        if folder:
            return
        raise
    try:
        os.fsync(fd)
    except OSError:
        if not folder:
            raise
    finally:
        os.close(fd)


def _read_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


UMASK = _read_umask()  # read once, at import: setting it is process-wide, so never again while threads write


def write_bytes(target: str | os.PathLike, data: bytes) -> None:
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_text(target: str | os.PathLike, text: str) -> None:
    write_bytes(target, text.encode("utf-8"))


def write_json(target: str | os.PathLike, obj: Any) -> None:
    write_text(target, json.dumps(obj, indent=2, sort_keys=True) + "\n")
