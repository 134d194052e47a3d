"""Training objectives, decoupled from the model. Each returns its terms per the one reduction used everywhere:

    recon = mean over the batch of the Bernoulli negative log-likelihood summed over pixels   (nats per image)
    kl    = mean over the batch of KL(q(z|x) || N(0, I)) summed over latent dimensions          (nats per image)
    loss  = recon + beta * kl                                   (beta-VAE; beta = 1 is the plain VAE's -ELBO)

Because both terms are per-image sums averaged over the batch, beta means the same thing at any image size, batch
size or number of processes, and beta = 1 gives exactly the negative ELBO.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

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
    extras: dict[str, torch.Tensor] = field(default_factory=dict)  # an objective's own estimates (TC, ...), logged

    def detach(self) -> "Terms":
        """The same values, cut from the autograd graph (which can then be freed)."""
        return Terms(self.loss.detach(), self.recon.detach(), self.kl.detach(), self.kl_per_dim.detach(), self.weight,
                     {key: value.detach() for key, value in self.extras.items()})


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
    or, from above beta, a noisy start that anneals down) over the first `warmup_steps` steps.

    The other objectives are variants of this one. What a variant may change, each with a default here:
    `regularizer` (what replaces beta * KL), `posterior` (how the encoder's posteriors are combined before the draw:
    Ada-GVAE averages a pair's shared latents), `after_step` (training of its own parts: FactorVAE's discriminator),
    and `state_dict` (those parts, for checkpoints)."""

    name = "beta"
    parameters = ("beta", "beta_warmup_steps", "beta_start")  # the configuration fields this objective reads
    graphable = True  # its step can be replayed as a CUDA graph (no optimizer or host work of its own)
    distributable = True  # DDP may split its batches between processes
    paired = False  # trains on pairs of images that share factors (weak supervision)

    def __init__(self, beta: float = 1.0, warmup_steps: int = 0, start: float = 0.0):
        self.beta, self.warmup_steps, self.start = beta, warmup_steps, start

    @classmethod
    def from_config(cls, config: Config, dataset_size: int = 1) -> "BetaVAELoss":
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
                 step: Step = 0, z: torch.Tensor | None = None) -> Terms:
        """The terms of a batch: its reconstruction logits, targets, posteriors and (for objectives that estimate
        properties of the aggregate posterior) the codes z drawn from them."""
        recon = bernoulli_nll(logits, target).mean()
        kl_per_dim = gaussian_kl(mean, logvar).mean(0)
        kl = kl_per_dim.sum()
        return Terms(recon + self.regularizer(kl, step), recon, kl, kl_per_dim, self.kl_weight(step))

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The posteriors the codes are drawn from: the encoder's, unchanged."""
        return mean, logvar

    def after_step(self) -> None:
        """Called after each optimizer step of the model: nothing to train here."""

    def to(self, device: torch.device | str) -> "BetaVAELoss":
        """Its own parts moved to the model's device: none here."""
        return self

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class CapacityLoss(BetaVAELoss):
    """Burgess et al. (2018): recon + gamma * |KL - C|, with C rising linearly from c_min to c_max over c_steps."""

    name = "capacity"
    parameters = ("gamma", "capacity_min", "capacity_max", "capacity_steps")

    def __init__(self, gamma: float = 1000.0, c_min: float = 0.0, c_max: float = 25.0, c_steps: int = 100_000):
        super().__init__(beta=gamma)
        self.gamma, self.c_min, self.c_max, self.c_steps = gamma, c_min, c_max, c_steps

    @classmethod
    def from_config(cls, config: Config, dataset_size: int = 1) -> "CapacityLoss":
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


# --- total correlation: beta-TCVAE ----------------------------------------------------------------------------

def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor | float = 0.0, logvar: torch.Tensor | float = 0.0
                         ) -> torch.Tensor:
    """log N(z | mean, exp(logvar)) elementwise (broadcasting); by default the prior N(0, 1)."""
    logvar = torch.as_tensor(logvar, dtype=z.dtype, device=z.device)
    return -0.5 * (math.log(2 * math.pi) + logvar + (z - mean).pow(2) * (-logvar).exp())


