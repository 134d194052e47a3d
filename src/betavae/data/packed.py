"""Binary images kept bit-packed, eight pixels a byte, and unpacked only for the images a step asks for.

dSprites' 737,280 images take 377 MB packed against 3 GB as bool, so the data set stays packed in memory (and on the
GPU) and each batch is unpacked on the fly; indexing returns bool images, as a tensor of bool images would.
`PaintedSprites` does the same for images made from binary sprites by a per-image rule (colour-dSprites: 9 GB as
bytes), painting each batch when it is unpacked.
"""

from __future__ import annotations

import math
import warnings
from typing import Protocol

import numpy as np
import torch

from .lazy import LazyImages

_SHIFTS: dict[torch.device, torch.Tensor] = {}  # per device, made once (a CUDA graph cannot copy to the GPU)


class PackedImages(LazyImages):
    """Binary images (N, C, H, W) stored as rows of packed bits (N, ceil(C*H*W / 8)) uint8, given out as bool."""

    dtype = torch.bool

    def __init__(self, rows: torch.Tensor | np.ndarray, image_shape: tuple[int, int, int]):
        with warnings.catch_warnings():  # a read-only memory-mapped cache is shared, not copied: nothing writes to it
            warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
            self.rows = torch.as_tensor(rows)
        self.image_shape = tuple(image_shape)
        if self.rows.dtype != torch.uint8 or self.rows.ndim != 2 or \
                self.rows.shape[1] != math.ceil(math.prod(self.image_shape) / 8):
            raise ValueError(f"packed rows of {tuple(self.rows.shape)} {self.rows.dtype} do not hold images of "
                             f"{self.image_shape}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def device(self) -> torch.device:
        return self.rows.device

    def batch(self, index) -> torch.Tensor:
        """The chosen images unpacked, as bool."""
        return unpack_rows(self.rows[index], self.image_shape)

    def take(self, index) -> "PackedImages":
        """The chosen images, still packed."""
        return PackedImages(self.rows[index], self.image_shape)

    def to(self, device: torch.device | str) -> "PackedImages":
        return PackedImages(self.rows.to(device), self.image_shape)

    def stored(self) -> tuple[torch.Tensor, ...]:
        """The tensors that determine the images: what a data fingerprint hashes."""
        return (self.rows,)


class Painter(Protocol):
    """Turns binary sprites (N, 1, H, W) and their grid indices (N,) into images (N, C, H, W) float32 in [0, 1]."""

    name: str

    def paint(self, sprites: torch.Tensor, index: torch.Tensor) -> torch.Tensor: ...


class PaintedSprites(LazyImages):
    """Images made from bit-packed binary sprites by a painter that sees each sprite and its grid index alone, so an
    image is a function of its index: kept packed (plus the index, 8 bytes an image) and painted per batch."""

    most_at_once = 256  # images painted at once (a painter may hold a few int64 tensors the size of its images)

    def __init__(self, sprites: PackedImages, index: torch.Tensor, painter: Painter, channels: int):
        self.sprites, self.index, self.painter, self.channels = sprites, torch.as_tensor(index), painter, channels
        if len(self.index) != len(sprites):
            raise ValueError(f"{len(self.index)} grid indices for {len(sprites)} sprites")

    def __len__(self) -> int:
        return len(self.sprites)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return (self.channels, *self.sprites.image_shape[1:])

    @property
    def device(self) -> torch.device:
        return self.sprites.device

    def batch(self, index) -> torch.Tensor:
        """The chosen images painted, float32, at most `most_at_once` at a time."""
        sprites, grid_index, chunk = self.sprites[index], self.index[index], self.most_at_once
        if len(sprites) <= chunk:
            return self.painter.paint(sprites, grid_index)
        return torch.cat([self.painter.paint(sprites[i:i + chunk], grid_index[i:i + chunk])
                          for i in range(0, len(sprites), chunk)])

    def take(self, index) -> "PaintedSprites":
        """The chosen images, still packed."""
        return PaintedSprites(self.sprites.take(index), self.index[index], self.painter, self.channels)

    def to(self, device: torch.device | str) -> "PaintedSprites":
        return PaintedSprites(self.sprites.to(device), self.index.to(device), self.painter, self.channels)

    def stored(self) -> tuple[torch.Tensor, ...]:
        """The sprites, their grid indices and the painter's name: what a data fingerprint hashes."""
        return (*self.sprites.stored(), self.index, torch.tensor(list(self.painter.name.encode()), dtype=torch.uint8))


def unpack_rows(rows: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Packed rows (N, B) uint8 -> bool images (N, *image_shape), on the rows' device."""
    if rows.device not in _SHIFTS:  # numpy's packbits order: the first pixel is the high bit
        _SHIFTS[rows.device] = torch.arange(7, -1, -1, dtype=torch.uint8, device=rows.device)
    bits = (rows.unsqueeze(-1) >> _SHIFTS[rows.device]) & 1
    return bits.view(len(rows), -1)[:, :math.prod(image_shape)].bool().view(len(rows), *image_shape)
