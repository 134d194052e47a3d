"""CelebA (Liu et al. 2015) from the user's copy of the official files: `img_align_celeba/*.jpg` (202,599 aligned
faces of 178x218) and `list_attr_celeba.txt` (a count line, a line of 40 attribute names, then one line per image:
its file name and 40 values of -1 or 1).

Images with labels, not a ground-truth data set: the 40 binary attributes describe a face but are neither
independent nor complete, so the disentanglement metrics do not apply. The images are center-cropped to a square and
resized to 64x64 (the area filter, as `--image-size` does), once, into a memory-mapped uint8 cache (2.5 GB); the
label of each image is its `Smiling` attribute (1 smiling, 0 not), and all 40 are read by `read_attributes`. The test
split is the official one (the last 19,962 images, or that share of a smaller list), validation the last `val_size`
images before it. The sha256 of list_attr_celeba.txt is the one TensorFlow Datasets publishes; the images (extracted
from a zip) have none.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import BetaVAEError, first_line
from .dataset import Data, Split
from .groundtruth import Log, to_stderr
from .images import fit_to_size, read_image
from .sources import cache_dir
from .stored import Pin, StoredImages, cached_array, data_folder, stat_key

NAME = "celeba"
ATTRIBUTE_FILE, IMAGE_FOLDER = "list_attr_celeba.txt", "img_align_celeba"
URL = ("https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html (its Google Drive: Img/img_align_celeba.zip and "
       "Anno/list_attr_celeba.txt)")
PIN = Pin(ATTRIBUTE_FILE, "f0e5da289d5ccf75ffe8811132694922b60f2af59256ed362afa03fefba324d0",
          "TensorFlow Datasets, url_checksums/celeb_a.txt")
ATTRIBUTES = 40
LABEL = "Smiling"
TEST_SHARE = 19_962 / 202_599  # the official test partition: the last 19,962 of 202,599 images
SIZE, CACHE_VERSION = 64, 1


@dataclass(frozen=True)
class Attributes:
    """The attribute list: image file names (N,), attribute names (40,), values (N, 40) bool."""

    files: tuple[str, ...]
    names: tuple[str, ...]
    values: np.ndarray

    def labels(self, name: str = LABEL) -> np.ndarray:
        return self.values[:, self.names.index(name)].astype(np.int64)


def read_attributes(path: Path) -> Attributes:
    """list_attr_celeba.txt in its official layout, or one line naming the line that is not."""
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise BetaVAEError(f"{path} cannot be read ({first_line(error)}); download {ATTRIBUTE_FILE} again") from None
    if len(lines) < 2 or not lines[0].strip().isdigit() or len(lines[1].split()) != ATTRIBUTES:
        raise BetaVAEError(f"{path} does not start with a count line and a line of {ATTRIBUTES} attribute names, as "
                           f"{ATTRIBUTE_FILE} does; download it again")
    rows = [line.split() for line in lines[2:] if line.strip()]
    if len(rows) != int(lines[0]):
        raise BetaVAEError(f"{path} lists {len(rows)} images but its first line says {int(lines[0])}; it is "
                           "truncated: download it again")
    for number, row in enumerate(rows, start=3):
        if len(row) != ATTRIBUTES + 1 or any(value not in ("-1", "1") for value in row[1:]):
            raise BetaVAEError(f"{path} line {number} is not a file name and {ATTRIBUTES} values of -1 or 1; "
                               "download it again")
    if LABEL not in lines[1].split():
        raise BetaVAEError(f"{path} names no {LABEL} attribute; use the official {ATTRIBUTE_FILE}")
    values = np.array([[value == "1" for value in row[1:]] for row in rows], dtype=bool).reshape(-1, ATTRIBUTES)
    return Attributes(tuple(row[0] for row in rows), tuple(lines[1].split()), values)


def fill_images(folder: Path, files: tuple[str, ...], out: np.ndarray, log: Log) -> None:
    """Each listed image read, cropped and resized into `out` (a missing or unreadable one is one line naming it)."""
    for i, name in enumerate(files):
        path = folder / name
        if not path.is_file():
            raise BetaVAEError(f"{path} is listed in {ATTRIBUTE_FILE} but does not exist; extract "
                               "img_align_celeba.zip again")
        pixels = fit_to_size(read_image(path), SIZE)
        out[i] = pixels[..., None] if pixels.ndim == 2 else pixels
        if i % 20_000 == 0:
            log(f"betavae: celeba: {i + 1:,}/{len(files):,} images resized")


def grid(data_dir: str | None = None, log: Log = to_stderr) -> tuple[StoredImages, Attributes]:
    """Every listed image (memory-mapped from the cache, made once) and the attributes."""
    folder = data_folder(data_dir, NAME)
    for path in (folder / ATTRIBUTE_FILE, folder / IMAGE_FOLDER):
        if not path.exists():
            raise BetaVAEError(f"{path} does not exist; `betavae fetch {NAME}` says where to get it "
                               "(pass --data-dir FOLDER to name the folder holding it)")
    attributes = read_attributes(folder / ATTRIBUTE_FILE)
    images_folder = folder / IMAGE_FOLDER
    key = stat_key([folder / ATTRIBUTE_FILE, images_folder], CACHE_VERSION)
    shape = (len(attributes.files), SIZE, SIZE, 3)
    images = cached_array(cache_dir() / "grids" / f"{NAME}-{key}.npy", shape,
                          lambda out: fill_images(images_folder, attributes.files, out, log), log)
    return StoredImages(images, np.arange(len(images)), str(images_folder)), attributes


def split_indices(n: int, val_size: int) -> dict[str, np.ndarray]:
    """The official test partition at the end, validation the last `val_size` images before it, the rest training."""
    n_test = max(1, round(n * TEST_SHARE))
    cut = n - n_test - val_size
    if cut <= 0:
        raise BetaVAEError(f"val_size {val_size} leaves no training images out of {n - n_test}; lower --val-size")
    return {"train": np.arange(cut), "val": np.arange(cut, n - n_test), "test": np.arange(n - n_test, n)}


def labelled_split(images: StoredImages, attributes: Attributes, index: np.ndarray) -> Split:
    """The images at `index`, kept in the cache, labelled by their Smiling attribute."""
    return Split(images.take(torch.from_numpy(index)), torch.from_numpy(attributes.labels()[index]))


def load_split(data_dir: str | None, val_size: int, name: str) -> Split:
    images, attributes = grid(data_dir)
    return labelled_split(images, attributes, split_indices(len(images), val_size)[name])


def load(data_dir: str | None, val_size: int) -> Data:
    images, attributes = grid(data_dir)
    index = split_indices(len(images), val_size)
    return Data(NAME, *(labelled_split(images, attributes, index[name]) for name in ("train", "val", "test")))


def fetch(data_dir: str | None = None) -> str:
    """Check the attribute list's published checksum, make the image cache, and say what it holds; where the files
    are missing, say where they come from and where to put them."""
    folder = data_folder(data_dir, NAME)
    missing = [name for name in (IMAGE_FOLDER, ATTRIBUTE_FILE) if not (folder / name).exists()]
    if missing:
        raise BetaVAEError(f"{NAME}: {', '.join(missing)} not in {folder} (nothing is downloaded here).\n"
                           f"  Download the official files from {URL},\n"
                           f"  extract img_align_celeba.zip and put {IMAGE_FOLDER}/ and {ATTRIBUTE_FILE} in {folder}, "
                           "or pass --data-dir FOLDER (or set BETAVAE_DATA).\n"
                           f"  Then `betavae fetch {NAME}` checks {ATTRIBUTE_FILE} against the sha256 published by "
                           f"{PIN.source}.")
    PIN.check(folder)
    images, attributes = grid(data_dir)
    return (f"{NAME}: {len(images):,} colour images of {SIZE}x{SIZE} with {ATTRIBUTES} attributes (label: {LABEL}, "
            f"{attributes.labels().mean():.0%} of them) from {folder}; sha256 of {ATTRIBUTE_FILE} as published "
            f"({PIN.source})")
