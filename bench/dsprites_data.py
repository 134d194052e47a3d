"""What dSprites costs: rendering the grid once, loading the cache, and training throughput with the images kept as
bool (what `--dataset dsprites` does) against float32 (four times the memory), same model, same process.

Throughput: the `dsprites` preset's conv model on the first 100k training images, batch 64; the two storages
alternate epoch slices of 200 steps, 5 times each, and the medians are compared.

Usage: python bench/dsprites_data.py [--render]   (--render times a fresh rendering of all 737,280 images)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from betavae import config as configlib
from betavae import models, objectives
from betavae.data import dataset, dsprites


def images_per_second(images: torch.Tensor, model: models.VAE, steps: int = 200, batch: int = 64) -> float:
    objective = objectives.build(configlib.preset("dsprites"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    order = torch.randperm(len(images))[: steps * batch].split(batch)
    start = time.perf_counter()
    for index in order:
        x = dataset.prepare(images[index], "binary")
        logits, mean, logvar = model(x)
        loss = objective(logits, x, mean, logvar, 0).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true")
    args = parser.parse_args()
    if args.render:
        start = time.perf_counter()
        dsprites.render_packed()
        print(f"rendering all {dsprites.N_IMAGES:,} images: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    data = dataset.load("dsprites")
    print(f"loading dSprites from the cache (unpack to bool, split): {time.perf_counter() - start:.1f} s")
    as_bool = data.train.images[:100_000]
    as_float = as_bool.float()
    print(f"memory of 100k images: bool {as_bool.nbytes / 2**20:.0f} MiB, float32 {as_float.nbytes / 2**20:.0f} MiB")
    torch.manual_seed(0)
    model = models.build(configlib.preset("dsprites"), data.image_shape)
    rates: dict[str, list[float]] = {"bool": [], "float32": []}
    for _ in range(5):
        rates["bool"].append(images_per_second(as_bool, model))
        rates["float32"].append(images_per_second(as_float, model))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print(f"training throughput, medians of 5: bool {medians['bool']:.0f} img/s, float32 {medians['float32']:.0f} "
          f"img/s, ratio {medians['bool'] / medians['float32']:.3f}")


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
