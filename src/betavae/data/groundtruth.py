"""Data sets made from known factors (dSprites and its variants), behind one interface as disent's ground-truth data:
the registry, the disentanglement metrics, Ada-GVAE's pairs and the factor figures ask it, never a data set by name.

A ground-truth data set is a full grid: one image for every tuple of factor levels, indexed in C order (the last
factor varies fastest). A subclass says what its factors are and how its images are made (`images`, `grid`);
loading, splits, sampling, pairs and the traversal image follow from that.
"""

from __future__ import annotations

import math
import sys
from abc import ABC, abstractmethod
from typing import Callable

import numpy as np
import torch

from ..errors import BetaVAEError
from .dataset import Data, Split
from .packed import PackedImages, PaintedSprites
from .pairs import FactorPairs

Log = Callable[[str], None]
Grid = PackedImages | PaintedSprites


def to_stderr(line: str) -> None:
    """The default log: one line to stderr."""
    print(line, file=sys.stderr)


class GroundTruthData(ABC):
    """A data set with one image per tuple of independent, discrete factor levels."""

    name: str
    factor_names: tuple[str, ...]
    factor_sizes: tuple[int, ...]
    image_shape: tuple[int, int, int]
    traversal_factors: tuple[int, ...]  # the factor tuple whose image the factor-labelled traversal sweeps
    label_factor: int = 0  # the factor whose level is each image's label (what class-aware figures colour by)
    test_size: int = 10_000  # images held out for testing (such grids have no official test split)

    @abstractmethod
    def images(self, factors: np.ndarray) -> torch.Tensor:
        """The images (N, C, H, W) float32 in [0, 1] of factor tuples (N, F), made from the factors alone."""

    @abstractmethod
    def grid(self, data_dir: str | None = None, log: Log = to_stderr) -> Grid:
        """Every image of the grid in index order, stored compactly (indexing a batch gives its images)."""

    @abstractmethod
    def describe(self, grid: Grid, data_dir: str | None) -> str:
        """One line saying what the grid holds and where it came from (what `betavae fetch` prints)."""

    @property
    def num_images(self) -> int:
        return math.prod(self.factor_sizes)

    def factors_of(self, index: np.ndarray) -> np.ndarray:
        """Grid indices (N,) -> factor levels (N, F)."""
        return np.stack(np.unravel_index(np.asarray(index), self.factor_sizes), axis=1)

    def index_of(self, factors: np.ndarray) -> np.ndarray:
        """Factor levels (N, F) -> grid indices (N,)."""
        return np.ravel_multi_index(tuple(np.asarray(factors).T), self.factor_sizes)

    def sample_factors(self, n: int, rng: np.random.RandomState) -> np.ndarray:
        """n factor tuples, each level uniform and independent (disentanglement_lib's sampling)."""
        return np.stack([rng.randint(size, size=n) for size in self.factor_sizes], axis=1)

    def traversal_image(self) -> torch.Tensor:
        """The image (C, H, W) whose latents the factor-labelled traversal sweeps."""
        return self.images(np.array([self.traversal_factors]))[0]

    def split_indices(self, val_size: int, seed: int = 0) -> dict[str, np.ndarray]:
        """A fixed random hold-out of the grid: test, validation, the rest to train. Fixed by `seed`, not by the
        run's seed, so every run is tested on the same images. Validation and test stay in random order, so the first
        images a figure shows are varied (a grid's order puts one level of the first factor first)."""
        if val_size + self.test_size >= self.num_images:
            raise BetaVAEError(f"val_size {val_size} leaves no {self.name} training images; lower --val-size")
        order = np.random.default_rng(seed).permutation(self.num_images)
        return {"test": order[:self.test_size], "val": order[self.test_size:self.test_size + val_size],
                "train": np.sort(order[self.test_size + val_size:])}

    def load(self, data_dir: str | None = None, val_size: int = 10_000) -> Data:
        """The three splits of the grid (labels: the level of `label_factor`)."""
        grid = self.grid(data_dir)
        split = {name: self._split(grid, index) for name, index in self.split_indices(val_size).items()}
        return Data(self.name, split["train"], split["val"], split["test"])

    def load_split(self, data_dir: str | None, val_size: int, name: str) -> Split:
        """One split alone (the validation images need not copy the training ones)."""
        return self._split(self.grid(data_dir), self.split_indices(val_size)[name])

    def fetch(self, data_dir: str | None = None) -> str:
        """Make or read the grid once (so that training starts at once), and say what it holds."""
        return self.describe(self.grid(data_dir), data_dir)

    def pairs(self, val_size: int) -> FactorPairs:
        """Partners sharing factors for the training split's images: the weak supervision of Ada-GVAE."""
        return FactorPairs(self.factor_sizes, self.split_indices(val_size)["train"])

    def _split(self, grid: Grid, index: np.ndarray) -> Split:
        labels = torch.from_numpy(self.factors_of(index)[:, self.label_factor].astype(np.int64))
        return Split(grid.take(torch.from_numpy(index)), labels)
