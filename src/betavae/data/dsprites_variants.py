"""Colour-dSprites and noisy-dSprites, as disentanglement_lib defines them from dSprites' sprites (64x64x3).

- colour-dSprites: each image's sprite multiplied by a colour drawn uniformly in [0.5, 1) per channel; the background
  stays black.
- noisy-dSprites: the background replaced by uniform noise in [0, 1) per pixel and channel; the sprite stays white
  (disentanglement_lib's min(sprite + noise, 1)).

The factors are dSprites' own; the colour and the noise are not factors. disentanglement_lib draws them afresh for
every observation; here each image's draw is a fixed function of its grid index (a counter-based hash), so a data set
is a fixed set of 737,280 images: its splits, fingerprint and resume are exact, and the disentanglement metrics encode
the grid once and look codes up as for dSprites. Over a sample of factor tuples the colours and noise are as
independent and uniform as disentanglement_lib's; they differ only where a sample repeats a factor tuple.
"""

from __future__ import annotations

from abc import abstractmethod

import numpy as np
import torch

from .dsprites import SIZE, DSprites, cache_path, render
from .groundtruth import Log, to_stderr
from .packed import PackedImages, PaintedSprites

MASK_32 = 0xFFFFFFFF
COLOUR_SALT, NOISE_SALT = 0x0C010A12, 0x2A015E11  # separate streams for the two variants' draws
CHANNELS = 3


def _times(x: torch.Tensor, constant: int) -> torch.Tensor:
    """x * constant mod 2^32 for x below 2^32, in int64 without overflow (the constant split in 16-bit halves)."""
    low, high = constant & 0xFFFF, constant >> 16
    return (x * low + (((x * high) & 0xFFFF) << 16)) & MASK_32


def _mix(x: torch.Tensor) -> torch.Tensor:
    """A bijective mixing of 32-bit integers (xor-shift-multiply, as in common integer hashes)."""
    x = _times(x ^ (x >> 16), 0x7FEB352D)
    x = _times(x ^ (x >> 15), 0x846CA68B)
    return x ^ (x >> 16)


def uniform(keys: torch.Tensor, salt: int) -> torch.Tensor:
    """One number uniform in [0, 1) per integer key (0 to 2^62), the same on every device and every call."""
    keys = keys.long()
    bits = _mix((keys & MASK_32) ^ _mix((keys >> 32) ^ salt))
    return (bits >> 8).float() / 2 ** 24  # 24 bits: exact in float32, never 1


class _Painted(DSprites):
    """dSprites' grid and factors, each sprite painted by `paint` from itself and its grid index."""

    image_shape = (CHANNELS, SIZE, SIZE)

    @abstractmethod
    def paint(self, sprites: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        """Images (N, 3, H, W) float32 of bool sprites (N, 1, H, W) at grid indices (N,)."""

    def images(self, factors: np.ndarray) -> torch.Tensor:
        return self.paint(render(factors).bool(), torch.from_numpy(self.index_of(factors)))

    def grid(self, data_dir: str | None = None, log: Log = to_stderr) -> PaintedSprites:
        sprites: PackedImages = super().grid(data_dir, log)
        return PaintedSprites(sprites, torch.arange(len(sprites)), self, CHANNELS)

    def describe(self, grid: PaintedSprites, data_dir: str | None) -> str:
        return (f"{self.name}: {len(grid):,} colour images of {SIZE}x{SIZE}, painted from the dSprites grid of "
                f"{data_dir or cache_path()}")


class ColourDSprites(_Painted):
    """Each sprite in a random colour, uniform in [0.5, 1) per channel, on black."""

    name = "colour-dsprites"

    def paint(self, sprites: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        channel = torch.arange(CHANNELS, device=index.device)
        colour = 0.5 + 0.5 * uniform(index[:, None] * CHANNELS + channel, COLOUR_SALT)  # (N, 3)
        return sprites.float() * colour[:, :, None, None]


class NoisyDSprites(_Painted):
    """Each white sprite on a background of uniform noise, independent per pixel and channel."""

    name = "noisy-dsprites"

    def paint(self, sprites: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
        values = CHANNELS * SIZE * SIZE
        position = torch.arange(values, device=index.device)
        noise = uniform(index[:, None] * values + position, NOISE_SALT).view(len(index), CHANNELS, SIZE, SIZE)
        return torch.where(sprites, 1.0, noise)
