"""SmallNORB (LeCun et al. 2004) from the user's copy of the six official files, read as disentanglement_lib's norb.py
reads them: `smallnorb-5x46789x9x18x6x2x96x96-training-{dat,cat,info}.mat` and the `5x01235...-testing` ones, each
as published (`.mat.gz`) or decompressed (`.mat`).

The files are NORB's binary matrix format, not MATLAB's: an int32 magic number giving the element type (0x1E3D4C55
bytes, 0x1E3D4C54 int32), the number of dimensions, max(3, ndim) int32 sizes, then the data. `dat` holds pairs of
stereo images (N, 2, 96, 96); the first of each pair is used, resized to 64x64 with the Lanczos filter. `cat` holds the
category (N,), `info` (N, 4) the instance, elevation, azimuth (0, 2, ..., 34, halved to a level) and lighting.

The two files together hold every combination of category 5, instance 10, elevation 9, azimuth 18 and lighting 6
(48,600 images), placed in that grid by their labels. disentanglement_lib leaves the instance out of the factors and
draws it at random for each image it samples; a grid here is full only with the instance as an axis, so the instance
is the grid's second factor and the metrics score it too (as disent does): scores are not comparable with
disentanglement_lib's published ones. The resized grid is cached once (200 MB). The sha256 of the `.mat.gz` files
are those TensorFlow Datasets publishes; the decompressed files have no published checksum.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from ..errors import BetaVAEError
from .groundtruth import Log
from .official import OfficialFiles, resize_lanczos
from .stored import Pin, StoredImages, read_guarded

CACHE_VERSION = 1
SIZE = 64
PARTS = ("5x46789x9x18x6x2x96x96-training", "5x01235x9x18x6x2x96x96-testing")
MAGIC = {0x1E3D4C55: np.uint8, 0x1E3D4C54: np.int32}
TFDS = "TensorFlow Datasets, url_checksums/smallnorb.txt"
PINS = (("training-cat", "2784e542c1922060691090952b6cd6278879a216c90f81476f0f00256d42cdaa"),
        ("training-dat", "5ffd6272a07d32695ee1082a26a41a93a37aab8c28da047f8c34ed348d214873"),
        ("training-info", "de7eb932ebe7a4ee16217fead60660d0eb3d23632c2f4d1c51f88c501c17bf32"),
        ("testing-cat", "ecaf6d5bb8c3bc5eab9cf0258f6d2198dd474e016e374836fc097f2e5ff509ff"),
        ("testing-dat", "cf7104eed3e51174d2f65b66d1e5878b9da233b886f161b0d88f4510ba2c7474"),
        ("testing-info", "16adf314226327ee006d1a44db8cfef52773c06c829951d5653a9f6f310248a2"))
CHUNK = 2048  # image pairs read at once


def file_name(part: str, kind: str) -> str:
    return f"smallnorb-{part}-{kind}.mat"


def open_matrix(path: Path):
    """A binary matrix file's stream (gzipped or not) after its header, with its shape and element type."""
    stream = gzip.open(path) if path.suffix == ".gz" else open(path, "rb")
    head = np.frombuffer(stream.read(8), "<i4")
    if len(head) < 2 or int(head[0]) not in MAGIC or not 0 < int(head[1]) < 8:
        stream.close()
        raise BetaVAEError(f"{path} is not a NORB binary matrix (its magic number is not 0x1E3D4C55 or 0x1E3D4C54); "
                           "use the official file")
    ndim = int(head[1])
    sizes = np.frombuffer(stream.read(4 * max(3, ndim)), "<i4")
    if len(sizes) < ndim:
        stream.close()
        raise BetaVAEError(f"{path} has a truncated header; download it again")
    return stream, tuple(int(size) for size in sizes[:ndim]), MAGIC[int(head[0])]


def read_exactly(stream, count: int, dtype: type, path: Path) -> np.ndarray:
    """`count` elements of `dtype` from the stream, or one line saying the file is truncated."""
    block = stream.read(count * np.dtype(dtype).itemsize)
    if len(block) != count * np.dtype(dtype).itemsize:
        raise BetaVAEError(f"{path} is truncated; download it again")
    return np.frombuffer(block, np.dtype(dtype).newbyteorder("<"))


def read_labels(path: Path, columns: int) -> np.ndarray:
    """A `cat` (N,) or `info` (N, 4) int32 matrix as (N, columns)."""
    stream, shape, dtype = open_matrix(path)
    with stream:
        if dtype != np.int32 or shape[1:] not in ((), (columns,)) or (columns > 1 and len(shape) != 2):
            raise BetaVAEError(f"{path} holds {shape} {np.dtype(dtype)}; expected int32 (N{', 4' * (columns > 1)})")
        return read_exactly(stream, int(np.prod(shape)), dtype, path).reshape(shape[0], columns).astype(np.int64)


