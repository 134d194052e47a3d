"""Training throughput of colour 64x64 images against grey 64x64 on the same model (the conv64 preset: Burgess et
al.'s four 4x4 stride-2 convolutions of 32 channels, two dense layers of 256, 10 latents, batch 64).

Only the first convolution and the last transposed convolution see the channels, so colour should cost little. The
two trainers alternate epochs in one process on random uint8 images (content does not change the cost), and the
figure is the ratio of the medians of their images per second. Run it alone: a second busy process skews it.

Usage: python bench/colour_throughput.py [--images 6400] [--epochs 5] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

import betavae
from betavae import data as datalib
from betavae.training import Trainer

SIZE = 64


def random_data(n: int, channels: int, seed: int) -> datalib.Data:
    """n random uint8 images of SIZE x SIZE with `channels` channels, as training data (tiny val and test splits)."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n + 128, channels, SIZE, SIZE), dtype=np.uint8)
    labels = np.zeros(len(images), dtype=np.int64)
    split = datalib.Split.from_numpy
    return datalib.Data(f"random-{channels}", split(images[:n], labels[:n]), split(images[n:n + 64], labels[:64]),
                        split(images[n + 64:], labels[:64]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=6400, help="training images per epoch")
    parser.add_argument("--epochs", type=int, default=5, help="epochs of each, alternating")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    config = betavae.preset("conv64").replace(epochs=args.epochs, threads=args.threads, val_size=64)
    rates: dict[str, list[float]] = {"grey": [], "colour": []}
    with tempfile.TemporaryDirectory() as tmp:
        trainers = {name: Trainer(config, Path(tmp) / name, random_data(args.images, channels, seed),
                                  progress=False, log=lambda line: None)
                    for seed, (name, channels) in enumerate((("grey", 1), ("colour", 3)))}
        for trainer in trainers.values():
            trainer._finish_epoch(0, train_means=None, seconds=0.0)  # the untrained model's record, as Trainer.run starts
        for epoch in range(1, args.epochs + 1):
            for name, trainer in trainers.items():
                trainer._train_epoch(epoch)  # its record times the training batches alone
                rates[name].append(trainer.records[-1]["images_per_second"])
    grey, colour = statistics.median(rates["grey"]), statistics.median(rates["colour"])
    print(f"conv64 model, batch {config.batch_size}, {args.images} images/epoch, {args.threads} thread(s), "
          f"median of {args.epochs} epochs each:")
    for name, median in (("grey 1x64x64", grey), ("colour 3x64x64", colour)):
        epochs = ", ".join(f"{r:.0f}" for r in rates[name.split()[0]])
        print(f"  {name:15s} {median:8.0f} img/s  (epochs: {epochs})")
    print(f"  colour / grey   {colour / grey:8.2f}   (target >= 0.8)")


if __name__ == "__main__":
    main()
