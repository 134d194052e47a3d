"""uint8 images that stay in their file and are read a batch at a time: the ground-truth data sets a user brings
(Shapes3D's HDF5 file, MPI3D, SmallNORB, Cars3D and CelebA's caches), too large to hold as float32 (Shapes3D: 5.9 GB
as bytes, 24 GB as float).

`StoredImages` indexes a source array (a numpy memory map or an h5py dataset, images (N, H, W, C) uint8) through a
list of source positions, and converts only the images a step asks for. `cached_array` builds a derived array (resized
images) once into the data cache as an .npy, which is memory-mapped from then on. `Pin` is a published checksum.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .. import atomic
from ..errors import BetaVAEError, first_line
from .lazy import LazyImages

IDENTITY_SAMPLE = 64  # images hashed to identify a source in a data fingerprint (hashing gigabytes would take minutes)
READ_ERRORS = (OSError, ValueError, EOFError, KeyError)  # what h5py and numpy raise on a damaged or truncated file


class StoredImages(LazyImages):
    """Images (N, C, H, W) read on demand from `source` (positions `index`), as float32 in [0, 1] on `device`."""

    most_at_once = 4096  # images converted at once by `split` (a float copy of many is large)

    def __init__(self, source: Any, index: torch.Tensor, where: str, identity: str = "",
                 device: torch.device | str = "cpu"):
        self.source, self.index, self.where = source, torch.as_tensor(index, dtype=torch.long), where
        self.identity = identity or sample_identity(source, where)
        self._device = torch.device(device)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def image_shape(self) -> tuple[int, ...]:
        height, width, channels = self.source.shape[1:]
        return channels, height, width

    @property
    def device(self) -> torch.device:
        return self._device

    def batch(self, index) -> torch.Tensor:
        """The chosen images read from the file, float32 in [0, 1]."""
        wanted = self.index[index.cpu() if isinstance(index, torch.Tensor) else index]
        pixels = torch.from_numpy(read_rows(self.source, wanted.numpy(), self.where))
        return pixels.permute(0, 3, 1, 2).contiguous().to(self._device).float().div_(255.0)

    def take(self, index) -> "StoredImages":
        """The chosen images, still in their file."""
        return StoredImages(self.source, self.index[index], self.where, self.identity, self._device)

    def to(self, device: torch.device | str) -> "StoredImages":
        """The same images, converted on `device` (they stay in their file)."""
        return StoredImages(self.source, self.index, self.where, self.identity, device)

    def stored(self) -> tuple[torch.Tensor, ...]:
        """The source positions and the source's identity: what a data fingerprint hashes."""
        return self.index, torch.tensor(list(self.identity.encode()), dtype=torch.uint8)


def read_rows(source: Any, positions: np.ndarray, where: str) -> np.ndarray:
    """source[positions] (any order, repeats allowed), read in increasing order as h5py requires; a damaged file is
    one line naming it."""
    unique, inverse = np.unique(positions, return_inverse=True)
    try:
        rows = np.asarray(source[unique] if len(unique) else source[0:0])
    except READ_ERRORS as error:
        raise BetaVAEError(f"{where}: images could not be read ({first_line(error)}); the file is damaged or "
                           "truncated: get it again") from None
    return rows[inverse.reshape(-1)]


def read_guarded(path: Path, read: Callable[[], Any], fix: str = "download it again") -> Any:
    """read(), with a damaged or truncated file (what zip, gzip, numpy and h5py raise) as one line naming it."""
    import zipfile
    import zlib

    try:
        return read()
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise BetaVAEError(f"{path} could not be read ({first_line(error)}); {fix}") from None


def sample_identity(source: Any, where: str) -> str:
    """sha256 of a source's shape and IDENTITY_SAMPLE images spread over it: what tells its content apart in a data
    fingerprint without reading it all (`betavae fetch` checks whole files against their published checksums)."""
    positions = np.unique(np.linspace(0, len(source) - 1, IDENTITY_SAMPLE).astype(np.int64)) if len(source) else []
    digest = hashlib.sha256(f"{tuple(source.shape)}".encode())
    digest.update(np.ascontiguousarray(read_rows(source, np.asarray(positions, dtype=np.int64), where)).data)
    return digest.hexdigest()


def stat_key(paths: list[Path], *extra: object) -> str:
    """What a derived array depends on: each file's name, length and modification time, and `extra` (a version, the
    grid's sizes), as a short digest that names the cache entry."""
    digest = hashlib.sha256(repr(extra).encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"\n{path.resolve()} {stat.st_size} {stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


def cached_array(path: Path, shape: tuple[int, ...], fill: Callable[[np.ndarray], None],
                 log: Callable[[str], None]) -> np.ndarray:
    """The uint8 array at `path` (an .npy), memory-mapped; built once by `fill` (which writes every element of the
    array it is given) into a temporary file that is renamed into place, so a cache is never half-written."""
    if path.is_file():
        try:
            cached = np.load(path, mmap_mode="r", allow_pickle=False)
            if cached.shape == shape and cached.dtype == np.uint8:
                return cached
        except (OSError, ValueError) as error:
            log(f"betavae: cache {path} is unreadable ({first_line(error)}); it will be rebuilt")
    log(f"betavae: writing {np.prod(shape) / 1e9:.2f} GB of images once into {path}")
    try:
        with atomic.atomic_path(path) as tmp:
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=shape)
            fill(out)
            out.flush()
            del out
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except OSError as error:
        raise BetaVAEError(f"could not write the cache {path} ({first_line(error)}); free disk space there or set "
                           "XDG_CACHE_HOME to a folder with room") from None


@dataclass(frozen=True)
class Pin:
    """A checksum of an official file as published (`source` says where), checked by `betavae fetch`."""

    file: str
    sha256: str
    source: str

    def check(self, folder: Path) -> bool:
        """Whether the file is there to check; a file whose digest differs is one line naming both digests."""
        path = folder / self.file
        if not path.is_file():
            return False
        digest = hashlib.sha256()
        with open(path, "rb") as stream:
            for block in iter(lambda: stream.read(1 << 22), b""):
                digest.update(block)
        if digest.hexdigest() != self.sha256:
            raise BetaVAEError(f"{path} has sha256 {digest.hexdigest()}, expected {self.sha256} (checksum "
                               f"mismatch: not the official file; get it again)")
        return True


def data_folder(data_dir: str | os.PathLike | None, name: str) -> Path:
    """Where a data set's files are looked for: --data-dir, else $BETAVAE_DATA, else the cache's folder `name`."""
    from .sources import cache_dir

    chosen = data_dir or os.environ.get("BETAVAE_DATA")
    return Path(chosen) if chosen else cache_dir() / name