def log_density_matrix(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z_i,d | mean_j,d, exp(logvar_j,d)) for every code i and posterior j of a batch: (M, M, D)."""
    return gaussian_log_density(z.unsqueeze(1), mean.unsqueeze(0), logvar.unsqueeze(0))


def importance_log_weights(batch: int, dataset_size: int, estimator: str, device: torch.device | str = "cpu"
                           ) -> torch.Tensor:
    """log w_ij such that q(z_i) ~ sum_j w_ij q(z_i | x_j), from a batch of M posteriors drawn from N images
    (Chen et al. 2018). `mss` (minibatch-stratified sampling): the code's own posterior 1/N, one stratum (the next
    image) (N-M+1)/(N(M-1)), the rest 1/(M-1). `mws` (minibatch-weighted sampling): every w_ij = 1/M. Chen et al.
    print 1/(N M), which shifts the total correlation by the constant (D-1) log N (the gradients are the same);
    1/M keeps the estimate's value comparable with MSS's and with the truth."""
    m, n = batch, max(dataset_size, batch)
    if estimator == "mws" or m < 2:
        return torch.full((m, m), -math.log(m), device=device)
    weights = torch.full((m, m), 1.0 / (m - 1), device=device)
    index = torch.arange(m, device=device)
    weights[index, index] = 1.0 / n
    weights[index, (index + 1) % m] = (n - m + 1) / (n * (m - 1))
    return weights.log()


def aggregate_posterior_terms(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor, dataset_size: int,
                              estimator: str = "mss") -> dict[str, torch.Tensor]:
    """Chen et al.'s decomposition of E_x KL(q(z|x) || p(z)) for a batch, each term a batch mean in nats:
    index-code mutual information E[log q(z|x) - log q(z)], total correlation E[log q(z) - sum_d log q(z_d)] and
    dimension-wise KL E[sum_d log q(z_d) - log p(z)], with q(z) and q(z_d) estimated from the batch."""
    matrix = log_density_matrix(z, mean, logvar)
    log_w = importance_log_weights(len(z), dataset_size, estimator, z.device)
    log_qz = torch.logsumexp(log_w + matrix.sum(2), dim=1)
    log_qz_dims = torch.logsumexp(log_w.unsqueeze(2) + matrix, dim=1).sum(1)
    log_qz_x = matrix.diagonal(dim1=0, dim2=1).sum(0)  # each code under its own posterior
    log_pz = gaussian_log_density(z).sum(1)
    return {"mi": (log_qz_x - log_qz).mean(), "tc": (log_qz - log_qz_dims).mean(),
            "dwkl": (log_qz_dims - log_pz).mean()}


class TCVAELoss(BetaVAELoss):
    """beta-TCVAE (Chen et al. 2018): recon + alpha * MI + beta * TC + gamma * dimension-wise KL, the three terms of
    the KL estimated from each batch of codes. Penalising the total correlation of the aggregate posterior breaks the
    rotation symmetry that leaves a beta-VAE's latents mixed (docs/dsprites.md)."""

    name = "btcvae"
    parameters = ("mi_weight", "tc_weight", "dimwise_weight", "tc_estimator")
    distributable = False  # its estimate depends on the batch one process sees, so on the number of processes

    def __init__(self, mi_weight: float = 1.0, tc_weight: float = 6.0, dimwise_weight: float = 1.0,
                 estimator: str = "mss", dataset_size: int = 1):
        super().__init__(beta=1.0)
        self.alpha, self.tc_weight, self.gamma, self.estimator = mi_weight, tc_weight, dimwise_weight, estimator
        self.dataset_size = dataset_size

    @classmethod
    def from_config(cls, config: Config, dataset_size: int = 1) -> "TCVAELoss":
        return cls(config.mi_weight, config.tc_weight, config.dimwise_weight, config.tc_estimator, dataset_size)

    def describe(self) -> str:
        return (f"beta-TCVAE: loss = recon + {self.alpha:g} * MI + {self.tc_weight:g} * TC + {self.gamma:g} * "
                f"dimension-wise KL, each estimated from the batch by {self.estimator.upper()}")

    def __call__(self, logits, target, mean, logvar, step=0, z=None) -> Terms:
        terms = super().__call__(logits, target, mean, logvar, step)
        if z is None:  # no codes: the analytic KL stands in for the three terms
            return terms
        parts = aggregate_posterior_terms(z, mean, logvar, self.dataset_size, self.estimator)
        terms.loss = terms.recon + self.alpha * parts["mi"] + self.tc_weight * parts["tc"] + self.gamma * parts["dwkl"]
        terms.extras = parts
        return terms


# --- total correlation: FactorVAE ------------------------------------------------------------------------------

