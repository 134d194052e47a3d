"""Binary images kept bit-packed, eight pixels a byte, and unpacked only for the images a step asks for.

dSprites' 737,280 images take 377 MB packed against 3 GB as bool, so the data set stays packed in memory (and on the
GPU) and each batch is unpacked on the fly; indexing returns bool images, as a tensor of bool images would.
"""

from __future__ import annotations

import math
from typing import Iterator

import numpy as np
import torch

_SHIFTS: dict[torch.device, torch.Tensor] = {}  # per device, made once (a CUDA graph cannot copy to the GPU)


class PackedImages:
    """Binary images (N, C, H, W) stored as rows of packed bits (N, ceil(C*H*W / 8)) uint8."""

    def __init__(self, rows: torch.Tensor | np.ndarray, image_shape: tuple[int, int, int]):
        self.rows = torch.as_tensor(rows)
        self.image_shape = tuple(image_shape)
        if self.rows.dtype != torch.uint8 or self.rows.ndim != 2 or \
                self.rows.shape[1] != math.ceil(math.prod(self.image_shape) / 8):
            raise ValueError(f"packed rows of {tuple(self.rows.shape)} {self.rows.dtype} do not hold images of "
                             f"{self.image_shape}")

    def __len__(self) -> int:
        return len(self.rows)

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.image_shape))

    @property
    def device(self) -> torch.device:
        return self.rows.device

    @property
    def dtype(self) -> torch.dtype:
        return torch.bool

    def is_floating_point(self) -> bool:
        return False

    def __getitem__(self, index) -> torch.Tensor:
        """The chosen images unpacked, as bool: (N, C, H, W) for a slice or index tensor, (C, H, W) for an int."""
        if isinstance(index, int):
            return self[index:index + 1][0]
        return unpack_rows(self.rows[index], self.image_shape)

    def take(self, index) -> "PackedImages":
        """The chosen images, still packed."""
        return PackedImages(self.rows[index], self.image_shape)

    def to(self, device: torch.device | str) -> "PackedImages":
        return PackedImages(self.rows.to(device), self.image_shape)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive chunks of at most `size` images, each unpacked on its own (never the whole set at once)."""
        for start in range(0, len(self), size):
            yield self[start:start + size]


def unpack_rows(rows: torch.Tensor, image_shape: tuple[int, int, int]) -> torch.Tensor:
    """Packed rows (N, B) uint8 -> bool images (N, *image_shape), on the rows' device."""
    if rows.device not in _SHIFTS:  # numpy's packbits order: the first pixel is the high bit
        _SHIFTS[rows.device] = torch.arange(7, -1, -1, dtype=torch.uint8, device=rows.device)
    bits = (rows.unsqueeze(-1) >> _SHIFTS[rows.device]) & 1
    return bits.view(len(rows), -1)[:, :math.prod(image_shape)].bool().view(len(rows), *image_shape)
