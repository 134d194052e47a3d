"""The user's own images: an .npz of arrays, or a folder of PNG files (one subfolder per class, optionally).

A PNG is read by what its pixels mean, whatever mode Pillow opens it in: 16-bit grey is scaled to 0..255 (not
clipped); palette images through their palette (and its transparency); colour is turned grey (luma). An image with
transparency whose visible part is one colour, ink drawn over a transparent background as drawing programs save a
digit, is read as its alpha channel: the coverage, white on black as in MNIST, whatever the ink's colour. Any other
image with transparency is composited over black.
"""

from __future__ import annotations

import struct
import sys
import warnings
import zipfile
import zlib
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BetaVAEError, first_line
from .sources import RawData

NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK"
GREY_16 = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grey, as Pillow versions open it
INK_SPREAD = 8  # visible pixels within this many levels of one colour (per channel) are one ink

IMAGE_KEYS = ("images", "x", "x_train", "imgs")
LABEL_KEYS = ("labels", "y", "y_train")


def to_uint8(images: np.ndarray, source: str) -> np.ndarray:
    """(N,H,W) or (N,1,H,W), uint8 or float in [0,1] -> (N,H,W) uint8."""
    images = np.asarray(images)
    if images.ndim == 4 and images.shape[1] == 1:
        images = images[:, 0]
    if images.ndim != 3:
        raise BetaVAEError(f"{source}: images must have shape (N,H,W) or (N,1,H,W), got {images.shape}")
    if images.dtype == np.uint8:
        return images
    if images.dtype == bool:
        return images.astype(np.uint8) * 255
    if not np.issubdtype(images.dtype, np.floating):
        raise BetaVAEError(f"{source}: images must be uint8 or float in [0,1], got {images.dtype}")
    if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
        raise BetaVAEError(f"{source}: float images must lie in [0,1]; rescale them (e.g. divide by 255)")
    return np.rint(images * 255).astype(np.uint8)


def split_off_test(images: np.ndarray, labels: np.ndarray, fraction: float = 0.1) -> RawData:
    """Without a given test split, the last `fraction` of the images become the test set."""
    n_test = max(1, int(round(len(images) * fraction)))
    if len(images) < 2:
        raise BetaVAEError("need at least 2 images to make a training and a test split")
    return RawData(images[:-n_test], labels[:-n_test], images[-n_test:], labels[-n_test:])


def read_npz(path: str | Path) -> RawData:
    """Images under 'images' (or 'x'), optional 'labels' (or 'y'), optional 'test_images'/'test_labels'."""
    path = Path(path)
    try:
        with open_npz(path, "an .npz file of arrays") as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        reason = "it holds Python objects, which are never loaded" if "allow_pickle" in str(error) else first_line(error)
        raise BetaVAEError(f"{path} is not a readable .npz file of arrays ({reason})") from None
    image_key = next((k for k in IMAGE_KEYS if k in arrays), None)
    if image_key is None:
        raise BetaVAEError(f"{path} has no images; store them under one of: {', '.join(IMAGE_KEYS)}")
    images = to_uint8(arrays[image_key], str(path))
    labels = _labels(arrays, LABEL_KEYS, len(images), path)
    if "test_images" not in arrays:
        return split_off_test(images, labels)
    test_images = to_uint8(arrays["test_images"], str(path))
    if test_images.shape[1:] != images.shape[1:]:
        raise BetaVAEError(f"{path}: test_images are {test_images.shape[1:]}, training images {images.shape[1:]}")
    return RawData(images, labels, test_images, _labels(arrays, ("test_labels",), len(test_images), path))


def open_npz(path: Path, what: str, fix: str = "save it with np.savez(path, images=array)") -> np.lib.npyio.NpzFile:
    """np.load of an .npz archive (never pickles), after checking that the file is one: a missing file, or a single
    .npy array saved under an .npz name, is one line naming the file, what was expected (`what`) and the `fix`."""
    try:
        with open(path, "rb") as stream:
            magic = stream.read(len(NPY_MAGIC))
    except FileNotFoundError:
        raise BetaVAEError(f"{path} does not exist; check the path") from None
    except OSError as error:
        raise BetaVAEError(f"{path} cannot be read ({first_line(error)})") from None
    if magic.startswith(NPY_MAGIC):
        raise BetaVAEError(f"{path} is a single .npy array saved under an .npz name, not {what}; {fix}")
    if not magic.startswith(ZIP_MAGIC):
        raise BetaVAEError(f"{path} is not {what} (an .npz is a zip archive of arrays); {fix}")
    return np.load(path, allow_pickle=False)


