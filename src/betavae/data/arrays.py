"""Images larger than memory: uint8 arrays kept as they are stored, memory-mapped read-only from .npy files, and turned
into float32 one batch at a time (`ByteImages`).

A mapped array's pages count as the process's resident memory once read, and the kernel drops them only under memory
pressure. Nor are they only the bytes read: a page fault maps the whole page-cache folio around it (after readahead,
up to megabytes on kernels with large folios), so 64 random images of 12 KB can map 128 MB, and a few hundred batches
most of a 6 GB file. So after every read (a batch, or a block of a pass over a split) the pages are handed back
(madvise MADV_DONTNEED: they stay in the page cache, and the next read maps them again, a minor fault per page).
"""

from __future__ import annotations

import hashlib
import mmap
from typing import Iterator

import numpy as np
import torch

from .lazy import LazyImages


BLOCK_BYTES = 64 << 20  # bytes per block of a pass over a whole array (a checksum)
CHUNK_BYTES = 64 << 20  # float32 bytes per chunk of a pass over a whole split (mean image, fingerprint, validation)


def mapping_of(array: np.ndarray) -> mmap.mmap | None:
    """The memory map an array's pixels live in (np.load with mmap_mode, or any view of one), else None."""
    base = array
    while base is not None and not isinstance(base, mmap.mmap):
        base = getattr(base, "base", None)
    return base


def release(array: np.ndarray) -> None:
    """Hand a mapped array's resident pages back to the page cache (nothing for an array in memory)."""
    mapping = mapping_of(array)
    if mapping is not None and hasattr(mmap, "MADV_DONTNEED"):
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):  # a closed map, or a platform without it: only memory use differs
            pass


def row_chunks(array: np.ndarray, max_bytes: int = BLOCK_BYTES) -> Iterator[np.ndarray]:
    """Consecutive row blocks of an array, C-contiguous, of at most `max_bytes` each (one row at least); a mapped
    array's pages are handed back after each block, so a pass over it never holds it all resident."""
    rows = max(1, max_bytes // max(1, array[:1].nbytes))
    for start in range(0, len(array), rows):
        yield np.ascontiguousarray(array[start:start + rows])
        release(array)


class ByteImages(LazyImages):
    """uint8 images (N, C, H, W), in memory (a tensor) or memory-mapped (a read-only numpy array, with the positions
    of the chosen images when a few were taken), given out as float32 in [0, 1] one batch at a time."""

    eight_bit = True  # levels k/255 by construction

    def __init__(self, pixels: torch.Tensor | np.ndarray, positions: np.ndarray | None = None,
                 device: torch.device | str = "cpu"):
        self.pixels, self.positions, self._device = pixels, positions, torch.device(device)

    @staticmethod
    def of(array: np.ndarray) -> "ByteImages":
        """(N, C, H, W) or grey (N, H, W) uint8: kept mapped when it is mapped, else shared as a tensor."""
        array = array[:, None] if array.ndim == 3 else array
        if mapping_of(array) is not None:
            return ByteImages(array)
        return ByteImages(torch.from_numpy(np.require(array, requirements=["C", "W"])))

    @property
    def mapped(self) -> bool:
        """Whether the pixels are read from a memory-mapped file (batch by batch, on the CPU)."""
        return isinstance(self.pixels, np.ndarray)

    def __len__(self) -> int:
        return len(self.positions) if self.positions is not None else len(self.pixels)

    @property
    def image_shape(self) -> tuple[int, ...]:
        return tuple(self.pixels.shape[1:])

    @property
    def device(self) -> torch.device:
        return self._device if self.mapped else self.pixels.device

    @property
    def most_at_once(self) -> int:
        """As many images as CHUNK_BYTES hold as float32."""
        return max(1, CHUNK_BYTES // (4 * max(1, self.shape[1:].numel())))

    def batch(self, index) -> torch.Tensor:
        """The chosen images as float32 in [0, 1]."""
        return self._bytes(index).to(self.device).float().div_(255.0)

    def _bytes(self, index) -> torch.Tensor:
        """The chosen images' uint8 pixels (read from the file when mapped)."""
        if not self.mapped:
            return self.pixels[index]
        chosen = index if isinstance(index, slice) and self.positions is None else self._positions(index)
        block = np.array(self.pixels[chosen], order="C")  # a copy: the tensor never shares the read-only file
        release(self.pixels)  # after every read: what one read maps is bounded, what many would map is not
        return torch.from_numpy(block)

    def _positions(self, index) -> np.ndarray:
        """Rows of the mapped array that an index (slice, tensor or array of this set's images) picks."""
        chosen = np.arange(len(self))[index] if isinstance(index, slice) else torch.as_tensor(index).cpu().numpy()
        return chosen if self.positions is None else self.positions[chosen]

    def take(self, index) -> "ByteImages":
        """The chosen images, still uint8 (mapped ones are not read: only their positions are kept)."""
        if not self.mapped:
            return ByteImages(self.pixels[index])
        return ByteImages(self.pixels, self._positions(index), self._device)

    def to(self, device: torch.device | str) -> "ByteImages":
        """On another device: images in memory move; mapped ones stay in the file and each batch is moved."""
        if not self.mapped:
            return ByteImages(self.pixels.to(device))
        return ByteImages(self.pixels, self.positions, device)

    def update_digest(self, digest: "hashlib._Hash") -> None:
        """Feed a digest exactly what a float32 tensor of these images gives (shape, dtype, bytes), chunk by chunk, so
        that a data fingerprint does not depend on how the images are stored."""
        digest.update(f"{tuple(self.shape)} {self.dtype}".encode())
        for chunk in self.split(CHUNK_BYTES):
            digest.update(chunk.cpu().contiguous().numpy().data)

