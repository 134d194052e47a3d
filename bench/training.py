"""Training benchmarks of the base issue, printed as figures (no assertions):

1. throughput: images per second of betavae's loop against a pytorch/examples-style loop (same 784-400-20 MLP,
   torch DataLoader batching), alternating epochs in the same process, median of several epochs each;
2. quality: beta = 1, the description's MLP, grey levels, batch 128, 10 epochs: test negative ELBO (sampled z,
   BCE summed over pixels), nats per image.

Usage: python bench/training.py [--epochs-throughput 5] [--quality-epochs 10] [--val-sizes 10000,0]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

import betavae
from betavae import data as datalib
from betavae.model.objectives import negative_elbo
from betavae.model.likelihood import elbo_terms
from betavae.training import Trainer, fit


class ExamplesVAE(nn.Module):
    """The model of pytorch/examples' vae/main.py (784-400-20), written out as that script does."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 400), nn.Linear(400, 20), nn.Linear(400, 20)
        self.fc3, self.fc4 = nn.Linear(20, 400), nn.Linear(400, 784)

    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar


class TensorImages(Dataset):
    """Per-sample access, as torchvision's MNIST dataset gives it."""

    def __init__(self, images):
        self.images = images

    def __len__(self):
        return len(self.images)

    def __getitem__(self, i):
        return self.images[i], 0


def examples_epoch(model, optimizer, loader) -> float:
    start, n = time.perf_counter(), 0
    for x, _ in loader:
        recon, mu, logvar = model(x)
        bce = F.binary_cross_entropy(recon, x.view(-1, 784), reduction="sum")
        loss = bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        n += len(x)
    return n / (time.perf_counter() - start)


def throughput(data: datalib.Data, epochs: int) -> None:
    config = betavae.preset("vae").replace(batch_size=128, epochs=epochs)
    with tempfile.TemporaryDirectory() as tmp:
        ours = Trainer(config, Path(tmp), data, progress=False, log=lambda line: None)
        theirs = ExamplesVAE()
        optimizer = torch.optim.Adam(theirs.parameters(), lr=1e-3)
        loader = DataLoader(TensorImages(data.train.images), batch_size=128, shuffle=True)
        rates = {"betavae": [], "examples": []}
        ours._finish_epoch(0, train_means=None, seconds=0.0)  # the untrained model's record, as Trainer.run starts
        for epoch in range(1, epochs + 1):
            ours._train_epoch(epoch)  # its record times the training batches alone, as examples_epoch does
            rates["betavae"].append(ours.records[-1]["images_per_second"])
            rates["examples"].append(examples_epoch(theirs, optimizer, loader))
    ours_median, theirs_median = statistics.median(rates["betavae"]), statistics.median(rates["examples"])
    print(f"throughput, {len(data.train)} images/epoch, median of {epochs} epochs each, torch threads "
          f"{torch.get_num_threads()}:")
    print(f"  betavae loop            {ours_median:9.0f} img/s  (epochs: {', '.join(f'{r:.0f}' for r in rates['betavae'])})")
    print(f"  pytorch/examples style  {theirs_median:9.0f} img/s  (epochs: {', '.join(f'{r:.0f}' for r in rates['examples'])})")
    print(f"  ratio                   {ours_median / theirs_median:9.2f}x  (target >= 1.3x)")


RECIPES = {"Adam 1e-3, constant (pytorch/examples)": (1e-3, "none"), "Adam 5e-3, cosine (presets vae, betavae)": (5e-3, "cosine")}


def quality(epochs: int, val_sizes: list[int]) -> None:
    print(f"quality: beta 1, MLP 784-400-20, grey levels, batch 128, {epochs} epochs; test negative ELBO (sampled z, "
          "BCE summed over pixels), mean +- sd over 5 noise seeds (target <= 105; examples-style run 105.5 on 60k):")
    for val_size in val_sizes:
        data = datalib.load("mnist", val_size=val_size)
        for name, (lr, schedule) in RECIPES.items():
            config = betavae.preset("vae").replace(batch_size=128, epochs=epochs, val_size=val_size, lr=lr,
                                                   lr_schedule=schedule)
            with tempfile.TemporaryDirectory() as tmp:
                start = time.perf_counter()
                run = fit(config, Path(tmp) / "run", data=data, progress=False, log=lambda line: None)
                seconds = time.perf_counter() - start
                model = betavae.load(run)
                scores = [elbo_terms(model, data.test, negative_elbo(), "grey", seed=s)["neg_elbo"]
                          for s in range(5)]
            print(f"  {len(data.train)} training images, {name:42s} {statistics.mean(scores):7.2f} +- "
                  f"{statistics.stdev(scores):.2f} nats/image ({seconds:.0f} s)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs-throughput", type=int, default=5)
    parser.add_argument("--quality-epochs", type=int, default=10)
    parser.add_argument("--val-sizes", default="10000,0", help="validation sizes to train with (0 = all 60k)")
    parser.add_argument("--skip-quality", action="store_true")
    parser.add_argument("--skip-throughput", action="store_true")
    args = parser.parse_args()
    if not args.skip_throughput:
        throughput(datalib.load("mnist", val_size=10000), args.epochs_throughput)
    if not args.skip_quality:
        quality(args.quality_epochs, [int(v) for v in args.val_sizes.split(",")])


if __name__ == "__main__":
    main()
