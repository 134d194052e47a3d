"""How long the importance-weighted bound takes over the whole MNIST test set (10k images) on this machine.

`mlp`: the likelihood table's 784-500-500-20 model, K = 5000, timed in full. `conv`: the `conv` preset with 20
latents, K = --conv-k (100) timed in full, and the K that fits in 10 minutes extrapolated from it (the cost is linear
in K: one decoding per sample). The models are freshly initialized unless --mlp-run / --conv-run name trained runs:
the cost does not depend on the weights' values, only on the architecture.

Usage: python bench/likelihood_speed.py [--mlp-k 5000] [--conv-k 100] [--mlp-run RUN] [--conv-run RUN]
"""

from __future__ import annotations

import argparse
import time

import torch

import betavae
from betavae import data as datalib
from betavae.model import networks
from betavae.model.likelihood import iwae_bound


def model_for(arch: str, run: str | None) -> networks.VAE:
    if run:
        return betavae.load(run)
    torch.manual_seed(0)
    config = betavae.preset("vae" if arch == "mlp" else "conv").replace(latent_dim=20, pixels="binary")
    if arch == "mlp":
        config = config.replace(hidden=(500, 500))
    return networks.build(config, (1, 28, 28))


def timed_bound(model: networks.VAE, images: torch.Tensor, k: int) -> tuple[float, float]:
    start = time.perf_counter()
    bounds = iwae_bound(model, images, k, seed=0, binarize_seed=7)
    return time.perf_counter() - start, float(-bounds.mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mlp-k", type=int, default=5000)
    parser.add_argument("--conv-k", type=int, default=100)
    parser.add_argument("--mlp-run")
    parser.add_argument("--conv-run")
    args = parser.parse_args()
    test = datalib.load("mnist").test
    print(f"importance-weighted bound over the {len(test):,} MNIST test images, {torch.get_num_threads()} threads")
    seconds, nll = timed_bound(model_for("mlp", args.mlp_run), test.images, args.mlp_k)
    print(f"  mlp 784-500-500-20, K = {args.mlp_k}: {seconds:.0f} s ({seconds / 60:.1f} min; NLL {nll:.2f})")
    seconds, nll = timed_bound(model_for("conv", args.conv_run), test.images, args.conv_k)
    fits = int(args.conv_k * 600 / seconds)
    print(f"  conv (preset conv, 20 latents), K = {args.conv_k}: {seconds:.0f} s; K = 5000 would take about "
          f"{seconds * 5000 / args.conv_k / 60:.0f} min; K that fits in 10 min: about {fits}")


if __name__ == "__main__":
    main()
