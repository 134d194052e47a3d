"""Every data set by name: how it is fetched, loaded and validated, its ground-truth factors if it has any, and
which classifier scores its samples. Configuration, `betavae fetch`, loading, the classifier, the help texts, Ada-GVAE
and the disentanglement command all ask this table, so a data set is interpreted in one place.

A name is one of the known data sets, or a path: an .npz file or a folder of PNG, JPEG or WebP files (the user's own
images, read by data/images.py, which `--image-size` crops and resizes). A data set with ground-truth factors is a `groundtruth.GroundTruthData` (one module) and one line of KNOWN; those read from the user's
copy of official files (official.py) say through `betavae fetch NAME` where to get them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..errors import BetaVAEError
from . import celeba, image_cache, sources
from .cars3d import CARS3D
from .dataset import Data, Split, split_raw
from .dsprites import DSPRITES
from .dsprites_variants import ColourDSprites, NoisyDSprites
from .groundtruth import GroundTruthData
from .mpi3d import MPI3D_SETS
from .pairs import FactorPairs
from .shapes3d import SHAPES3D
from .smallnorb import SMALLNORB
from .sources import RawData


@dataclass(frozen=True)
class Dataset:
    """One data set: how to obtain it (`fetch`, returning a one-line summary), load it split (`load`), and, where
    that saves memory, load one split alone (`load_one`); `truth` holds its ground-truth factors, if it has any."""

    name: str
    fetch: Callable[[str | None], str]
    load: Callable[[str | None, int], Data]
    classifier: str | None = None  # name of the cached classifier that scores its samples (None: pass --classifier)
    load_one: Callable[[str | None, int, str], Split] | None = None
    truth: GroundTruthData | None = None

    @property
    def has_factors(self) -> bool:
        return self.truth is not None

    def load_split(self, data_dir: str | None, val_size: int, split: str) -> Split:
        if self.load_one is not None:
            return self.load_one(data_dir, val_size, split)
        return self.load(data_dir, val_size).split(split)


def _summary(name: str, raw: RawData) -> str:
    shape = raw.train_images.shape
    colour = ", RGB" if len(shape) == 4 and shape[1] == 3 else ""
    return (f"{name}: {len(raw.train_images)} training and {len(raw.test_images)} test images of "
            f"{shape[-1]}x{shape[-2]}{colour}, checksum {raw.checksum()[:16]}")


def _idx_dataset(spec: sources.IdxDataset) -> Dataset:
    """A data set published as IDX files (MNIST, Fashion-MNIST): fetched from the first source that works."""
    return Dataset(spec.name,
                   fetch=lambda data_dir: _summary(spec.name, sources.fetch(spec, data_dir)),
                   load=lambda data_dir, val_size: split_raw(sources.fetch(spec, data_dir), val_size, spec.name),
                   classifier=spec.name)


def _user_dataset(path: Path, image_size: int) -> Dataset:
    """The user's own images, fitted to `image_size` (0: as stored) and cached; no classifier is known for them (train
    one with `betavae classifier train --out`)."""
    return Dataset(str(path), fetch=lambda data_dir: _summary(str(path), image_cache.cached(path, image_size)),
                   load=lambda data_dir, val_size: split_raw(image_cache.cached(path, image_size), val_size, str(path)))


def _ground_truth_dataset(truth: GroundTruthData) -> Dataset:
    """A data set made from known factors: everything it does, it does through its ground-truth interface."""
    return Dataset(truth.name, truth.fetch, truth.load, load_one=truth.load_split, truth=truth)


KNOWN: dict[str, Dataset] = {
    "mnist": _idx_dataset(sources.MNIST),
    "fashion-mnist": _idx_dataset(sources.FASHION_MNIST),
    **{truth.name: _ground_truth_dataset(truth) for truth in (DSPRITES, ColourDSprites(), NoisyDSprites())},
    # read from the user's own copies of the official files (docs/data.md; `betavae fetch NAME` says where to get them)
    **{truth.name: _ground_truth_dataset(truth) for truth in (SHAPES3D, *MPI3D_SETS, SMALLNORB, CARS3D)},
    "celeba": Dataset("celeba", celeba.fetch, celeba.load, load_one=celeba.load_split),
}


def names_help() -> str:
    """What --dataset may name, for help texts: the known data sets, or the user's own."""
    return (f"{', '.join(KNOWN)}, or a path to an .npz file, a folder of images (PNG, JPEG, WebP) or a folder of .npy "
            "arrays (memory-mapped; docs/own-images.md)")


