"""dSprites rendered from its factors, cached bit-packed, or read from the user's copy of the original file.

The grid of the original: shape (square, ellipse, heart) x scale (6 values, 0.5 to 1) x orientation (40 values,
linspace(0, 2*pi, 40), both ends included) x position x and y (32 values each, linspace(0, 1, 32)): 737,280
binary 64x64 images, indexed in that order. Each image is rendered analytically: a pixel is on when its centre,
mapped into the shape's own frame (translated, rotated, scaled), lies inside the shape; the heart is the closed
curve (x^2 + y^2 - 1)^3 = x^2 y^3. Positions map to centres in [0.2, 0.8] of the frame and the largest shape has
a circumradius of 0.18, so every shape stays inside the frame, as in the original. `DSPRITES` is the data set behind
the ground-truth interface (groundtruth.py) that the registry and the disentanglement metrics ask.
"""

from __future__ import annotations

import math
import os
import zipfile
from pathlib import Path

import numpy as np
import torch

from .. import atomic
from ..errors import BetaVAEError
from .groundtruth import GroundTruthData, Log, to_stderr
from .images import open_npz
from .packed import PackedImages

FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SIZE = 64
N_IMAGES = math.prod(SIZES)
ORIGINAL_FILE = "dsprites_ndarray_co1sh3sc6or40x32y32_64x64.npz"
CACHE_VERSION = 1  # bump when the renderer changes, so old caches are rebuilt
CENTRE_RANGE = (0.2, 0.8)
MAX_RADIUS = 0.18  # circumradius of every shape at scale 1, in frame units
# Half-size of each canonical shape so that its circumradius at scale 1 is MAX_RADIUS.
CANONICAL_RADIUS = {"square": math.sqrt(2.0), "ellipse": 1.0, "heart": 1.35}  # heart: measured on a fine grid


def factor_values() -> list[np.ndarray]:
    """The value of each factor level (shape as 0, 1, 2)."""
    return [np.arange(3.0), np.linspace(0.5, 1.0, 6), np.linspace(0.0, 2 * np.pi, 40),
            np.linspace(0.0, 1.0, 32), np.linspace(0.0, 1.0, 32)]


def index_to_factors(index: np.ndarray) -> np.ndarray:
    """Image indices -> (N, 5) factor levels, in the original's order."""
    return np.stack(np.unravel_index(np.asarray(index), SIZES), axis=1)


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    return np.ravel_multi_index(tuple(np.asarray(factors).T), SIZES)