def permute_dimensions(z: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Each latent dimension shuffled across the batch on its own: samples of prod_d q(z_d) from samples of q(z).
    The shuffles are drawn on the CPU (from `generator`, a CPU generator), whatever the codes' device."""
    order = torch.rand(z.shape, generator=generator).argsort(dim=0).to(z.device)
    return z.gather(0, order)


def discriminator(latent_dim: int, width: int = 1000, layers: int = 6) -> torch.nn.Sequential:
    """Kim and Mnih's MLP: `layers` linear layers of `width` with leaky ReLUs, then one logit of "from q(z)" (against
    "from the product of its marginals"). At the optimum the logit is log q(z) / prod_d q(z_d)."""
    sizes = [latent_dim] + [width] * layers
    modules: list[torch.nn.Module] = []
    for n_in, n_out in zip(sizes[:-1], sizes[1:]):
        modules += [torch.nn.Linear(n_in, n_out), torch.nn.LeakyReLU(0.2)]
    return torch.nn.Sequential(*modules, torch.nn.Linear(width, 1))


class FactorVAELoss(BetaVAELoss):
    """FactorVAE (Kim and Mnih 2018): recon + KL + gamma * TC, the total correlation estimated by a discriminator
    between codes and dimension-permuted codes (the density-ratio trick). The discriminator has its own Adam and
    takes one step after each of the model's."""

    name = "factorvae"
    parameters = ("tc_weight", "discriminator_lr")
    graphable = distributable = False  # its discriminator steps on the host, on one process's codes

    def __init__(self, latent_dim: int, tc_weight: float = 35.0, lr: float = 1e-4, seed: int = 0, width: int = 1000):
        super().__init__(beta=1.0)
        self.tc_weight, self.lr = tc_weight, lr
        with torch.random.fork_rng():  # its initialisation leaves the model's random stream as it was
            torch.manual_seed(seed)
            self.discriminator = discriminator(latent_dim, width)
        self.generator = torch.Generator().manual_seed(seed + 3)  # training's permutations (evaluation: seed 0)
        self.optimizer = torch.optim.Adam(self.discriminator.parameters(), lr=lr, betas=(0.5, 0.9))
        self.pending: torch.Tensor | None = None  # the discriminator's loss on the last training batch

    @classmethod
    def from_config(cls, config: Config, dataset_size: int = 1) -> "FactorVAELoss":
        return cls(config.latent_dim, config.tc_weight, config.discriminator_lr, config.seed)

    def describe(self) -> str:
        return (f"FactorVAE: loss = recon + KL + {self.tc_weight:g} * TC, TC from a discriminator (Adam "
                f"{self.lr:g}) between codes and dimension-permuted codes")

    def to(self, device: torch.device | str) -> "FactorVAELoss":
        self.discriminator.to(device)
        return self

    def __call__(self, logits, target, mean, logvar, step=0, z=None) -> Terms:
        terms = super().__call__(logits, target, mean, logvar, step)
        if z is None:
            return terms
        codes = z.detach().float()
        training = torch.is_grad_enabled()  # evaluation (no_grad) neither trains nor draws from training's stream
        generator = self.generator if training else torch.Generator().manual_seed(0)
        permuted = permute_dimensions(codes, generator)
        real, fake = self.discriminator(codes).squeeze(1), self.discriminator(permuted).squeeze(1)
        accuracy = ((real > 0).float().mean() + (fake <= 0).float().mean()) / 2
        if training:  # the discriminator learns from this batch in after_step
            self.pending = (F.binary_cross_entropy_with_logits(real, torch.ones_like(real))
                            + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))) / 2
        self.discriminator.requires_grad_(False)  # the model's loss reaches z through it, not its weights
        tc = self.discriminator(z.float()).mean()
        self.discriminator.requires_grad_(True)
        terms.loss = terms.loss + self.tc_weight * tc
        terms.extras = {"tc": tc.detach(), "discriminator_accuracy": accuracy.detach()}
        return terms

    def after_step(self) -> None:
        if self.pending is None:
            return
        self.optimizer.zero_grad(set_to_none=True)
        self.pending.backward()
        self.optimizer.step()
        self.pending = None

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.generator.set_state(state["generator"])


# --- DIP-VAE --------------------------------------------------------------------------------------------------

def dip_covariance(mean: torch.Tensor, logvar: torch.Tensor, kind: str) -> torch.Tensor:
    """The batch's estimate of the aggregate posterior's covariance: Cov[mean] (DIP-VAE-I), or Cov[mean] plus
    E[diag(var)], the covariance of z itself (DIP-VAE-II)."""
    centred = mean - mean.mean(0)
    covariance = centred.T @ centred / len(mean)
    return covariance + torch.diag(logvar.exp().mean(0)) if kind == "ii" else covariance


def dip_penalty(covariance: torch.Tensor, off_diagonal: float, diagonal: float) -> torch.Tensor:
    """lambda_od * sum of squared off-diagonal entries + lambda_d * sum of squared (diagonal - 1): 0 at the identity."""
    diag = covariance.diagonal()
    off = covariance - torch.diag(diag)
    return off_diagonal * off.pow(2).sum() + diagonal * (diag - 1).pow(2).sum()


