"""How well a minibatch estimates the total correlation of a trained dSprites model's aggregate posterior.

For each run: the posteriors of n random dSprites images (seed 0); then the total correlation TC = E[log q(z) -
sum_d log q(z_d)] estimated by minibatch stratified (MSS) and weighted (MWS) sampling at several batch sizes, as the
beta-TCVAE objective sees it (N = 737,280 images, mean over the batches), beside the same quantity computed with the
whole sample as the data set (every code against all n posteriors: the aggregate posterior of those n images, which
approaches the full one as n grows; printed for n/4, n/2 and n to show the trend). Also prints the index-code mutual
information and the dimension-wise KL of the whole-sample computation, and the active latents' |correlation| with x
and y, so that a rotated position plane and an aligned one can be told apart.

Usage: python bench/tc_estimates.py RUN [RUN ...] [--images 8000] [--threads 1]
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch

from betavae.data import dsprites
from betavae.model.objectives.btcvae import aggregate_posterior_terms, gaussian_log_density, log_density_matrix
from betavae.runs import Run

BATCHES = (64, 256, 1024)


@torch.no_grad()
def posterior_sample(run: Run, n: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, np.ndarray]:
    """Codes (one draw each), means and log-variances of n random grid images, in float64, and their factors."""
    index = np.random.RandomState(0).choice(dsprites.N_IMAGES, n, replace=False)
    factors = dsprites.index_to_factors(index)
    parts = [run.model.encode(dsprites.render(factors[i:i + 1000])) for i in range(0, n, 1000)]
    mean = torch.cat([m for m, _ in parts]).double()
    logvar = torch.cat([v for _, v in parts]).double()
    z = mean + torch.randn(mean.shape, generator=torch.Generator().manual_seed(1), dtype=torch.float64) * \
        (0.5 * logvar).exp()
    return z, mean, logvar, factors


def whole_sample_terms(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, chunk: int = 250) -> dict:
    """MI, TC and dimension-wise KL with the sample as the whole data set: q(z) = mean of its n posteriors."""
    n = len(z)
    log_qz, log_qz_dims = [], []
    for start in range(0, n, chunk):
        matrix = log_density_matrix(z[start:start + chunk], mean, logvar)  # (chunk, n, D)
        log_qz.append(torch.logsumexp(matrix.sum(2), dim=1) - math.log(n))
        log_qz_dims.append((torch.logsumexp(matrix, dim=1) - math.log(n)).sum(1))
    log_qz, log_qz_dims = torch.cat(log_qz), torch.cat(log_qz_dims)
    log_qz_x = gaussian_log_density(z, mean, logvar).sum(1)
    log_pz = gaussian_log_density(z).sum(1)
    return {"mi": (log_qz_x - log_qz).mean().item(), "tc": (log_qz - log_qz_dims).mean().item(),
            "dwkl": (log_qz_dims - log_pz).mean().item()}


def minibatch_tc(z, mean, logvar, batch: int, estimator: str) -> float:
    values = [aggregate_posterior_terms(z[i:i + batch], mean[i:i + batch], logvar[i:i + batch], dsprites.N_IMAGES,
                                        estimator)["tc"].item() for i in range(0, len(z) - batch + 1, batch)]
    return float(np.mean(values))


def describe(path: str, n: int) -> str:
    run = Run.open(path)
    z, mean, logvar, factors = posterior_sample(run, n)
    active = (mean.var(0) > 0.01).nonzero().flatten().tolist()
    z, mean, logvar = z[:, active], mean[:, active], logvar[:, active]
    lines = [f"{path}: {len(active)} active latents (Var of the mean > 0.01), step {run.last_record['step']}"]
    for size in (n // 4, n // 2, n):
        terms = whole_sample_terms(z[:size], mean[:size], logvar[:size])
        lines.append(f"  whole sample of {size}: MI {terms['mi']:.2f}  TC {terms['tc']:.3f}  dim-wise KL "
                     f"{terms['dwkl']:.3f}")
    for estimator in ("mss", "mws"):
        estimates = "  ".join(f"M={batch}: {minibatch_tc(z, mean, logvar, batch, estimator):.3f}" for batch in BATCHES)
        lines.append(f"  {estimator.upper()} TC: {estimates}")
    xy = factors[:, [dsprites.FACTORS.index("pos_x"), dsprites.FACTORS.index("pos_y")]].astype(float)
    for column, latent in enumerate(active):
        corr = [abs(np.corrcoef(mean[:, column].numpy(), xy[:, k])[0, 1]) for k in range(2)]
        lines.append(f"  z{latent}: |corr| with x {corr[0]:.2f}, y {corr[1]:.2f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", metavar="RUN")
    parser.add_argument("--images", type=int, default=8000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    for run in args.runs:
        print(describe(run, args.images), flush=True)


if __name__ == "__main__":
    main()
