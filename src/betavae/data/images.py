"""The user's own images: an .npz of arrays, a folder of .npy arrays (memory-mapped: data larger than memory), or a
folder of PNG, JPEG or WebP files (one subfolder per class, optionally). Images are kept as uint8 (N, C, H, W), C = 1
(grey) or 3 (RGB); `--image-size` center-crops and resizes them once, on load, and the result is cached as a folder of
.npy arrays, read memory-mapped (image_cache.py).

An image file is read by what its pixels mean, whatever mode Pillow opens it in: 16-bit grey is scaled to 0..255 (not
clipped); palette images through their palette (and its transparency). An image with transparency whose visible part
is one colour, ink drawn over a transparent background as drawing programs save a digit, is read as its alpha channel:
the coverage, white on black as in MNIST, whatever the ink's colour. Any other image with transparency is composited
over black. A photo is turned upright by its EXIF orientation, as a photo viewer shows it. A folder whose images are
all grey stays grey (1 channel); one with any colour image is read as RGB, its
grey images converted.
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

Log = Callable[[str], None]
NPY_MAGIC, ZIP_MAGIC = b"\x93NUMPY", b"PK"
GREY_16 = ("I", "I;16", "I;16B", "I;16L", "I;16N")  # 16-bit grey, as Pillow versions open it
INK_SPREAD = 8  # visible pixels within this many levels of one colour (per channel) are one ink
CHANNELS = (1, 3, 4)  # grey, RGB, RGBA (composited over black)
SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
MAX_CLASSES = 1_000_000  # labels are class numbers: counts per class are kept, so a label is an index, not an id

IMAGE_KEYS = ("images", "x", "x_train", "imgs")
# A folder of .npy arrays (the cache's format): each file and the key its array is read under.
ARRAY_FILES = {"images": "train_images.npy", "labels": "train_labels.npy", "test_images": "test_images.npy",
               "test_labels": "test_labels.npy"}
LABEL_KEYS = ("labels", "y", "y_train")


def say(line: str) -> None:
    """Notes about the data, on stderr."""
    print(line, file=sys.stderr)


def to_uint8(images: np.ndarray, source: str, log: Log = say) -> np.ndarray:
    """(N,H,W), (N,H,W,C) or (N,C,H,W), C in 1, 3 or 4 (RGBA), uint8 or float in [0,1] -> (N,C,H,W) uint8, C 1 or 3.

    A 4-d array whose last axis is 1, 3 or 4 is read as channels-last, any other as channels-first: (N,3,H,3) is N
    images of 3xH with 3 channels. RGBA is composited over black (the alpha channel is not kept), and `log` says so."""
    images = channels_first(np.asarray(images), source)
    if images.dtype == bool:
        images = images.astype(np.uint8) * 255
    elif images.dtype != np.uint8:
        if not np.issubdtype(images.dtype, np.floating):
            raise BetaVAEError(f"{source}: images must be uint8 or float in [0,1], got {images.dtype}")
        if not np.isfinite(images).all() or images.min() < 0 or images.max() > 1:
            raise BetaVAEError(f"{source}: float images must lie in [0,1]; rescale them (e.g. divide by 255)")
        levels = np.rint(images * 255)
        change = float(np.abs(levels / 255 - images).max()) if images.size else 0.0
        if change > 1e-6:  # not 8-bit levels k/255: stored as 8-bit all the same (the likelihoods are of 8-bit pixels)
            log(f"betavae: {source}: float images rounded to 8-bit levels k/255 (by up to {change:.2g})")
        images = levels.astype(np.uint8)
    if images.shape[1] == 4:
        log(f"betavae: {source}: RGBA images composited over black (the alpha channel is not kept)")
        images = np.rint(images[:, :3] * (images[:, 3:].astype(np.float32) / 255)).astype(np.uint8)
    return images


def channels_first(images: np.ndarray, source: str) -> np.ndarray:
    """An array of images as (N,C,H,W), C in 1, 3 or 4, by the layout rule of `to_uint8`; any other shape is one line."""
    if images.ndim == 3:
        return images[:, None]
    if images.ndim == 4 and images.shape[3] in CHANNELS:
        return images.transpose(0, 3, 1, 2)
    if images.ndim == 4 and images.shape[1] in CHANNELS:
        return images
    raise BetaVAEError(f"{source}: images must have shape (N,H,W), (N,H,W,C) or (N,C,H,W) with C = 1, 3 or 4 (RGBA), "
                       f"got {images.shape}; save them in one of these layouts")


def fit_to_size(pixels: np.ndarray, size: int) -> np.ndarray:
    """One image (H,W) or (H,W,3) uint8 center-cropped to a square and resized to size x size with the area (box)
    filter, which averages every source pixel a target pixel covers."""
    from PIL import Image

    height, width = pixels.shape[:2]
    side = min(height, width)
    top, left = (height - side) // 2, (width - side) // 2
    square = np.ascontiguousarray(pixels[top:top + side, left:left + side])
    if side == size:
        return square
    return np.asarray(Image.fromarray(square).resize((size, size), Image.Resampling.BOX))


def resized(images: np.ndarray, size: int) -> np.ndarray:
    """Images (N,C,H,W) uint8, each fitted to size x size (`fit_to_size`); size 0 keeps them as they are."""
    if not size:
        return images
    channels = images.shape[1]
    fitted = [fit_to_size(image[..., 0] if channels == 1 else image, size) for image in images.transpose(0, 2, 3, 1)]
    if not fitted:
        return np.zeros((0, channels, size, size), np.uint8)
    return np.ascontiguousarray(np.stack(fitted).reshape(len(images), size, size, channels).transpose(0, 3, 1, 2))


def split_off_test(images: np.ndarray, labels: np.ndarray, fraction: float = 0.1) -> RawData:
    """Without a given test split, the last `fraction` of the images become the test set."""
    n_test = max(1, int(round(len(images) * fraction)))
    if len(images) < 2:
        raise BetaVAEError("need at least 2 images to make a training and a test split")
    return RawData(images[:-n_test], labels[:-n_test], images[-n_test:], labels[-n_test:])


def read_npz(path: str | Path, image_size: int = 0, log: Log = say) -> RawData:
    """Images under 'images' (or 'x'), optional 'labels' (or 'y'), optional 'test_images'/'test_labels'; with an
    `image_size`, each image center-cropped and resized to it."""
    path = Path(path)
    try:
        with open_npz(path, "an .npz file of arrays") as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        reason = "it holds Python objects, which are never loaded" if "allow_pickle" in str(error) else first_line(error)
        raise BetaVAEError(f"{path} is not a readable .npz file of arrays ({reason})") from None
    return from_arrays(arrays, path, image_size, log)


def read_arrays(folder: str | Path, image_size: int = 0, log: Log = say) -> RawData:
    """A folder of .npy arrays, the cache's own format (`ARRAY_FILES`: train_images.npy, and optionally
    train_labels.npy, test_images.npy, test_labels.npy; the layouts of an .npz), memory-mapped read-only: uint8 images
    of 1 or 3 channels are never read whole, others are converted in memory; `image_size` as for an .npz."""
    folder = Path(folder)
    arrays = {key: load_array(folder / name) for key, name in ARRAY_FILES.items() if (folder / name).is_file()}
    return from_arrays(arrays, folder, image_size, log)


def load_array(path: Path) -> np.ndarray:
    """One .npy array, memory-mapped read-only (never unpickled)."""
    try:
        return np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BetaVAEError(f"{path} is not a readable .npy array ({first_line(error)}); save it with "
                           "np.save(path, array)") from None


def is_arrays_folder(path: Path) -> bool:
    """Whether a path is a folder of .npy arrays (it holds train_images.npy) rather than of image files."""
    return path.is_dir() and (path / ARRAY_FILES["images"]).is_file()


def from_arrays(arrays: dict[str, np.ndarray], path: Path, image_size: int = 0, log: Log = say) -> RawData:
    """The splits in a dict of arrays (an .npz's, or a folder's of .npy files): images under one of IMAGE_KEYS,
    labels under one of LABEL_KEYS, optional test_images and test_labels, else the last 10% is the test split."""
    image_keys = [k for k in IMAGE_KEYS if k in arrays]
    if not image_keys:
        raise BetaVAEError(f"{path} has no images; store them under one of: {', '.join(IMAGE_KEYS)}")
    image_key = image_keys[0]
    if len(image_keys) > 1:
        log(f"betavae: {path}: images read from {image_key!r}; also under {', '.join(map(repr, image_keys[1:]))}, "
            "left out")
    images = resized(to_uint8(arrays[image_key], str(path), log), image_size)
    labels = read_labels(arrays, LABEL_KEYS, len(images), path)
    if "test_images" not in arrays:
        return split_off_test(images, labels)
    test_images = resized(to_uint8(arrays["test_images"], str(path), lambda line: None), image_size)
    if test_images.shape[1:] != images.shape[1:]:
        raise BetaVAEError(f"{path}: test_images are {test_images.shape[1:]}, training images {images.shape[1:]} "
                           "(channels, height, width); store both alike")
    return RawData(images, labels, test_images, read_labels(arrays, ("test_labels",), len(test_images), path))


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


def read_labels(arrays: dict, keys: tuple[str, ...], n: int, path: Path, cache: bool = False) -> np.ndarray:
    key = next((k for k in keys if k in arrays), None)
    if key is None:
        return np.full(n, -1, dtype=np.int64)
    labels = np.asarray(arrays[key])
    if labels.ndim != 1:
        raise BetaVAEError(f"{path}: labels under {key!r} have shape {labels.shape}; store one class number per "
                           f"image, shape ({n},)")
    if len(labels) != n:
        raise BetaVAEError(f"{path}: {len(labels)} labels for {n} images under {key!r}")
    if not (np.issubdtype(labels.dtype, np.integer) or labels.dtype == bool):
        raise BetaVAEError(f"{path}: labels under {key!r} are {labels.dtype}, not integers; store class numbers "
                           "0, 1, 2, ... (map names to numbers first)")
    unlabelled = cache and len(labels) and labels.min() == labels.max() == -1  # the cache's images without labels
    if len(labels) and not unlabelled and not 0 <= labels.min() <= labels.max() < MAX_CLASSES:
        raise BetaVAEError(f"{path}: labels under {key!r} run from {labels.min()} to {labels.max()}; store class "
                           f"numbers 0, 1, 2, ... below {MAX_CLASSES:,} (renumber them first)")
    return labels.astype(np.int64)


def image_files(folder: Path, log: Log = say) -> list[tuple[int, Path]]:
    """(label, file) of every image in a folder: with subfolders holding images, each is a class labelled by its
    sorted position (the images at the top are left out, and `log` says so); else the images at the top, label -1."""
    unreadable: list[str] = []  # FIFOs, sockets, devices and dangling links with an image's name: never opened
    hidden_files: list[str] = []  # .x.png, and macOS's ._x.png (metadata, not an image): not the user's pictures

    def images_in(place: Path) -> list[Path]:
        named = sorted(p for p in place.iterdir() if p.suffix.lower() in SUFFIXES)
        unreadable.extend(str(p) for p in named if not p.is_file() and not p.is_dir() and str(p) not in unreadable)
        hidden_files.extend(str(p) for p in named if p.name.startswith(".") and str(p) not in hidden_files)
        return [p for p in named if p.is_file() and not p.name.startswith(".")]

    subfolders = sorted(p for p in folder.iterdir() if p.is_dir())
    loops = [p.name for p in subfolders if p.is_symlink() and folder.resolve().is_relative_to(p.resolve())]
    if loops:  # a link to the folder or above it would make the folder a class of itself
        log(f"betavae: {folder}: links to the folder itself or above it are not classes, left out: {', '.join(loops)}")
        subfolders = [p for p in subfolders if p.name not in loops]
    hidden = [p.name for p in subfolders if p.name.startswith((".", "__"))]  # .thumbnails, __MACOSX: not classes
    classes = [(c, images_in(c)) for c in subfolders if c.name not in hidden]
    if not any(paths for _, paths in classes):
        classes = []
    files = [(i, f) for i, (_, paths) in enumerate(classes) for f in paths] or [(-1, f) for f in images_in(folder)]
    if not files:
        raise BetaVAEError(f"{folder} holds no {', '.join(SUFFIXES)} files, neither at its top nor in subfolders; put "
                           "images there (optionally one subfolder per class)")
    if classes and hidden:
        log(f"betavae: {folder}: hidden folders are not classes, left out: {', '.join(hidden)}")
    nested = [f"{c.name}/{p.name}" for c, _ in classes for p in sorted(c.iterdir()) if p.is_dir()]
    if nested:  # a class is the images directly in its folder
        log(f"betavae: {folder}: folders inside class folders are not read: {', '.join(nested[:3])}"
            f"{' ...' if len(nested) > 3 else ''}")
    empty = [c.name for c, paths in classes if not paths]
    if empty:  # kept as labels, so that every class keeps its folder's sorted position (folders 0-9: digits 0-9)
        log(f"betavae: {folder}: class folders with no images (their labels stay unused): {', '.join(empty)}")
    if classes and images_in(folder):
        log(f"betavae: {folder}: the images at the top are left out; the subfolders are the classes")
    for left_out, what in ((unreadable, "not regular files (a FIFO, a socket, a device or a dangling link?)"),
                           (hidden_files, "hidden files (._x.png is macOS's metadata, not an image)")):
        if left_out:
            shown = ", ".join(left_out[:3]) + (f" and {len(left_out) - 3} more" if len(left_out) > 3 else "")
            log(f"betavae: {what}, left out: {shown}")
    return files


def read_folder(folder: str | Path, image_size: int = 0, log: Log = say) -> RawData:
    """PNG, JPEG and WebP files (`image_files`), of one size unless `image_size` fits each to a square of that size;
    grey (N,1,H,W) when every image is grey, else RGB (N,3,H,W), the grey ones converted (and `log` says how many)."""
    folder = Path(folder)
    files = image_files(folder, log)
    images = []
    for _, path in files:
        pixels = read_image(path)
        images.append(fit_to_size(pixels, image_size) if image_size else pixels)
        if images[-1].shape[:2] != images[0].shape[:2]:
            raise BetaVAEError(f"{path} is {size_of(images[-1])}, but {files[0][1]} is {size_of(images[0])}; give "
                               "--image-size S to crop and resize every image to SxS, or resize them alike")
    grey = sum(pixels.ndim == 2 for pixels in images)
    if grey < len(images):
        if grey:
            log(f"betavae: {folder}: {grey} grey images converted to RGB (the others have colour)")
        images = [np.dstack([pixels] * 3) if pixels.ndim == 2 else pixels for pixels in images]
    stacked = np.stack(images)
    stacked = stacked[:, None] if stacked.ndim == 3 else stacked.transpose(0, 3, 1, 2)
    labels = np.array([label for label, _ in files], dtype=np.int64)
    order = np.random.default_rng(0).permutation(len(files))  # mix classes before the test split is cut off
    return split_off_test(np.ascontiguousarray(stacked[order]), labels[order])


def size_of(pixels: np.ndarray) -> str:
    """An image's size as a user reads it: width x height."""
    return f"{pixels.shape[1]}x{pixels.shape[0]}"


