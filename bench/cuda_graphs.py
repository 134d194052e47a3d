"""GPU training throughput with and without CUDA graphs (config `cuda_graphs`), in fp32 and bf16: the dSprites
preset's model (Burgess et al.'s conv, batch 64) on random binary 64x64 images, through betavae's own Trainer.

Each setting trains a fresh run for --epochs epochs of --images images; its figure is the median images per second
of the epochs after the first (the first includes graph capture and cuDNN's first calls). Prints a Markdown table,
the fastest setting, and writes the figures as JSON when --json is given.

Usage: python bench/cuda_graphs.py [--images 32000] [--epochs 3] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import torch

from betavae.config import preset
from betavae.data import Data, Split
from betavae.runs import Run
from betavae.training import fit


def random_binary(n: int, seed: int) -> Split:
    """Sparse random binary images (about dSprites' share of lit pixels); throughput does not depend on content."""
    images = torch.rand(n, 1, 64, 64, generator=torch.Generator().manual_seed(seed)) < 0.1
    return Split(images, torch.zeros(n, dtype=torch.long))


def images_per_second(data: Data, epochs: int, precision: str, graphs: bool) -> float:
    config = preset("dsprites").replace(device="cuda", epochs=epochs, precision=precision, cuda_graphs=graphs)
    with tempfile.TemporaryDirectory() as folder:
        run = fit(config, Path(folder) / "run", data=data, log=lambda line: None)
        return statistics.median(r["images_per_second"] for r in Run.open(run).metrics[2:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=32_000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("this benchmark needs a CUDA GPU")
    data = Data("random", random_binary(args.images, 0), random_binary(2000, 1), random_binary(2000, 2))
    results = [{"precision": precision, "cuda_graphs": graphs,
                "images_per_second": round(images_per_second(data, args.epochs, precision, graphs), 1)}
               for precision in ("fp32", "bf16") for graphs in (False, True)]
    print(f"{torch.cuda.get_device_name()}, torch {torch.__version__}, batch 64, {args.images} images per epoch")
    print("| precision | CUDA graphs | images/s | steps/s | vs eager |\n|---|---|---|---|---|")
    for r in results:
        eager = next(e for e in results if e["precision"] == r["precision"] and not e["cuda_graphs"])
        r["speedup"] = round(r["images_per_second"] / eager["images_per_second"], 2)
        print(f"| {r['precision']} | {'yes' if r['cuda_graphs'] else 'no'} | {r['images_per_second']:.0f} | "
              f"{r['images_per_second'] / 64:.0f} | {r['speedup']:.2f}x |")
    best = max(results, key=lambda r: r["images_per_second"])
    print(f"fastest: --precision {best['precision']} --cuda-graphs {str(best['cuda_graphs']).lower()}")
    if args.json:
        Path(args.json).write_text(json.dumps({"device": torch.cuda.get_device_name(), "results": results}, indent=1))


if __name__ == "__main__":
    main()