def ground_truth_names() -> list[str]:
    """The known data sets that have ground-truth factors, for help texts and errors."""
    return [name for name, dataset in KNOWN.items() if dataset.has_factors]


def is_path(name: str) -> bool:
    """Whether a data set name is a path to the user's own images rather than a known data set's name."""
    return bool(name.strip()) and name not in KNOWN and \
        (name.endswith(".npz") or "/" in name or os.sep in name or Path(name).is_dir())


def check_name(name: str) -> None:
    """Refuse, in one line, a name that is neither a known data set nor a path (the path is checked on loading,
    so a run stays readable when its data have moved)."""
    if name not in KNOWN and not is_path(name):
        hint = f" (names are lower case: {name.lower()})" if name.lower() in KNOWN else ""
        raise BetaVAEError(f"unknown dataset {name!r}{hint}: neither one of {', '.join(KNOWN)} nor an .npz file or a folder "
                           "of images; name a known data set or give the path to your own images")


def lookup(name: str, image_size: int = 0) -> Dataset:
    """The data set a name stands for (the user's own images fitted to `image_size`, 0: as stored), or a one-line
    error that lists what a name may be."""
    check_name(name)
    if name in KNOWN:
        return KNOWN[name]
    path = Path(name)
    if path.is_file() and path.suffix != ".npz":
        raise BetaVAEError(f"dataset {path} is a file but not an .npz; give an .npz file or a folder of images")
    if path.exists() and not path.is_dir() and not path.is_file():
        raise BetaVAEError(f"dataset {path} is neither a folder nor a file (a device or a FIFO?); give a folder of "
                           "images, or an .npz file")
    if path.suffix != ".npz" and not path.is_dir():
        raise BetaVAEError(f"dataset folder {path} does not exist; check the path (a folder of images, or an .npz file)")
    return _user_dataset(path, image_size)


def load(name: str = "mnist", data_dir: str | None = None, val_size: int = 10000, image_size: int = 0) -> Data:
    """Load a data set by name and split it (validation: the last `val_size` images of the official training set);
    `image_size` crops and resizes the user's own images (a known data set must already have that size)."""
    data = lookup(name, image_size).load(data_dir, val_size)
    _check_size(name, data.image_shape, image_size)
    return data


def load_split(name: str, data_dir: str | None, val_size: int, split: str, image_size: int = 0) -> Split:
    """One split of a data set (for data sets that can, without loading the others)."""
    chosen = lookup(name, image_size).load_split(data_dir, val_size, split)
    _check_size(name, tuple(chosen.images.shape[1:]), image_size)
    return chosen


def _check_size(name: str, image_shape: tuple[int, ...], image_size: int) -> None:
    """Refuse, in one line, an `image_size` that a known data set (which is never resized) does not have."""
    if image_size and tuple(image_shape[1:]) != (image_size, image_size):
        raise BetaVAEError(f"--image-size {image_size} resizes your own images only, and {name} is "
                           f"{image_shape[-1]}x{image_shape[-2]}; pass --image-size 0 (or {image_shape[-1]} if square)")


def fetch(name: str, data_dir: str | None = None, image_size: int = 0) -> str:
    """Obtain a data set (and cache it); returns a one-line summary of what was obtained."""
    if image_size and name in KNOWN:
        raise BetaVAEError(f"--image-size resizes your own images only; {name} is kept as published: leave "
                           "--image-size out")
    return lookup(name, image_size).fetch(data_dir)


def ground_truth(name: str, needed_by: str) -> GroundTruthData:
    """The ground-truth factors of a data set, or one line saying that `needed_by` needs them and which data sets
    have them."""
    truth = lookup(name).truth
    if truth is None:
        names = ground_truth_names()
        listed = f"{', '.join(names[:-1])} or {names[-1]}" if len(names) > 1 else names[0]
        raise BetaVAEError(f"{needed_by}, and {name} has no ground-truth factors; train with --dataset {listed}")
    return truth


def factor_pairs(name: str, val_size: int, needed_by: str) -> FactorPairs:
    """Partners sharing ground-truth factors for the training images of a data set that has them."""
    return ground_truth(name, f"{needed_by} trains on pairs of images that share ground-truth factors").pairs(val_size)
