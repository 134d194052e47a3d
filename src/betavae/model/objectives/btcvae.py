"""beta-TCVAE (Chen et al. 2018): recon + alpha * MI + beta * TC + gamma * dimension-wise KL, the three parts of the
KL estimated from each batch of codes. Penalising the total correlation of the aggregate posterior breaks the rotation
symmetry that leaves a beta-VAE's latents mixed."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .base import Objective, Penalty, Settings, check_choice, check_weights, setting

ESTIMATORS = ("mss", "mws")  # minibatch stratified or minibatch weighted sampling


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


@dataclass(frozen=True)
class TCVAESettings(Settings):
    alpha: float = setting(1.0, "the weight of the index-code mutual information")
    beta: float = setting(6.0, "the weight of the total correlation (Chen et al. used 6 on dSprites)")
    gamma: float = setting(1.0, "the weight of the dimension-wise KL")
    estimator: str = setting("mss", "how q(z) is estimated from the batch: mss (minibatch stratified sampling) or mws "
                                    "(minibatch weighted sampling)")

    def check(self) -> None:
        check_weights(self, "alpha", "beta", "gamma")
        check_choice("estimator", self.estimator, ESTIMATORS)


class TCVAELoss(Objective):
    name, Settings, paper = "btcvae", TCVAESettings, "beta-TCVAE (Chen et al. 2018)"
    distributable = False  # its estimate depends on the batch one process sees, so on the number of processes
    needs_codes = True
    min_batch = 2  # q(z) from the other codes of the batch

    def penalty(self, kl_per_dim, mean, logvar, z, step) -> Penalty:
        s = self.settings
        parts = aggregate_posterior_terms(z, mean, logvar, self.context.dataset_size, s.estimator)
        return s.alpha * parts["mi"] + s.beta * parts["tc"] + s.gamma * parts["dwkl"], \
            {key: value.detach() for key, value in parts.items()}

    def describe(self) -> str:
        s = self.settings
        return (f"beta-TCVAE: loss = recon + {s.alpha:g} * MI + {s.beta:g} * TC + {s.gamma:g} * dimension-wise KL, "
                f"each estimated from the batch by {s.estimator.upper()}")
