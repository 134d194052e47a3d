"""MIG of dSprites runs in seconds, also while they train (weights are saved after every epoch).

`betavae disentanglement` encodes all 737,280 images for the five metrics; MIG alone needs only its 10,000 sampled
images (the same sample, seed 0, so the score equals the full command's). Prints the step, recon, KL and MIG of each
run, and, for each active latent (KL > 0.1 nats), its mutual information with every factor over that factor's entropy,
then the absolute correlation of its mean with each ordered factor (scale, x, y): a latent that spans a rotated mix of
x and y shows about 0.6 with both, an aligned one about 1 with one.

Usage: python bench/quick_mig.py RUN [RUN ...] [--threads 1]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from betavae.data import dsprites
from betavae.data.registry import ground_truth
from betavae.evaluation.disentanglement import GroundTruth, mig_metric
from betavae.runs import Run


def encoder_of(run: Run, batch_size: int = 2000):
    """Factor levels (N, 5) -> posterior means (N, D), rendering only the images asked for."""
    model, truth = run.model, ground_truth(run.config.dataset, "bench/quick_mig.py")  # dSprites or a painted variant

    @torch.no_grad()
    def represent(factors: np.ndarray) -> np.ndarray:
        parts = [model.encode(truth.images(factors[i:i + batch_size]))[0] for i in range(0, len(factors), batch_size)]
        return torch.cat(parts).double().numpy()

    return represent


ORDERED = ("scale", "pos_x", "pos_y")  # the factors whose levels have an order, so that correlation means something


def correlations(truth: GroundTruth, n: int = 10_000) -> np.ndarray:
    """|corr| of every latent's posterior mean with each ordered factor's level, over n random images: (D, 3)."""
    means, factors = truth.sample(n, np.random.RandomState(0))
    levels = factors[:, [dsprites.FACTORS.index(name) for name in ORDERED]].astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):  # a switched-off latent may be constant: nan, shown as such
        matrix = np.corrcoef(means.T, levels.T)[:means.shape[1], means.shape[1]:]
    return np.abs(matrix)


def describe(path: str) -> str:
    run = Run.open(path)
    truth = GroundTruth(dsprites.SIZES, encoder_of(run), dsprites.FACTORS)
    result = mig_metric(truth, seed=0)
    correlation = correlations(truth)
    information = np.array(result["normalized_mutual_information"])
    last = run.last_record
    split = last.get("val", last["train"])
    lines = [f"{path}: epoch {last['epoch']} step {last['step']} recon {split['recon']:.1f} KL {split['kl']:.1f} "
             f"MIG {result['mig']:.3f}"]
    for latent, kl in enumerate(split["kl_per_dim"]):
        if kl > 0.1:
            shares = " ".join(f"{name} {share:.2f}" for name, share in zip(dsprites.FACTORS, information[latent]))
            linear = " ".join(f"{name} {value:.2f}" for name, value in zip(ORDERED, correlation[latent]))
            lines.append(f"  z{latent} (KL {kl:.2f}): {shares} | |corr| {linear}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1 leaves a core to a training run)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for run in args.runs:
        print(describe(run), flush=True)


if __name__ == "__main__":
    main()
