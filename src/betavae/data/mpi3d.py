"""MPI3D (Gondal et al. 2019, rr-learning/disentanglement_dataset) from the user's copy of an official .npz:
`mpi3d_toy.npz`, `mpi3d_realistic.npz` or `mpi3d_real.npz`, each holding `images` (1036800, 64, 64, 3) uint8.

Every combination of object colour 6, object shape 6, object size 2, camera height 3, background colour 3, horizontal
axis 40 and vertical axis 40, in that order (the vertical axis varies fastest), as the data set's README defines it
(`reshape([6, 6, 2, 3, 3, 40, 40, 64, 64, 3])`). disentanglement_lib's mpi3d.py predates the final release and gives
the simulated sets 4 colours and 4 shapes (460,800 images); the published files have 6 and 6, read here.

np.load cannot memory-map an array inside an .npz, and loading it would take 12.7 GB of memory, so the first use
copies the images once, a chunk at a time, into an uncompressed .npy in the data cache (12.7 GB of disk), which is
memory-mapped from then on: resident memory stays small. No checksum is published by the data set's authors; only
third-party MD5s exist, so none is checked here.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np

from ..errors import BetaVAEError
from .groundtruth import Log
from .official import OfficialFiles
from .stored import StoredImages, read_guarded

CACHE_VERSION = 1
ROWS_AT_ONCE = 4096  # images copied at once from the archive to the cache (50 MB)
VARIANTS = ("toy", "realistic", "real")


def npy_member(archive: zipfile.ZipFile, path: Path, key: str = "images.npy"):
    """The open stream of an array inside an .npz and its (shape, dtype), after reading its .npy header."""
    if key not in archive.namelist():
        held = ", ".join(name.removesuffix(".npy") for name in archive.namelist()) or "nothing"
        raise BetaVAEError(f"{path} holds {held}; expected 'images' (N, 64, 64, 3) uint8 as in the official MPI3D .npz")
    stream = archive.open(key)
    version = np.lib.format.read_magic(stream)
    reader = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
    shape, fortran_order, dtype = reader(stream)
    if fortran_order:
        raise BetaVAEError(f"{path}: 'images' is stored in Fortran order; save it in C order (np.savez does)")
    return stream, shape, dtype


def copy_images(path: Path, shape: tuple[int, ...], out: np.ndarray) -> None:
    """Stream the archive's images into `out`, chunk by chunk (never the whole array in memory)."""
    row_bytes = int(np.prod(shape[1:]))
    with zipfile.ZipFile(path) as archive:
        stream, _, _ = npy_member(archive, path)
        with stream:
            for start in range(0, shape[0], ROWS_AT_ONCE):
                stop = min(start + ROWS_AT_ONCE, shape[0])
                block = stream.read((stop - start) * row_bytes)
                if len(block) != (stop - start) * row_bytes:
                    raise BetaVAEError(f"{path} is truncated ({start + len(block) // row_bytes:,} of {shape[0]:,} "
                                       "images); download it again")
                out[start:stop] = np.frombuffer(block, np.uint8).reshape(stop - start, *shape[1:])


class MPI3D(OfficialFiles):
    """One of the three MPI3D data sets, copied once from its .npz into a memory-mapped cache."""

    factor_names = ("object_color", "object_shape", "object_size", "camera_height", "background_color",
                    "horizontal_axis", "vertical_axis")
    factor_sizes = (6, 6, 2, 3, 3, 40, 40)
    image_shape = (3, 64, 64)
    traversal_factors = (0, 1, 1, 1, 0, 20, 20)  # a large white cube, seen from the middle height
    label_factor = 1  # object shape
    no_pin = "the authors publish none; only third-party MD5s exist"

    def __init__(self, variant: str, factor_sizes: tuple[int, ...] | None = None):
        super().__init__(factor_sizes)
        self.variant, self.name = variant, f"mpi3d-{variant}"
        self.files = (f"mpi3d_{variant}.npz",)
        self.url = (f"https://storage.googleapis.com/disentanglement_dataset/Final_Dataset/mpi3d_{variant}.npz "
                    "(github.com/rr-learning/disentanglement_dataset)")

    def open_grid(self, folder: Path, log: Log) -> StoredImages:
        path = folder / self.files[0]
        shape = (self.num_images, 64, 64, 3)
        stored_shape, dtype = read_guarded(path, lambda: self._header(path))
        if tuple(stored_shape) != shape or dtype != np.uint8:
            raise BetaVAEError(f"{path} holds images {tuple(stored_shape)} {dtype}; expected {shape} uint8 as in "
                               f"the official {self.files[0]}")
        fill = lambda out: read_guarded(path, lambda: copy_images(path, shape, out))  # noqa: E731
        return self.cached_grid([path], shape[1:], fill, log, CACHE_VERSION)

    @staticmethod
    def _header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
        with zipfile.ZipFile(path) as archive:
            stream, shape, dtype = npy_member(archive, path)
            stream.close()
        return shape, dtype


MPI3D_SETS = tuple(MPI3D(variant) for variant in VARIANTS)
