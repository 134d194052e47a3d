"""What dSprites costs: rendering the grid once, loading the cache, and training throughput with the images kept as
bool (what `--dataset dsprites` does) against float32 (four times the memory), same model, same process; then the
same model trained in bf16 autocast (`--precision bf16`) against fp32, each with channels-last weights (what
`models.build` gives) and with the default contiguous layout.

Throughput: the `dsprites` preset's conv model on the first 100k training images, batch 64; the variants alternate
slices of 200 steps, 5 times each (precision: 100 steps, 3 times), and the medians are compared.

Usage: python bench/dsprites_data.py [--render] [--precision-only]
(--render times a fresh rendering of all 737,280 images; --precision-only skips the storage comparison)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from betavae import config as configlib
from betavae.model import networks as models
from betavae.model import objectives
from betavae.data import dataset, dsprites


def images_per_second(images: torch.Tensor, model: models.VAE, steps: int = 200, batch: int = 64,
                      bf16: bool = False) -> float:
    objective = objectives.build(configlib.preset("dsprites"))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4, fused=True)
    order = torch.randperm(len(images))[: steps * batch].split(batch)
    start = time.perf_counter()
    for index in order:
        x = dataset.prepare(images[index], "binary")
        with torch.autocast("cpu", torch.bfloat16, enabled=bf16):
            logits, mean, logvar = model(x)
        loss = objective(logits.float(), x, mean.float(), logvar.float(), 0).loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return steps * batch / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--render", action="store_true")
    parser.add_argument("--precision-only", action="store_true")
    args = parser.parse_args()
    if args.render:
        start = time.perf_counter()
        dsprites.render_packed()
        print(f"rendering all {dsprites.N_IMAGES:,} images: {time.perf_counter() - start:.1f} s")
    start = time.perf_counter()
    data = dataset.load("dsprites")
    print(f"loading dSprites from the cache (unpack to bool, split): {time.perf_counter() - start:.1f} s")
    as_bool = data.train.images[:100_000]
    torch.manual_seed(0)
    model = models.build(configlib.preset("dsprites"), data.image_shape)
    if not args.precision_only:
        compare_storage(as_bool, model)
    compare_precision_and_layout(as_bool, model, data.image_shape)


def compare_storage(as_bool: torch.Tensor, model: models.VAE) -> None:
    """Training speed with the images kept as bool (as loaded) and as float32."""
    as_float = as_bool.float()
    print(f"memory of 100k images: bool {as_bool.nbytes / 2**20:.0f} MiB, float32 {as_float.nbytes / 2**20:.0f} MiB")
    rates: dict[str, list[float]] = {"bool": [], "float32": []}
    for _ in range(5):
        rates["bool"].append(images_per_second(as_bool, model))
        rates["float32"].append(images_per_second(as_float, model))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print(f"training throughput, medians of 5: bool {medians['bool']:.0f} img/s, float32 {medians['float32']:.0f} "
          f"img/s, ratio {medians['bool'] / medians['float32']:.3f}")


def compare_precision_and_layout(images: torch.Tensor, channels_last: models.VAE,
                                 image_shape: tuple[int, int, int]) -> None:
    """fp32 and bf16 training speed with channels-last weights (as built) and with contiguous ones."""
    contiguous = models.build(configlib.preset("dsprites"), image_shape).to(memory_format=torch.contiguous_format)
    variants = {"fp32 channels-last": (channels_last, False), "bf16 channels-last": (channels_last, True),
                "fp32 contiguous": (contiguous, False), "bf16 contiguous": (contiguous, True)}
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(3):
        for name, (model, bf16) in variants.items():
            rates[name].append(images_per_second(images, model, steps=100, bf16=bf16))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    base = medians["fp32 contiguous"]
    print("training throughput, medians of 3 (ratio to fp32 contiguous): " +
          ", ".join(f"{name} {rate:.0f} img/s ({rate / base:.2f}x)" for name, rate in medians.items()))


if __name__ == "__main__":
    np.set_printoptions(precision=3)
    main()
