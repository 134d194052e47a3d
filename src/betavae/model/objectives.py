"""Training objectives, decoupled from the model. Each returns its terms per the one reduction used everywhere:

    recon = mean over the batch of the Bernoulli negative log-likelihood summed over pixels   (nats per image)
    kl    = mean over the batch of KL(q(z|x) || N(0, I)) summed over latent dimensions          (nats per image)
    loss  = recon + beta * kl                                   (beta-VAE; beta = 1 is the plain VAE's -ELBO)

Because both terms are per-image sums averaged over the batch, beta means the same thing at any image size, batch
size or number of processes, and beta = 1 gives exactly the negative ELBO.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import Config

Step = int | torch.Tensor  # the optimizer step; a 0-dim tensor inside a CUDA graph


@dataclass
class Terms:
    """The loss to minimise and what it is made of (batch means, in nats per image)."""

    loss: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor
    kl_per_dim: torch.Tensor
    weight: float | torch.Tensor  # the effective KL weight (beta, or gamma for capacity) at this step

    def detach(self) -> "Terms":
        """The same values, cut from the autograd graph (which can then be freed)."""
        return Terms(self.loss.detach(), self.recon.detach(), self.kl.detach(), self.kl_per_dim.detach(), self.weight)


def gaussian_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(logvar)) || N(0, 1)) per image and dimension, shape (N, D)."""
    return 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar)


def bernoulli_nll(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """-log p(target | logits) summed over pixels, one value per image (binary cross-entropy; grey targets allowed)."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).sum(1)


def linear_anneal(start: float, end: float, step: Step, steps: int) -> float | torch.Tensor:
    """A value moving linearly from start to end over `steps` steps, then staying at end (end at once if steps = 0).
    `step` may be a 0-dim tensor: a CUDA graph replays the loss with the step filled in (cuda_graphs.py)."""
    if steps <= 0:
        return end
    done = step.clamp(max=steps) if isinstance(step, torch.Tensor) else min(step, steps)
    return start + (end - start) * done / steps


class BetaVAELoss:
    """Higgins et al. (2017): recon + beta * KL, with beta optionally moving linearly from `start` (a warm-up from 0,
    or, from above beta, a noisy start that anneals down) over the first `warmup_steps` steps."""

    name = "beta"
    parameters = ("beta", "beta_warmup_steps", "beta_start")  # the configuration fields this objective reads

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, start: float = 0.0):
        self.beta, self.warmup_steps, self.start = beta, warmup_steps, start

    @classmethod
    def from_config(cls, config: Config) -> "BetaVAELoss":
        return cls(config.beta, config.beta_warmup_steps, config.beta_start)

    def describe(self) -> str:
        """The loss in one line, with the weights it actually uses."""
        warmup = f", beta moving from {self.start:g} over {self.warmup_steps} steps" if self.warmup_steps else ""
        return f"beta-VAE: loss = recon + {self.beta:g} * KL{warmup}"

    def kl_weight(self, step: Step) -> float | torch.Tensor:
        return linear_anneal(self.start, self.beta, step, self.warmup_steps)

    def regularizer(self, kl: torch.Tensor, step: Step) -> torch.Tensor:
        return self.kl_weight(step) * kl

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor,
                 step: Step = 0) -> Terms:
        recon = bernoulli_nll(logits, target).mean()
        kl_per_dim = gaussian_kl(mean, logvar).mean(0)
        kl = kl_per_dim.sum()
        return Terms(recon + self.regularizer(kl, step), recon, kl, kl_per_dim, self.kl_weight(step))


class CapacityLoss(BetaVAELoss):
    """Burgess et al. (2018): recon + gamma * |KL - C|, with C rising linearly from c_min to c_max over c_steps."""

    name = "capacity"
    parameters = ("gamma", "capacity_min", "capacity_max", "capacity_steps")

    def __init__(self, gamma: float = 1000.0, c_min: float = 0.0, c_max: float = 25.0, c_steps: int = 100_000):
        super().__init__(beta=gamma)
        self.gamma, self.c_min, self.c_max, self.c_steps = gamma, c_min, c_max, c_steps

    @classmethod
    def from_config(cls, config: Config) -> "CapacityLoss":
        return cls(config.gamma, config.capacity_min, config.capacity_max, config.capacity_steps)

    def describe(self) -> str:
        return (f"capacity: loss = recon + {self.gamma:g} * |KL - C|, C from {self.c_min:g} to {self.c_max:g} nats "
                f"over {self.c_steps} steps")

    def capacity(self, step: Step) -> float | torch.Tensor:
        return linear_anneal(self.c_min, self.c_max, step, self.c_steps)

    def kl_weight(self, step: Step) -> float | torch.Tensor:
        return self.gamma

    def regularizer(self, kl: torch.Tensor, step: Step) -> torch.Tensor:
        return self.gamma * (kl - self.capacity(step)).abs()


OBJECTIVES: dict[str, type[BetaVAELoss]] = {kind.name: kind for kind in (BetaVAELoss, CapacityLoss)}


def build(config: Config) -> BetaVAELoss:
    """The objective a configuration names."""
    return OBJECTIVES[config.objective].from_config(config)


def settings(config: Config) -> dict[str, float | int]:
    """The objective a configuration names and the values of the parameters it reads (and only those)."""
    return {"objective": config.objective,
            **{name: getattr(config, name) for name in OBJECTIVES[config.objective].parameters}}
