"""Ground-truth data sets read from the user's own copy of their official files (nothing is downloaded): Shapes3D,
MPI3D, SmallNORB, Cars3D. `OfficialFiles` finds the files (--data-dir, else $BETAVAE_DATA, else the cache's folder
named after the data set), opens the grid once per folder, and lets `betavae fetch NAME` say where the files come from
and check them against their published checksums; each data set says how its files are read (`open_grid`).
"""

from __future__ import annotations

from abc import abstractmethod
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..errors import BetaVAEError
from .groundtruth import GroundTruthData, Log, to_stderr
from .sources import cache_dir
from .stored import Pin, StoredImages, cached_array, data_folder, stat_key


class OfficialFiles(GroundTruthData):
    """A full factor grid stored in official files the user downloads; `factor_sizes` may be made smaller (tests
    write tiny files in the official format)."""

    files: tuple[str, ...]  # the files looked for in the data folder
    url: str  # where they are published
    pins: tuple[Pin, ...] = ()  # published checksums of some of them
    no_pin: str = ""  # why nothing is checked, where no checksum is published
    what: str = ""  # the files, as `betavae fetch` names them (else their names)

    def __init__(self, factor_sizes: tuple[int, ...] | None = None):
        if factor_sizes is not None:
            self.factor_sizes = tuple(factor_sizes)
            self.traversal_factors = tuple(min(level, size - 1)
                                           for level, size in zip(self.traversal_factors, self.factor_sizes))
        self._grids: dict[Path, StoredImages] = {}
        self._last: StoredImages | None = None

    @property
    def test_size(self) -> int:  # type: ignore[override]
        """Images held out for testing: 10,000, or a tenth of a smaller grid (Cars3D has 17,568 images)."""
        return min(10_000, self.num_images // 10)

    @abstractmethod
    def open_grid(self, folder: Path, log: Log) -> StoredImages:
        """Every image of the grid in index order, from the files in `folder` (checked: one line if they are not the
        official format)."""

    def cached_grid(self, sources: list[Path], pixels: tuple[int, int, int], fill: Callable[[np.ndarray], None],
                    log: Log, version: int = 1) -> StoredImages:
        """The grid as images (N, *pixels) uint8 that `fill` derives from the `sources` once into the data cache
        (named by the sources' names, lengths and times, `version` and the grid's sizes), memory-mapped."""
        target = cache_dir() / "grids" / f"{self.name}-{stat_key(sources, version, self.factor_sizes)}.npy"
        images = cached_array(target, (self.num_images, *pixels), fill, log)
        return StoredImages(images, np.arange(self.num_images), str(target))

    def folder(self, data_dir: str | None) -> Path:
        return data_folder(data_dir, self.name)

    def required(self, folder: Path) -> list[Path]:
        """The files that must be in `folder`."""
        return [folder / name for name in self.files]

    def grid(self, data_dir: str | None = None, log: Log = to_stderr) -> StoredImages:
        folder = self.folder(data_dir)
        if folder not in self._grids:
            missing = [path for path in self.required(folder) if not path.exists()]
            if missing:
                raise BetaVAEError(f"{missing[0]} does not exist; `betavae fetch {self.name}` says where to get it "
                                   "(pass --data-dir FOLDER to name the folder holding it)")
            self._grids[folder] = self.open_grid(folder, log)
        self._last = self._grids[folder]
        return self._last

    def images(self, factors: np.ndarray) -> torch.Tensor:
        """The images of factor tuples, read from the grid opened last (else from the default folder)."""
        grid = self._last or self.grid()
        return grid[torch.from_numpy(np.asarray(self.index_of(factors), dtype=np.int64))]

    def describe(self, grid: StoredImages, data_dir: str | None) -> str:
        channels, height, width = grid.shape[1:]
        colour = "colour" if channels == 3 else "grey"
        return f"{self.name}: {len(grid):,} {colour} images of {width}x{height} from {self.folder(data_dir)}"

    def fetch(self, data_dir: str | None = None) -> str:
        """Check the user's files (their published checksums, then their format) and say what they hold; where they
        are missing, say where they come from and where to put them."""
        folder = self.folder(data_dir)
        missing = [path.name for path in self.required(folder) if not path.exists()]
        if missing:
            raise BetaVAEError(self.how_to_get(folder))
        checked = [pin.file for pin in self.pins if pin.check(folder)]
        summary = self.describe(self.grid(data_dir), data_dir)
        if checked:
            return f"{summary}; sha256 of {', '.join(checked)} as published ({self.pins[0].source})"
        return f"{summary}; no checksum checked ({self.no_pin or 'none is published for these files'})"

    def how_to_get(self, folder: Path) -> str:
        """A few lines: what is missing, where it is published, where to put it, what is checked."""
        checksum = f"their sha256 as published by {self.pins[0].source}" if self.pins else \
            f"their format only (no checksum: {self.no_pin or 'none is published'})"
        return (f"{self.name}: {self.what or ', '.join(self.files)} not found in {folder} (nothing is downloaded "
                f"here).\n  Download them from {self.url}\n  and put them in {folder}, or pass --data-dir FOLDER (or "
                f"set BETAVAE_DATA).\n  `betavae fetch {self.name}` then checks {checksum}.")


def resize_lanczos(images: np.ndarray, size: int) -> np.ndarray:
    """Images (N, H, W) or (N, H, W, C) uint8 resized to size x size with the Lanczos filter, as disentanglement_lib
    resizes SmallNORB and Cars3D (PIL's ANTIALIAS): (N, size, size, C) uint8."""
    from PIL import Image

    resized = [np.asarray(Image.fromarray(image).resize((size, size), Image.Resampling.LANCZOS)) for image in images]
    return np.stack(resized).reshape(len(images), size, size, -1) if resized else \
        np.zeros((0, size, size, images.shape[3] if images.ndim == 4 else 1), np.uint8)
