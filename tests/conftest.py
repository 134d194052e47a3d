"""Shared fixtures: small synthetic image sets, so that no test touches the network or the real data."""

from __future__ import annotations

import signal
from contextlib import contextmanager
from typing import Iterator

import numpy as np
import pytest
import torch

from betavae.data import Data, Split


def synthetic_images(n: int, size: tuple[int, int] = (12, 12), seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Bright squares at a few positions, one class per position: structure a VAE can learn in a few steps."""
    rng = np.random.default_rng(seed)
    h, w = size
    labels = rng.integers(0, 4, n)
    images = np.zeros((n, h, w), dtype=np.uint8)
    for i, label in enumerate(labels):
        top, left = (label // 2) * (h // 2), (label % 2) * (w // 2)
        images[i, top: top + h // 2, left: left + w // 2] = rng.integers(150, 256)
    return images, labels.astype(np.int64)


def synthetic_data(n_train: int = 192, n_val: int = 64, n_test: int = 64, size=(12, 12)) -> Data:
    images, labels = synthetic_images(n_train + n_val + n_test, size)
    a, b = n_train, n_train + n_val
    return Data("synthetic", Split.from_numpy(images[:a], labels[:a]), Split.from_numpy(images[a:b], labels[a:b]),
                Split.from_numpy(images[b:], labels[b:]))


PAINTS = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0]], np.float32)  # a colour per class of synthetic_images


def synthetic_colour_data(n_train: int = 192, n_val: int = 64, n_test: int = 64, size=(12, 12)) -> Data:
    """synthetic_data's squares in colour, one colour per class: images (N, 3, H, W)."""
    grey = synthetic_data(n_train, n_val, n_test, size)
    paint = lambda split: Split(split.images * torch.from_numpy(PAINTS[split.labels])[:, :, None, None],  # noqa: E731
                                split.labels)
    return Data("synthetic-colour", paint(grey.train), paint(grey.val), paint(grey.test))


@pytest.fixture
def data() -> Data:
    return synthetic_data()


@pytest.fixture
def npz(tmp_path):
    """A user's own data set: 200 synthetic 12x12 images with labels, as an .npz file."""
    x, y = synthetic_images(200, (12, 12))
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    return tmp_path / "d.npz"


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    """Never read or write the user's real cache, never see a BETAVAE_DATA from the environment, and run from a
    temporary folder, so that a default `runs/` is made there and never in the checkout."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv("BETAVAE_DATA", raising=False)
    torch.set_num_threads(1)


class Blocked(BaseException):
    """Raised in a test that waited too long (a FIFO opened, say): a failure, never a hang of the whole suite."""


@contextmanager
def within(seconds: int) -> Iterator[None]:
    """Fail the block when it runs past `seconds` (SIGALRM interrupts even a blocking open)."""
    def blocked(signum, frame):
        raise Blocked(f"still running after {seconds} s: blocked (on a FIFO?)")

    previous = signal.signal(signal.SIGALRM, blocked)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