class SmallNORB(OfficialFiles):
    """SmallNORB's training and testing files together, as one grid of 64x64 grey images."""

    name = "smallnorb"
    factor_names = ("category", "instance", "elevation", "azimuth", "lighting")
    factor_sizes = (5, 10, 9, 18, 6)
    image_shape = (1, SIZE, SIZE)
    traversal_factors = (2, 4, 4, 0, 3)
    label_factor = 0  # category
    files = tuple(file_name(part, kind) for part in PARTS for kind in ("dat", "cat", "info"))
    what = "the six smallnorb-5x*-{dat,cat,info}.mat.gz files (or decompressed, .mat)"
    url = "https://cs.nyu.edu/~ylclab/data/norb-v1.0-small/ (the six .mat.gz files)"
    pins = tuple(Pin(f"smallnorb-{PARTS[name.startswith('testing')]}-{name.split('-')[1]}.mat.gz", sha256, TFDS)
                 for name, sha256 in PINS)

    def required(self, folder: Path) -> list[Path]:
        """Each file as published (.mat.gz) where it is there, else decompressed (.mat)."""
        return [folder / name if (folder / name).exists() else folder / f"{name}.gz" for name in self.files]

    def open_grid(self, folder: Path, log: Log) -> StoredImages:
        paths = self.required(folder)
        return self.cached_grid(paths, (SIZE, SIZE, 1), lambda out: self._fill(paths, out, log), log, CACHE_VERSION)

    def _fill(self, paths: list[Path], out: np.ndarray, log: Log) -> None:
        """Every image resized into its grid place; each place filled exactly once, or one line saying which not."""
        filled = np.zeros(self.num_images, dtype=bool)
        for first in range(0, len(paths), 3):
            dat, cat, info = paths[first:first + 3]
            labels = [read_guarded(path, lambda p=path, k=k: read_labels(p, k)) for path, k in ((cat, 1), (info, 4))]
            place = self._places(*labels, info)
            read_guarded(dat, lambda: self._resize_into(dat, place, out, log))
            if filled[place].any():
                raise BetaVAEError(f"{info}: an image's labels repeat another's; use the official files")
            filled[place] = True
        if not filled.all():
            missing = self.factors_of(np.flatnonzero(~filled)[:1])[0].tolist()
            raise BetaVAEError(f"{paths[0].parent}: the files hold no image of {dict(zip(self.factor_names, missing))} "
                               f"({int((~filled).sum()):,} of {self.num_images:,} missing); use the official files")

    def _places(self, category: np.ndarray, info: np.ndarray, path: Path) -> np.ndarray:
        """Grid indices of a file's images from their labels, checked against the grid's sizes."""
        if len(category) != len(info):
            raise BetaVAEError(f"{path}: {len(info)} labels for {len(category)} categories; use the official files")
        factors = np.column_stack([category[:, 0], info[:, 0], info[:, 1], info[:, 2] // 2, info[:, 3]])
        if (info[:, 2] % 2).any() or (factors < 0).any() or (factors >= np.array(self.factor_sizes)).any():
            raise BetaVAEError(f"{path}: labels outside {dict(zip(self.factor_names, self.factor_sizes))} (azimuth "
                               "0, 2, ..., 34); use the official files")
        return self.index_of(factors)

    def _resize_into(self, path: Path, place: np.ndarray, out: np.ndarray, log: Log) -> None:
        """The first image of each stereo pair in `path`, resized, into out[place]."""
        stream, shape, dtype = open_matrix(path)
        with stream:
            if dtype != np.uint8 or len(shape) != 4 or shape[0] != len(place) or shape[1] != 2:
                raise BetaVAEError(f"{path} holds {shape} {np.dtype(dtype)}; expected ({len(place)}, 2, H, W) "
                                   "bytes as in the official dat file")
            for start in range(0, shape[0], CHUNK):
                stop = min(start + CHUNK, shape[0])
                pairs = read_exactly(stream, (stop - start) * int(np.prod(shape[1:])), dtype, path)
                out[place[start:stop]] = resize_lanczos(pairs.reshape(stop - start, *shape[1:])[:, 0], SIZE)
                log(f"betavae: smallnorb: {path.name} {stop:,}/{shape[0]:,} images resized")


SMALLNORB = SmallNORB()
