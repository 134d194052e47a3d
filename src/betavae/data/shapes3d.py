"""Shapes3D (Burgess and Kim 2018, deepmind/3d-shapes) from the user's copy of the official `3dshapes.h5`.

The file holds `images` (480000, 64, 64, 3) uint8 and `labels` (480000, 6) float64: every combination of floor hue 10,
wall hue 10, object hue 10, scale 8, shape 4 and orientation 15, in that order (orientation varies fastest), the
labels holding each image's factor values. It is read lazily with h5py (the optional extra `betavae[shapes3d]`): the
images stay in the file (255 MB compressed, 5.9 GB as bytes) and each batch is read when it is used. The labels are
checked to be in the grid's order on opening. The file's sha256 is the one TensorFlow Datasets publishes for it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import BetaVAEError, first_line
from .groundtruth import Log
from .official import OfficialFiles
from .stored import Pin, StoredImages

FILE = "3dshapes.h5"
PROBES = 499  # label rows checked against the grid's order on opening


def open_h5(path: Path):
    """An HDF5 file opened for reading, or one line: h5py missing (how to install it), or a file it cannot read."""
    try:
        import h5py
    except ImportError:
        raise BetaVAEError("reading Shapes3D needs h5py: pip install h5py (or 'betavae[shapes3d]')") from None
    try:
        return h5py.File(path, "r")
    except OSError as error:
        raise BetaVAEError(f"{path} is not a readable HDF5 file ({first_line(error)}); download {FILE} again") from None


def check_order(labels: np.ndarray, factors: np.ndarray, path: Path) -> None:
    """Labels (N, F) in the grid's order: each factor's value is one value per level, increasing with the level."""
    for k in range(factors.shape[1]):
        levels, values = factors[:, k], labels[:, k]
        present = np.unique(levels)
        lowest = np.array([values[levels == level].min() for level in present])
        highest = np.array([values[levels == level].max() for level in present])
        if not (np.allclose(lowest, highest) and np.all(np.diff(lowest) > 0)):
            raise BetaVAEError(f"{path}: the labels of factor {k} are not in the grid's order (orientation varying "
                               f"fastest); use the unmodified {FILE}")


class Shapes3D(OfficialFiles):
    """Shapes3D as a ground-truth data set, read lazily from 3dshapes.h5."""

    name = "shapes3d"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)
    image_shape = (3, 64, 64)
    traversal_factors = (0, 3, 6, 4, 1, 7)  # a mid-sized cube, facing the camera
    label_factor = 4  # shape
    files = (FILE,)
    url = "https://storage.googleapis.com/3d-shapes/3dshapes.h5 (github.com/deepmind/3d-shapes)"
    pins = (Pin(FILE, "0a0f6ed98baff276a50f3a081a7434d788da63cb135a98189b2a5b5769be1785",
                "TensorFlow Datasets, url_checksums/shapes3d.txt"),)

    def open_grid(self, folder: Path, log: Log) -> StoredImages:
        path = folder / FILE
        stored = open_h5(path)
        n = self.num_images
        expected = f"'images' ({n}, 64, 64, 3) uint8 and 'labels' ({n}, 6) float64 as in {FILE}"
        if "images" not in stored or "labels" not in stored:
            raise BetaVAEError(f"{path} holds {', '.join(sorted(stored.keys())) or 'nothing'}; expected {expected}")
        images, labels = stored["images"], stored["labels"]
        if images.shape != (n, 64, 64, 3) or images.dtype != np.uint8 or labels.shape != (n, 6):
            raise BetaVAEError(f"{path} holds images {images.shape} {images.dtype} and labels {labels.shape}; "
                               f"expected {expected}")
        probes = np.unique(np.linspace(0, n - 1, PROBES).astype(np.int64))
        try:
            probed = np.asarray(labels[probes], dtype=np.float64)
        except (OSError, ValueError) as error:
            raise BetaVAEError(f"{path}: the labels could not be read ({first_line(error)}); download {FILE} "
                               "again") from None
        check_order(probed, self.factors_of(probes), path)
        return StoredImages(images, np.arange(n), str(path))


SHAPES3D = Shapes3D()
