"""The user's own images: an .npz of arrays, or a folder of PNG files (one subfolder per class, optionally)."""

from __future__ import annotations

import sys
import zipfile
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import BetaVAEError, first_line
from .sources import RawData

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
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except FileNotFoundError:
        raise BetaVAEError(f"{path} does not exist; check the path") from None
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
    from PIL import Image, UnidentifiedImageError

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
        try:
            with Image.open(path) as image:
                colour += image.mode not in ("L", "1", "I", "I;16", "P", "LA")
                images.append(np.asarray(image.convert("L")))
        except (OSError, UnidentifiedImageError) as error:
            raise BetaVAEError(f"{path} is not a readable PNG ({error})") from None
        if images[-1].shape != images[0].shape:
            raise BetaVAEError(f"{path} is {images[-1].shape}, but {files[0][1]} is {images[0].shape}; "
                               "all images must have one size")
    if colour:
        log(f"betavae: {folder}: {colour} colour images converted to grey (colour is not supported yet)")
    labels = np.array([label for label, _ in files], dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(files))  # mix classes before the test split is cut off
    return split_off_test(np.stack(images)[order], labels[order])