class DIPVAELoss(BetaVAELoss):
    """DIP-VAE (Kumar et al. 2018): recon + KL + a penalty pushing the covariance of the aggregate posterior (type i:
    of the posterior means; type ii: of the codes) towards the identity, so that its axes decorrelate."""

    name = "dipvae"
    parameters = ("dip_type", "dip_offdiagonal", "dip_diagonal")
    distributable = False  # its covariance is estimated from the batch one process sees

    def __init__(self, kind: str = "i", off_diagonal: float = 10.0, diagonal: float = 100.0):
        super().__init__(beta=1.0)
        self.kind, self.off_diagonal, self.diagonal = kind, off_diagonal, diagonal

    @classmethod
    def from_config(cls, config: Config, dataset_size: int = 1) -> "DIPVAELoss":
        return cls(config.dip_type, config.dip_offdiagonal, config.dip_diagonal)

    def describe(self) -> str:
        return (f"DIP-VAE-{self.kind.upper()}: loss = recon + KL + {self.off_diagonal:g} * off-diagonal^2 + "
                f"{self.diagonal:g} * (diagonal - 1)^2 of Cov[{'z' if self.kind == 'ii' else 'mean'}]")

    def __call__(self, logits, target, mean, logvar, step=0, z=None) -> Terms:
        terms = super().__call__(logits, target, mean, logvar, step)
        penalty = dip_penalty(dip_covariance(mean, logvar, self.kind), self.off_diagonal, self.diagonal)
        terms.loss = terms.loss + penalty
        terms.extras = {"dip_penalty": penalty.detach()}
        return terms


# --- weak supervision: Ada-GVAE -------------------------------------------------------------------------------

def pair_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_d|x1) || q(z_d|x2)) per pair and dimension, for a batch stacked as [x1 images; x2 images]: (M/2, D)."""
    (m1, m2), (l1, l2) = mean.chunk(2), logvar.chunk(2)
    return 0.5 * (l2 - l1 + (l1.exp() + (m1 - m2).pow(2)) / l2.exp() - 1.0)


def shared_dimensions(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Ada-GVAE's rule (Locatello et al. 2020): per pair, the dimensions whose KL between the two posteriors is
    below halfway between the pair's smallest and largest are taken as shared (True), the rest as changed."""
    divergence = pair_kl(mean, logvar)
    low, high = divergence.min(1, keepdim=True).values, divergence.max(1, keepdim=True).values
    return divergence < (low + high) / 2


class AdaGVAELoss(BetaVAELoss):
    """Ada-GVAE (Locatello et al. 2020): beta-VAE on pairs of images that share some ground-truth factors. For the
    latents judged shared, both images' posteriors are replaced by their average (mean of the means and of the
    variances), so that those latents must carry what the pair has in common."""

    name = "adagvae"
    parameters = ("beta",)
    paired = True
    graphable = distributable = False  # its partners are drawn on the host; a slice of the batch would split pairs

    @classmethod
    def from_config(cls, config: Config, dataset_size: int = 1) -> "AdaGVAELoss":
        return cls(config.beta)

    def describe(self) -> str:
        return f"Ada-GVAE: loss = recon + {self.beta:g} * KL on pairs, shared latents averaged over each pair"

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = shared_dimensions(mean.detach(), logvar.detach()).repeat(2, 1)
        (m1, m2), (v1, v2) = mean.chunk(2), logvar.exp().chunk(2)
        average_mean, average_logvar = ((m1 + m2) / 2).repeat(2, 1), ((v1 + v2) / 2).log().repeat(2, 1)
        return torch.where(shared, average_mean, mean), torch.where(shared, average_logvar, logvar)


OBJECTIVES: dict[str, type[BetaVAELoss]] = {
    kind.name: kind for kind in (BetaVAELoss, CapacityLoss, TCVAELoss, FactorVAELoss, DIPVAELoss, AdaGVAELoss)}


def build(config: Config, dataset_size: int = 1) -> BetaVAELoss:
    """The objective a configuration names (`dataset_size`: the training images, which beta-TCVAE's estimate needs)."""
    return OBJECTIVES[config.objective].from_config(config, dataset_size)


def settings(config: Config) -> dict[str, float | int]:
    """The objective a configuration names and the values of the parameters it reads (and only those)."""
    return {"objective": config.objective,
            **{name: getattr(config, name) for name in OBJECTIVES[config.objective].parameters}}
