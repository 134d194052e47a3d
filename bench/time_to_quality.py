"""Time to quality on dynamically binarized MNIST, against a pytorch/examples-style baseline in the same invocation.

Baseline: the 784-400-20 VAE of pytorch/examples with DataLoader batching, Adam 1e-3, batch 128, trained once; its
test negative ELBO is measured when its training clock passes each budget. betavae: for each budget, a run of the
recipe below (`betavae train --preset vae --pixels binary --time-budget B ...`): training stops when its clock
reaches the budget, and the cosine decay runs over the budget. Evaluation time is not counted.
Test negative ELBO: one sampled z per image, on one fixed binarization of the test set; nats per image.

Usage: python bench/time_to_quality.py [--budgets 30,35,60,120] [--lr 5e-3] [--batch-size 256] [--hidden 400]
                                      [--precision bf16] [--activation silu] [--skip-baseline]
The defaults are the best of the recipes tried at 35 s (bf16 autocast pays on CPUs with AMX at batch 256; SiLU
reaches a lower loss than ReLU in the same time).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

import betavae
from betavae import data as datalib
from betavae.model.likelihood import elbo_terms
from betavae.model.objectives import negative_elbo
from betavae.training import fit

from training import ExamplesVAE, TensorImages  # bench/training.py, beside this file


@torch.no_grad()
def examples_test_neg_elbo(model: ExamplesVAE, test: datalib.Split) -> float:
    """The baseline's negative ELBO, computed like elbo_terms: fixed binarization, one sampled z per image."""
    model.eval()
    binarizer, noise = torch.Generator().manual_seed(7), torch.Generator().manual_seed(8)
    total = 0.0
    for index in datalib.batch_indices(len(test), 1000):
        x = datalib.binarize(test.images[index], binarizer).view(-1, 784)
        h = F.relu(model.fc1(x))
        mu, logvar = model.fc21(h), model.fc22(h)
        z = mu + torch.randn(mu.shape, generator=noise) * torch.exp(0.5 * logvar)
        probabilities = torch.sigmoid(model.fc4(F.relu(model.fc3(z)))).clamp(1e-7, 1 - 1e-7)
        bce = F.binary_cross_entropy(probabilities, x, reduction="sum")
        total += float(bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp()))
    model.train()
    return total / len(test)


def baseline(data: datalib.Data, budgets: list[float]) -> dict[float, tuple[float, float]]:
    torch.manual_seed(1)
    model = ExamplesVAE()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = DataLoader(TensorImages(data.train.images), batch_size=128, shuffle=True)
    results, clock, seen, pending = {}, 0.0, 0, sorted(budgets)
    while pending:
        for x, _ in loader:
            start = time.perf_counter()
            x = torch.bernoulli(x)  # dynamic binarization, as in the recipe
            recon, mu, logvar = model(x)
            loss = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum") \
                - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            clock += time.perf_counter() - start
            seen += len(x)
            if clock >= pending[0]:
                results[pending.pop(0)] = (examples_test_neg_elbo(model, data.test), seen / clock)
                if not pending:
                    break
    return results


def ours(data: datalib.Data, budget: float, args) -> tuple[float, float, int, float]:
    config = betavae.preset("vae").replace(pixels="binary", epochs=10_000, time_budget=budget, lr=args.lr,
                                           batch_size=args.batch_size, precision=args.precision,
                                           hidden=tuple(int(h) for h in args.hidden.split(",")),
                                           activation=args.activation)
    with tempfile.TemporaryDirectory() as tmp:
        run = fit(config, Path(tmp) / "run", data=data, progress=False, log=lambda line: None)
        records = betavae.Run.open(run).metrics
        seconds = sum(r["train_seconds"] for r in records)
        model = betavae.load(run)
        score = elbo_terms(model, data.test, negative_elbo(), "binary", seed=7)["neg_elbo"]
    images = records[-1]["step"] * args.batch_size
    return score, seconds, records[-1]["epoch"], images / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--budgets", default="30,35,60,120")
    parser.add_argument("--lr", type=float, default=5e-3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--hidden", default="400")
    parser.add_argument("--precision", default="bf16", choices=["fp32", "bf16"])
    parser.add_argument("--activation", default="silu", choices=betavae.config.ACTIVATIONS)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    budgets = [float(b) for b in args.budgets.split(",")]
    data = datalib.load("mnist", val_size=10000)
    base = {b: (float("nan"), float("nan")) for b in budgets} if args.skip_baseline else baseline(data, budgets)
    print(f"time to quality, dynamically binarized MNIST, {len(data.train)} training images, test negative ELBO "
          f"(nats/image; sampled z):")
    print(f"  betavae recipe: MLP {args.hidden} {args.activation}, 20 latents, batch {args.batch_size}, "
          f"Adam {args.lr:g} + cosine over the time budget, {args.precision}")
    print(f"  {'budget':>7s} {'baseline':>9s} {'img/s':>7s} | {'betavae':>8s} {'img/s':>7s} {'epochs':>6s} {'trained':>8s}")
    for budget in budgets:
        score, seconds, epochs, speed = ours(data, budget, args)
        print(f"  {budget:6.0f}s {base[budget][0]:9.2f} {base[budget][1]:7.0f} | {score:8.2f} {speed:7.0f} "
              f"{epochs:6d} {seconds:7.1f}s")


if __name__ == "__main__":
    main()
