"""Cars3D (Reed et al. 2015, "Deep Visual Analogy-Making") from the user's copy of the official `.mat` files, read as
disentanglement_lib's cars3d.py reads them.

The archive `nips2015-analogy-data.tar.gz` holds `data/cars/`: one MATLAB (v5) file per car (183), each with an array
`im` (128, 128, 3, 24, 4) uint8: the car's images at 24 azimuths and 4 elevations. The grid is elevation 4 x azimuth
24 x object 183, in that order; a car's object level is its file's position in name order (disentanglement_lib takes
the folder listing's order, which the file system decides). Images are resized to 64x64 with the Lanczos filter, as
there, and the grid (216 MB) is cached once. The archive's authors publish no checksum, so none is checked.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import BetaVAEError, first_line
from .groundtruth import Log
from .official import OfficialFiles, resize_lanczos
from .stored import StoredImages

CACHE_VERSION = 1
SIZE = 64


def read_car(path: Path, views: tuple[int, int]) -> np.ndarray:
    """One car's `im` array (H, W, 3, azimuths, elevations) uint8, or one line naming the file and what is wrong."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        stored = loadmat(path, variable_names=["im"])
    except (OSError, ValueError, TypeError, IndexError, EOFError, MatReadError, zlib.error, struct.error) as error:
        raise BetaVAEError(f"{path} is not a readable MATLAB file ({first_line(error)}); extract it again") from None
    if "im" not in stored:
        raise BetaVAEError(f"{path} has no array 'im'; expected (128, 128, 3, 24, 4) uint8 as in the Cars3D files")
    im = stored["im"]
    if im.ndim != 5 or im.shape[2] != 3 or im.shape[3:] != views or im.dtype != np.uint8:
        raise BetaVAEError(f"{path}: 'im' is {im.shape} {im.dtype}; expected (H, W, 3, {views[0]}, {views[1]}) uint8 "
                           "as in the Cars3D files")
    return im


class Cars3D(OfficialFiles):
    """Cars3D as a ground-truth data set: 17,568 colour 64x64 images, resized once into a cache."""

    name = "cars3d"
    factor_names = ("elevation", "azimuth", "object")
    factor_sizes = (4, 24, 183)
    image_shape = (3, SIZE, SIZE)
    traversal_factors = (1, 6, 0)
    label_factor = 2  # object
    files = ("*.mat",)
    what = "the 183 car .mat files of data/cars"
    url = "http://www.scottreed.info/ (nips2015-analogy-data.tar.gz; its folder data/cars holds the .mat files)"
    no_pin = "its authors publish none"

    def required(self, folder: Path) -> list[Path]:
        """The folder itself: its .mat files are counted on opening."""
        return [folder]

    def car_files(self, folder: Path) -> list[Path]:
        """The cars' files in name order, exactly as many as the grid has objects."""
        files = sorted(folder.glob("*.mat")) if folder.is_dir() else []
        cars = self.factor_sizes[2]
        if len(files) != cars:
            raise BetaVAEError(f"{folder} holds {len(files)} .mat files; expected the {cars} of Cars3D's data/cars "
                               "(pass --data-dir that folder)")
        return files

    def open_grid(self, folder: Path, log: Log) -> StoredImages:
        files = self.car_files(folder)
        return self.cached_grid(files, (SIZE, SIZE, 3), lambda out: self._fill(files, out, log), log, CACHE_VERSION)

    def _fill(self, files: list[Path], out: np.ndarray, log: Log) -> None:
        elevations, azimuths, _ = self.factor_sizes
        for car, path in enumerate(files):
            im = read_car(path, (azimuths, elevations))
            views = im.transpose(4, 3, 0, 1, 2).reshape(elevations * azimuths, *im.shape[:3])  # (elevation, azimuth)
            out[np.arange(len(views)) * len(files) + car] = resize_lanczos(views, SIZE)  # the object varies fastest
            if car % 20 == 0:
                log(f"betavae: cars3d: {car + 1}/{len(files)} cars resized")


CARS3D = Cars3D()
