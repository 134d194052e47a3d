"""Likelihood estimates of a model on a data split: the negative ELBO and its terms, and the importance-weighted bound."""

from __future__ import annotations

import math

import torch

from .. import data as datalib
from ..data import Split
from .networks import VAE, posterior_draw
from .objectives import Objective


class Totals:
    """Batch-size-weighted sums of the loss terms (kept as tensors: no sync per batch), as per-image means on request."""

    KEYS = ("loss", "recon", "kl")

    def __init__(self, latent_dim: int, device: torch.device | str = "cpu"):
        self.n = 0
        self.sums = {key: torch.zeros((), dtype=torch.float64, device=device) for key in self.KEYS}
        self.kl_per_dim = torch.zeros(latent_dim, dtype=torch.float64, device=device)

    def add(self, terms, n: int) -> None:
        """Count a batch of n images; an objective's own estimates (terms.extras) are summed beside the loss terms."""
        self.n += n
        for key in (*self.KEYS, *terms.extras):
            value = terms.extras[key] if key in terms.extras else getattr(terms, key)
            if key not in self.sums:
                self.sums[key] = torch.zeros((), dtype=torch.float64, device=self.kl_per_dim.device)
            self.sums[key] += value.detach().double() * n  # on the terms' device: no GPU sync
        self.kl_per_dim += terms.kl_per_dim.detach().double() * n

    def means(self) -> dict:
        n = max(self.n, 1)
        out = {key: float(value) / n for key, value in self.sums.items()}
        out["neg_elbo"] = out["recon"] + out["kl"]
        out["kl_per_dim"] = (self.kl_per_dim / n).tolist()
        return out

    def reduced(self, context) -> "Totals":
        """The totals summed over the ranks of a distributed job (itself when alone)."""
        if not context.distributed:
            return self
        device = self.kl_per_dim.device  # the job's device, as NCCL needs
        keys = list(self.sums)  # the same on every rank: one objective
        packed = context.all_sum(torch.cat([torch.tensor([float(self.n)], dtype=torch.float64, device=device),
                                            torch.stack([self.sums[k] for k in keys]), self.kl_per_dim]))
        total = Totals(len(self.kl_per_dim), device)
        total.n = int(packed[0])
        total.sums = dict(zip(keys, packed[1: 1 + len(keys)]))
        total.kl_per_dim = packed[1 + len(keys):]
        return total

    def state(self) -> dict:
        return {"n": self.n, **{k: v.cpu().clone() for k, v in self.sums.items()},
                "kl_per_dim": self.kl_per_dim.cpu().clone()}

    @classmethod
    def from_state(cls, state: dict, device: torch.device | str = "cpu") -> "Totals":
        totals = cls(len(state["kl_per_dim"]), device)
        totals.n = state["n"]
        totals.sums = {key: torch.as_tensor(value, dtype=torch.float64).to(device)
                       for key, value in state.items() if key not in ("n", "kl_per_dim")}
        totals.kl_per_dim = state["kl_per_dim"].to(device, torch.float64)
        return totals


@torch.no_grad()
def elbo_terms(model: VAE, split: Split, objective: Objective, pixels: str = "grey", batch_size: int = 1000,
               seed: int = 0, step: int = 0) -> dict:
    """Loss, recon, KL, KL per dimension and negative ELBO (recon + KL), per image, with one sampled z per image; in
    bits per dimension too where the model's likelihood is a probability of these targets (`bits_per_dim`).

    The noise comes from its own generator seeded with `seed` and the binarization (binary mode) from one seeded with
    seed + 1, so the figure for a given model depends neither on what ran before it nor on how its images are stored.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    binarizer = torch.Generator(device=device).manual_seed(seed + 1)
    totals = Totals(model.latent_dim, device)
    means = []
    for index in datalib.batch_indices(len(split), batch_size):
        x = datalib.prepare(split.images[index].to(device), pixels, binarizer)
        noise = torch.randn(len(x), model.latent_dim, generator=generator, device=device)
        output, mean, logvar = model(x, noise=noise)
        totals.add(objective(output, x, mean, logvar, step, z=posterior_draw(mean, logvar, noise),
                             likelihood=model.likelihood), len(index))
        means.append(mean.double().cpu())
    model.train(was_training)
    result = {**totals.means(), "active_units": active_units(torch.cat(means))}
    if model.likelihood.is_likelihood(pixels):
        result["bits_per_dim"] = bits_per_dim(result["neg_elbo"], model)
    return result


def bits_per_dim(nats_per_image: float, model: VAE) -> float:
    """Nats per image as bits per pixel and channel (meaningful for discrete likelihoods only)."""
    return nats_per_image / (math.prod(model.image_shape) * math.log(2))


def active_units(means: torch.Tensor, threshold: float = 0.01) -> int:
    """Burda et al. (2016): dimensions whose posterior mean varies across the data, Var_x(E[z|x]) > threshold."""
    if len(means) < 2:
        return 0
    return int((means.var(dim=0) > threshold).sum())


LOG_2PI = math.log(2 * math.pi)


@torch.no_grad()
def importance_weighted_log_likelihood(model: VAE, x: torch.Tensor, k: int, generator: torch.Generator,
                                       max_decodes: int = 32768) -> torch.Tensor:
    """Burda et al.'s bound log (1/K) sum_k p(x, z_k) / q(z_k | x), z_k ~ q(z | x), for each image of a batch.

    K = 1 gives the ELBO (in expectation); the bound rises towards log p(x) as K grows. The K samples are drawn in
    chunks of at most `max_decodes` decodings, so memory stays bounded for any K.
    """
    mean, logvar = model.encode(x)
    std = (0.5 * logvar).exp()
    chunk = max(1, max_decodes // len(x))
    log_weights = []
    for start in range(0, k, chunk):
        n = min(chunk, k - start)
        eps = torch.randn(n, *mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        z = mean + eps * std
        outputs = model.decode(z.flatten(0, 1)).view(n, len(x), *model.output_shape)
        log_px_z = model.likelihood.log_likelihoods(outputs, x)
        log_pz = -0.5 * (z.pow(2) + LOG_2PI).sum(-1)
        log_qz = -0.5 * (eps.pow(2) + LOG_2PI + logvar).sum(-1)
        log_weights.append(log_px_z + log_pz - log_qz)
    return torch.logsumexp(torch.cat(log_weights), dim=0) - math.log(k)


@torch.no_grad()
def iwae_bound(model: VAE, images: torch.Tensor, k: int = 1000, seed: int = 0, batch_size: int = 100,
               binarize_seed: int | None = None) -> torch.Tensor:
    """Per-image importance-weighted log-likelihood bounds over a whole image set (nats).

    With binarize_seed set, each image is first binarized once with that seed (a fixed dynamically-binarized test
    set), which is what likelihoods on binarized MNIST are computed on.
    """
    model.eval()
    device = next(model.parameters()).device
    generator = torch.Generator(device=device).manual_seed(seed)
    binarizer = torch.Generator(device=device).manual_seed(binarize_seed) if binarize_seed is not None else None
    bounds = []
    for index in datalib.batch_indices(len(images), batch_size):
        x = datalib.as_float(images[index].to(device))
        if binarizer is not None:
            x = datalib.binarize(x, binarizer)
        bounds.append(importance_weighted_log_likelihood(model, x, k, generator).cpu())
    return torch.cat(bounds)
