"""Ada-GVAE (Locatello et al. 2020): beta-VAE on pairs of images that share some ground-truth factors. For the latents
judged shared, both images' posteriors are replaced by their average (mean of the means and of the variances), so that
those latents must carry what the pair has in common."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .base import setting
from .beta import BetaSettings, BetaVAELoss


def pair_kl(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(q(z_d|x1) || q(z_d|x2)) per pair and dimension, for a batch stacked as [x1 images; x2 images]: (M/2, D)."""
    (m1, m2), (l1, l2) = mean.chunk(2), logvar.chunk(2)
    return 0.5 * (l2 - l1 + (l1.exp() + (m1 - m2).pow(2)) / l2.exp() - 1.0)


def shared_dimensions(mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """Ada-GVAE's rule: per pair, the dimensions whose KL between the two posteriors is below halfway between the
    pair's smallest and largest are taken as shared (True), the rest as changed."""
    divergence = pair_kl(mean, logvar)
    low, high = divergence.min(1, keepdim=True).values, divergence.max(1, keepdim=True).values
    return divergence < (low + high) / 2


@dataclass(frozen=True)
class AdaGVAESettings(BetaSettings):
    beta: float = setting(1.0, "the weight of the KL term on each image of a pair (Locatello et al.: 1)")


class AdaGVAELoss(BetaVAELoss):
    name, Settings, paper = "adagvae", AdaGVAESettings, "Ada-GVAE (Locatello et al. 2020), pairs sharing factors"
    paired = True
    graphable = distributable = False  # its partners are drawn on the host; a slice of the batch would split pairs

    def describe(self) -> str:
        return f"Ada-GVAE: loss = recon + {self.settings.beta:g} * KL on pairs, shared latents averaged over each pair"

    def posterior(self, mean: torch.Tensor, logvar: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        shared = shared_dimensions(mean.detach(), logvar.detach()).repeat(2, 1)
        (m1, m2), (v1, v2) = mean.chunk(2), logvar.exp().chunk(2)
        average_mean, average_logvar = ((m1 + m2) / 2).repeat(2, 1), ((v1 + v2) / 2).log().repeat(2, 1)
        return torch.where(shared, average_mean, mean), torch.where(shared, average_logvar, logvar)
