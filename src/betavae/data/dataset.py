"""Data as tensors: the whole split in one tensor, batches as index slices, optional dynamic binarization.

Images are float32 in [0,1], except data sets too large for that: binary ones (dSprites) stay bit-packed
(`PackedImages`, a 32nd of the memory) and unpack to bool per batch, those painted from binary sprites
(colour- and noisy-dSprites) stay packed and are painted per batch (`PaintedSprites`), and 8-bit images over
IN_MEMORY_BYTES stay uint8, memory-mapped when their file is (`ByteImages`), and become float per batch, as do the
ground-truth sets read from their own files (`StoredImages`). Each of these is a `LazyImages` (data/lazy.py); `as_float`
turns a batch of any into what models take."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Iterator

import numpy as np
import torch

from ..errors import BetaVAEError
from .arrays import ByteImages, release
from .lazy import LazyImages
from .sources import RawData

Images = torch.Tensor | LazyImages
# uint8 splits up to this size become one float32 tensor (4 times as large; batches are slices of it, the fastest
# path); larger ones stay uint8 and are converted per batch, memory-mapped when read from .npy files (data/arrays.py).
IN_MEMORY_BYTES = 256 << 20


@dataclass(frozen=True)
class Split:
    """Images (N,C,H,W), float32 in [0,1] or kept packed, and labels (N,) int64 (-1 where unknown)."""

    images: Images
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.images)

    @property
    def labelled(self) -> bool:
        """Whether every image has a label (unlabelled images carry -1)."""
        return len(self) > 0 and bool((self.labels >= 0).all())

    @staticmethod
    def from_numpy(images_uint8: np.ndarray, labels: np.ndarray) -> "Split":
        """A split from uint8 images, (N,C,H,W) or grey (N,H,W), and their labels: one float32 tensor up to
        IN_MEMORY_BYTES, else kept uint8 (and mapped, when the array is)."""
        labels = torch.from_numpy(np.array(labels, dtype=np.int64))  # a copy: a mapped file is never shared
        if images_uint8.nbytes > IN_MEMORY_BYTES:
            return Split(ByteImages.of(images_uint8), labels)
        pixels = torch.from_numpy(np.require(images_uint8, requirements=["C", "W"]))
        pixels = (pixels.unsqueeze(1) if pixels.ndim == 3 else pixels).float().div_(255.0)
        release(images_uint8)  # a mapped source's pages, read for the copy, go back to the page cache
        return Split(pixels, labels)

    def sample(self, n: int, seed: int = 0) -> "Split":
        """At most n images drawn without replacement by a fixed seed (the whole split when it is no larger)."""
        if n >= len(self):
            return self
        index = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].sort().values
        return self.take(index)

    def take(self, index: torch.Tensor | slice) -> "Split":
        """The chosen images and labels, stored as they are here (packed images stay packed)."""
        images = self.images[index] if isinstance(self.images, torch.Tensor) else self.images.take(index)
        return Split(images, self.labels[index])

    def mean_image(self, chunk: int = 8192) -> torch.Tensor:
        """The mean image (C,H,W) in float32, summed chunk by chunk (never a float copy of the whole split: a chunk of
        dSprites' is 128 MB as float32)."""
        total = torch.zeros(self.images.shape[1:], dtype=torch.float64)
        for part in self.images.split(chunk):
            total += as_float(part).sum(0, dtype=torch.float64)
        return (total / max(1, len(self))).float()


def as_float(images: torch.Tensor) -> torch.Tensor:
    """Pixels as float32 in [0,1]: float storage as it is, bool storage as 0 or 1."""
    return images if images.is_floating_point() else images.float()


@dataclass(frozen=True)
class Data:
    """Training, validation (last `val_size` of the official training set; may be empty) and test splits."""

    name: str
    train: Split
    val: Split
    test: Split

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def reference(self) -> Split:
        """The images figures show: validation (the test set is kept for evaluation), else training."""
        return self.val if len(self.val) else self.train

    def split(self, name: str) -> Split:
        if name not in ("train", "val", "test"):
            raise BetaVAEError(f"unknown split {name!r}; choose train, val or test")
        return getattr(self, name)


def fingerprint(data: Data) -> str:
    """sha256 of every split's images and labels: recorded with a run, so a resume notices data changed under it."""
    digest = hashlib.sha256()
    for split in (data.train, data.val, data.test):
        _update(digest, split)
    return digest.hexdigest()


def split_fingerprint(split: Split) -> str:
    """sha256 of one split's images and labels: recorded with a run, so that a command reading one split alone
    (evaluate, sample) notices that it changed."""
    digest = hashlib.sha256()
    _update(digest, split)
    return digest.hexdigest()


def _update(digest: "hashlib._Hash", split: Split) -> None:
    images = split.images
    if isinstance(images, ByteImages):  # hashed as the float32 tensor it stands for, chunk by chunk
        images.update_digest(digest)
        stored = ()
    else:
        stored = (images,) if isinstance(images, torch.Tensor) else images.stored()
    for array in (*stored, split.labels):
        digest.update(f"{tuple(array.shape)} {array.dtype}".encode())
        digest.update(array.detach().cpu().contiguous().numpy().data)


def split_raw(raw: RawData, val_size: int, name: str = "data") -> Data:
    """Cut the validation split off the end of the official training set; the test set stays untouched."""
    n_train = len(raw.train_images)
    if val_size >= n_train:
        raise BetaVAEError(f"val_size {val_size} leaves no training images out of {n_train}; lower --val-size")
    cut = n_train - val_size
    return Data(
        name=name,
        train=Split.from_numpy(raw.train_images[:cut], raw.train_labels[:cut]),
        val=Split.from_numpy(raw.train_images[cut:], raw.train_labels[cut:]),
        test=Split.from_numpy(raw.test_images, raw.test_labels),
    )


def batch_indices(n: int, batch_size: int, generator: torch.Generator | None = None) -> Iterator[torch.Tensor]:
    """Index slices of a permutation of range(n) (sequential when no generator is given); the last may be short."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    return iter(order.split(batch_size))


def binarize(x: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Dynamic binarization: a fresh Bernoulli draw with the grey level as probability, as a uniform draw below the
    grey level (the same distribution as torch.bernoulli, two to four times faster on CPU)."""
    return (torch.rand(x.shape, generator=generator, device=x.device) < x).to(x.dtype)


def check_pixels(pixels: str, image_shape: tuple[int, ...], dataset: str) -> None:
    """Refuse binary targets on colour images in one line: a 0/1 draw per channel would make up colours."""
    if pixels == "binary" and image_shape[0] != 1:
        raise BetaVAEError(f"--pixels binary draws 0/1 pixels of grey images, and {dataset} has {image_shape[0]} "
                           "channels (colour); use --pixels grey")


def prepare(x: torch.Tensor, pixels: str, generator: torch.Generator | None = None) -> torch.Tensor:
    """The targets the model is trained on: grey levels as they are, or a binarized draw (bool storage, as
    dSprites', is binary already: no draw)."""
    if pixels == "binary" and x.is_floating_point():
        return binarize(x, generator)
    return as_float(x)