def read_image(path: Path) -> np.ndarray:
    """One image file by its meaning (see the module's docstring): grey (H, W) or RGB (H, W, 3) uint8; a file Pillow
    cannot read, a truncated one or a decompression bomb is one line naming the file."""
    from PIL import Image, ImageOps

    try:
        with warnings.catch_warnings():  # an image over Pillow's pixel limit is refused, not decoded with a warning
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                return pixels_of(ImageOps.exif_transpose(image), str(path))  # upright, as a photo viewer shows it
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BetaVAEError(f"{path} has more pixels than an image may (Pillow's limit, {Image.MAX_IMAGE_PIXELS:,}, "
                           "guards against decompression bombs); shrink it or leave it out") from None
    except (OSError, SyntaxError, ValueError, EOFError, zlib.error, struct.error) as error:
        raise BetaVAEError(f"{path} is not a readable image ({first_line(error)}); replace or remove it") from None


def pixels_of(image: "Image.Image", source: str) -> np.ndarray:
    """An open Pillow image by what its mode means: grey levels (H, W) uint8 when it has no colour (or is ink over
    transparency), else RGB (H, W, 3) uint8, composited over black where it has transparency."""
    from PIL import Image

    if image.mode in GREY_16:
        return scale_16_bit(np.asarray(image), source)
    if image.mode in ("1", "L") and not image.has_transparency_data:
        return np.asarray(image.convert("L"))
    rgba = np.asarray(image.convert("RGBA"))
    if is_ink(rgba):
        return rgba[..., 3].copy()
    black = Image.new("RGBA", image.size, (0, 0, 0, 255))
    composited = Image.alpha_composite(black, Image.fromarray(rgba))
    grey = (rgba[..., :3] == rgba[..., :1])[rgba[..., 3] > 0].all()
    return np.asarray(composited.convert("L" if grey else "RGB"))


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