def _labels(arrays: dict, keys: tuple[str, ...], n: int, path: Path) -> np.ndarray:
    key = next((k for k in keys if k in arrays), None)
    if key is None:
        return np.full(n, -1, dtype=np.int64)
    labels = np.asarray(arrays[key]).reshape(-1)
    if len(labels) != n:
        raise BetaVAEError(f"{path}: {len(labels)} labels for {n} images under {key!r}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise BetaVAEError(f"{path}: labels under {key!r} are {labels.dtype}, not integers; store class numbers "
                           "0, 1, 2, ... (map names to numbers first)")
    return labels.astype(np.int64)


def read_png_folder(folder: str | Path, log: Callable[[str], None] = lambda line: print(line, file=sys.stderr)
                    ) -> RawData:
    """PNG files of one size; with subfolders, each subfolder is a class labelled by its sorted position."""
    folder = Path(folder)
    classes = sorted(p for p in folder.iterdir() if p.is_dir() and any(p.glob("*.png")))
    groups = [(i, sorted(c.glob("*.png"))) for i, c in enumerate(classes)] or [(-1, sorted(folder.glob("*.png")))]
    files = [(label, f) for label, paths in groups for f in paths]
    if not files:
        raise BetaVAEError(f"{folder} holds no .png files, neither at its top nor in subfolders; put images there "
                           "(optionally one subfolder per class)")
    if classes and any(folder.glob("*.png")):
        log(f"betavae: {folder}: the PNGs at the top are left out; the subfolders are the classes")
    images, colour = [], 0
    for _, path in files:
        pixels, coloured = read_png(path)
        images.append(pixels)
        colour += coloured
        if images[-1].shape != images[0].shape:
            raise BetaVAEError(f"{path} is {images[-1].shape}, but {files[0][1]} is {images[0].shape}; "
                               "all images must have one size")
    if colour:
        log(f"betavae: {folder}: {colour} colour images converted to grey (colour is not supported yet)")
    labels = np.array([label for label, _ in files], dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(files))  # mix classes before the test split is cut off
    return split_off_test(np.stack(images)[order], labels[order])


def read_png(path: Path) -> tuple[np.ndarray, bool]:
    """One image file as grey levels (H, W) uint8 by its meaning (see the module's docstring), and whether it had
    colour; a file Pillow cannot read, a truncated one or a decompression bomb is one line naming the file."""
    from PIL import Image

    try:
        with warnings.catch_warnings():  # an image over Pillow's pixel limit is refused, not decoded with a warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return grey_levels(image)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BetaVAEError(f"{path} has more pixels than an image may (Pillow's limit, {Image.MAX_IMAGE_PIXELS:,}, "
                           "guards against decompression bombs); shrink it or leave it out") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as error:
        raise BetaVAEError(f"{path} is not a readable image ({first_line(error)}); replace or remove it") from None


def grey_levels(image: "Image.Image") -> tuple[np.ndarray, bool]:
    """An open Pillow image as grey levels (H, W) uint8 by what its mode means, and whether it had colour."""
    from PIL import Image

    if image.mode in GREY_16:
        return scale_16_bit(np.asarray(image), image.filename), False
    if image.mode in ("1", "L") and not image.has_transparency_data:
        return np.asarray(image.convert("L")), False
    rgba = np.asarray(image.convert("RGBA"))
    coloured = not (rgba[..., :3] == rgba[..., :1])[rgba[..., 3] > 0].all()
    if is_ink(rgba):
        return rgba[..., 3].copy(), coloured
    black = Image.new("RGBA", image.size, (0, 0, 0, 255))
    return np.asarray(Image.alpha_composite(black, Image.fromarray(rgba)).convert("L")), coloured


def is_ink(rgba: np.ndarray) -> bool:
    """Whether an RGBA image is one colour drawn over transparency, so that its alpha channel is its content: some
    pixels are transparent, and those at least half opaque all have one colour (within INK_SPREAD levels)."""
    alpha = rgba[..., 3]
    if alpha.min() == 255:
        return False
    solid = rgba[..., :3][alpha >= 128].astype(np.int16)
    return len(solid) == 0 or int((solid.max(0) - solid.min(0)).max()) <= INK_SPREAD


def scale_16_bit(levels: np.ndarray, source: str) -> np.ndarray:
    """16-bit grey levels (0 to 65535) scaled to 0..255, rounded."""
    levels = levels.astype(np.int64)
    if levels.size and (levels.min() < 0 or levels.max() > 65535):
        raise BetaVAEError(f"{source}: grey levels from {levels.min()} to {levels.max()} are not 16-bit (0 to 65535)")
    return np.rint(levels * (255 / 65535)).astype(np.uint8)
