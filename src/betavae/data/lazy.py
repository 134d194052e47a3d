"""Images kept in a compact form (bit-packed, uint8 in a file or in memory) and turned into a tensor per batch.

`LazyImages` is the part of a tensor's interface a `Split` uses: len, shape, dtype, device, indexing by an int, a slice
or an index tensor, and `split` into chunks. A kind of storage says how it holds its images and how to make a batch
of them (`batch`); the rest is here, once.
"""

from __future__ import annotations

from typing import Iterator

import torch


class LazyImages:
    """A set of images (N, C, H, W) a batch of which is made on demand: subclasses give len, `image_shape`, `device`
    and `batch`, and may bound the images converted at once (`most_at_once`: a float copy of many is large)."""

    dtype = torch.float32  # of the images indexing gives
    image_shape: tuple[int, ...]  # (C, H, W)

    def __len__(self) -> int:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        raise NotImplementedError

    @property
    def most_at_once(self) -> int:
        """The most images a chunk of `split` holds (unbounded unless a storage says otherwise)."""
        return max(1, len(self))

    def batch(self, index: slice | torch.Tensor) -> torch.Tensor:
        """The chosen images (a slice or an index tensor) as a tensor (N, C, H, W) of `dtype` on `device`."""
        raise NotImplementedError

    @property
    def shape(self) -> torch.Size:
        return torch.Size((len(self), *self.image_shape))

    def is_floating_point(self) -> bool:
        return self.dtype.is_floating_point

    def __getitem__(self, index) -> torch.Tensor:
        """The chosen images: (N, C, H, W) for a slice or index tensor, (C, H, W) for an int."""
        if isinstance(index, int):
            return self.batch(slice(index, index + 1))[0]
        return self.batch(index)

    def split(self, size: int) -> Iterator[torch.Tensor]:
        """Consecutive chunks of at most `size` images (and at most `most_at_once`), each made on its own: never the
        whole set at once."""
        size = max(1, min(size, self.most_at_once))
        for start in range(0, len(self), size):
            yield self[start:start + size]
