"""What dSprites costs: rendering the grid once, loading the cache, and training throughput with the images kept
bit-packed (what `--dataset dsprites` does: a batch is unpacked per step) against bool (8x the memory) and float32
(32x), same model, same process; then the
same model trained in bf16 autocast (`--precision bf16`) against fp32, each with channels-last weights (what
`model.build` gives) and with the default contiguous layout.

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

from betavae import config as configlib, data as datalib
from betavae.data import dataset, dsprites
from betavae.model import networks


def images_per_second(images: torch.Tensor | datalib.PackedImages, model: networks.VAE, steps: int = 200, batch: int = 64,
                      bf16: bool = False) -> float:
    objective = configlib.preset("dsprites").build_objective()
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
    data = datalib.load("dsprites")
    print(f"loading dSprites from the cache (packed, split): {time.perf_counter() - start:.1f} s")
    as_packed = data.train.images.take(slice(0, 100_000))
    torch.manual_seed(0)
    model = networks.build(configlib.preset("dsprites"), data.image_shape)
    if not args.precision_only:
        compare_storage(as_packed, model)
    compare_precision_and_layout(as_packed, model, data.image_shape)


def compare_storage(as_packed: datalib.PackedImages, model: networks.VAE) -> None:
    """Training speed with the images kept bit-packed (as loaded), as bool and as float32."""
    as_bool = as_packed[:]
    as_float = as_bool.float()
    mib = lambda t: t.nbytes / 2**20  # noqa: E731
    print(f"memory of 100k images: packed {mib(as_packed.rows):.0f} MiB, bool {mib(as_bool):.0f} MiB, "
          f"float32 {mib(as_float):.0f} MiB")
    stores = {"packed": as_packed, "bool": as_bool, "float32": as_float}
    rates: dict[str, list[float]] = {name: [] for name in stores}
    for _ in range(5):
        for name, images in stores.items():
            rates[name].append(images_per_second(images, model))
    medians = {k: statistics.median(v) for k, v in rates.items()}
    print("training throughput, medians of 5: " + ", ".join(f"{k} {v:.0f} img/s" for k, v in medians.items()) +
          f"; packed / bool {medians['packed'] / medians['bool']:.3f}")


def compare_precision_and_layout(images: datalib.PackedImages, channels_last: networks.VAE,
                                 image_shape: tuple[int, int, int]) -> None:
    """fp32 and bf16 training speed with channels-last weights (as built) and with contiguous ones."""
    contiguous = networks.build(configlib.preset("dsprites"), image_shape).to(memory_format=torch.contiguous_format)
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
