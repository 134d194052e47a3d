"""Pairs of images that share some ground-truth factors: the weak supervision Ada-GVAE trains on (Locatello et al.
2020). For each image, a partner that differs in k of its factors, k drawn uniformly from 1 to (factors - 1), each
changed factor moved to another of its values, drawn from the training split alone (held-out images stay unseen)."""

from __future__ import annotations

import numpy as np
import torch

MAX_DRAWS = 1000  # redraws of a partner that fell outside the training split (each is one in about 37 on dSprites)


class FactorPairs:
    """Partners for the images of a training split that is a subset of a full factor grid (`sizes` levels per
    factor; `grid_index[i]`, ascending, is the grid index of training image i)."""

    def __init__(self, sizes: tuple[int, ...], grid_index: np.ndarray):
        self.sizes = torch.tensor(sizes)
        self.grid_index = torch.as_tensor(np.asarray(grid_index, dtype=np.int64))
        strides = np.cumprod((1,) + tuple(sizes[:0:-1]))[::-1].copy()
        self.strides = torch.as_tensor(strides, dtype=torch.long)  # grid index = sum(level * stride), C order

    def factors(self, positions: torch.Tensor) -> torch.Tensor:
        """Factor levels (N, F) of the training images at `positions`."""
        return self.grid_index[positions].unsqueeze(1) // self.strides % self.sizes

    def changed_factors(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, F) booleans: k random factors per row, k uniform on 1 .. F-1."""
        count = len(self.sizes)
        k = torch.randint(1, count, (n, 1), generator=generator)
        rank = torch.rand(n, count, generator=generator).argsort(1).argsort(1)
        return rank < k

    def partners(self, positions: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Training-split positions of one partner per image at `positions` (on the CPU)."""
        positions = positions.cpu()
        levels = self.factors(positions)
        changed = self.changed_factors(len(positions), generator)
        result = torch.full_like(positions, -1)
        pending = torch.arange(len(positions))
        for _ in range(MAX_DRAWS):
            shift = (torch.rand(len(pending), len(self.sizes), generator=generator) * (self.sizes - 1)).long() + 1
            moved = torch.where(changed[pending], (levels[pending] + shift) % self.sizes, levels[pending])
            grid = (moved * self.strides).sum(1)
            found = torch.searchsorted(self.grid_index, grid).clamp(max=len(self.grid_index) - 1)
            inside = self.grid_index[found] == grid
            result[pending[inside]] = found[inside]
            pending = pending[~inside]
            if not len(pending):
                return result
        result[pending] = positions[pending]  # practically never: a run of draws all outside the training split
        return result