def _inside(shape: int, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    if SHAPES[shape] == "square":
        return torch.maximum(p.abs(), q.abs()) <= 1.0
    if SHAPES[shape] == "ellipse":
        return p.pow(2) + (q / 0.5).pow(2) <= 1.0
    y = -q + 0.1  # image rows grow downwards; lift the heart so it is centred in its circumcircle
    return (p.pow(2) + y.pow(2) - 1.0).pow(3) - p.pow(2) * y.pow(3) <= 0.0


def render(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Binary images (N, 1, 64, 64) float32 of the given factor levels (N, 5)."""
    levels = torch.as_tensor(np.asarray(factors), dtype=torch.long)
    values = factor_values()
    centres = (torch.arange(SIZE, dtype=torch.float32) + 0.5) / SIZE
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    out = torch.zeros(len(levels), 1, SIZE, SIZE)
    low, high = CENTRE_RANGE
    for shape in range(3):
        chosen = (levels[:, 0] == shape).nonzero().flatten()
        if len(chosen) == 0:
            continue
        f = levels[chosen]
        level = lambda k: torch.as_tensor(values[k], dtype=torch.float32)[f[:, k]][:, None, None]  # noqa: E731
        scale, angle = level(1), level(2)
        cx, cy = low + (high - low) * level(3), low + (high - low) * level(4)
        half = scale * MAX_RADIUS / CANONICAL_RADIUS[SHAPES[shape]]
        du, dv = u - cx, v - cy
        cos, sin = torch.cos(angle), torch.sin(angle)
        p = (cos * du + sin * dv) / half
        q = (-sin * du + cos * dv) / half
        out[chosen, 0] = _inside(shape, p, q).float()
    return out


def render_packed(chunk: int = 8192, log: Log | None = None) -> np.ndarray:
    """Every image of the grid, in index order, bit-packed: (737280, 512) uint8 (about 377 MB)."""
    packed = np.empty((N_IMAGES, SIZE * SIZE // 8), dtype=np.uint8)
    for start in range(0, N_IMAGES, chunk):
        stop = min(start + chunk, N_IMAGES)
        images = render(index_to_factors(np.arange(start, stop)))
        packed[start:stop] = np.packbits(images.flatten(1).numpy().astype(np.uint8), axis=1)
        if log and (start // chunk) % 20 == 0:
            log(f"betavae: rendering dSprites {stop:,}/{N_IMAGES:,}")
    return packed


def cache_path() -> Path:
    from .sources import cache_dir
    return cache_dir() / f"dsprites-rendered-v{CACHE_VERSION}.npy"


def read_original(path: Path) -> np.ndarray:
    """The images of the original npz, bit-packed, after checking that its order is the grid's order."""
    try:
        with open_npz(path, "a dSprites npz", f"download {ORIGINAL_FILE} again") as stored:
            images, classes = stored["imgs"], stored["latents_classes"]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError, NotImplementedError) as error:
        raise BetaVAEError(f"{path} is not a readable dSprites npz ({error}); download {ORIGINAL_FILE} again") from None
    if images.shape != (N_IMAGES, SIZE, SIZE) or classes.shape != (N_IMAGES, 6):
        raise BetaVAEError(f"{path} holds images {images.shape} and factors {classes.shape}; expected "
                           f"({N_IMAGES}, 64, 64) and ({N_IMAGES}, 6) as in {ORIGINAL_FILE}")
    probe = np.arange(0, N_IMAGES, 997)
    if not np.array_equal(classes[probe, 1:], index_to_factors(probe)):
        raise BetaVAEError(f"{path}: the factor classes are not in the original order; use the unmodified file")
    return np.packbits(images.reshape(N_IMAGES, -1).astype(bool), axis=1)


def read_cache(path: Path) -> np.ndarray:
    try:
        packed = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as error:
        raise BetaVAEError(f"cache {path} is unreadable ({error})") from None
    if packed.shape != (N_IMAGES, SIZE * SIZE // 8) or packed.dtype != np.uint8:
        raise BetaVAEError(f"cache {path} has shape {packed.shape}, {packed.dtype}; it will be rebuilt")
    return packed


def packed_images(data_dir: str | os.PathLike | None = None, log: Log = to_stderr) -> np.ndarray:
    """The whole grid bit-packed (unpack it with data.PackedImages): from the user's original npz when --data-dir holds it, else from the cache,
    else rendered once (about two minutes on two cores) and cached."""
    if data_dir:
        folder = Path(data_dir)
        path = folder / ORIGINAL_FILE if folder.is_dir() else folder
        if not path.is_file():
            raise BetaVAEError(f"{path} does not exist; pass --data-dir the folder holding {ORIGINAL_FILE} "
                               "(or leave it out to render dSprites from its factors)")
        return read_original(path)
    path = cache_path()
    if path.is_file():
        try:
            return read_cache(path)
        except BetaVAEError as error:
            log(f"betavae: {error}")
    log(f"betavae: rendering the {N_IMAGES:,} dSprites images once into {path}")
    packed = render_packed(log=log)
    try:
        with atomic.atomic_path(path) as tmp, open(tmp, "wb") as stream:
            np.save(stream, packed)
    except OSError as error:
        log(f"betavae: could not write the cache {path} ({error}); continuing without it")
    return packed


class DSprites(GroundTruthData):
    """dSprites as a ground-truth data set: the grid rendered here (or read from the original file), bit-packed."""

    name = "dsprites"
    factor_names = FACTORS
    factor_sizes = SIZES
    image_shape = (1, SIZE, SIZE)
    traversal_factors = (2, 5, 0, 16, 16)  # a large heart in the middle of the frame, upright

    def images(self, factors: np.ndarray) -> torch.Tensor:
        return render(factors)

    def grid(self, data_dir: str | None = None, log: Log = to_stderr) -> PackedImages:
        return PackedImages(packed_images(data_dir, log), (1, SIZE, SIZE))

    def describe(self, grid: PackedImages, data_dir: str | None) -> str:
        return f"{self.name}: {len(grid):,} binary images of {SIZE}x{SIZE} from {data_dir or cache_path()}"


DSPRITES = DSprites()
